using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// <see cref="GatedDeltaRule"/>: the recurrence against hand-derived values and a scalar loop, the chunked form against
/// the recurrence (outputs, final states, gradients of every input) over lengths, chunk sizes and decay extremes, the
/// g = 0 case against <see cref="DeltaRule"/>, half precision, and validation.
/// </summary>
public class GatedDeltaRuleTests
{
    private const long B = 2, NH = 2, Dk = 8, Dv = 6;

    /// <summary>
    /// Random inputs as a Gated DeltaNet layer produces them: L2-normalized keys, beta in (0, 1), g = logsigmoid of a
    /// normal (decays exp(g) spread over (0, 1), mean about 0.5).
    /// </summary>
    private static (Tensor Q, Tensor K, Tensor V, Tensor G, Tensor Beta, Tensor S0) Inputs(
        long seed, long length, ScalarType dtype = ScalarType.Float64, long b = B, long nh = NH, long dk = Dk, long dv = Dv,
        double gShift = 2.0)
    {
        var gen = new Generator((ulong)seed);
        var q = randn(new[] { b, nh, length, dk }, dtype: ScalarType.Float64, generator: gen);
        var kRaw = randn(new[] { b, nh, length, dk }, dtype: ScalarType.Float64, generator: gen);
        var k = kRaw / kRaw.norm(-1, keepdim: true);
        var v = randn(new[] { b, nh, length, dv }, dtype: ScalarType.Float64, generator: gen);
        // logsigmoid(x + 2): decays mostly in (0.5, 1), as a trained gate tends to keep them.
        var g = nn.functional.logsigmoid(randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: gen) + gShift);
        var beta = randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: gen).sigmoid();
        var s0 = randn(new[] { b, nh, dk, dv }, dtype: ScalarType.Float64, generator: gen) * 0.5;
        return (q.to(dtype), k.to(dtype), v.to(dtype), g.to(dtype), beta.to(dtype), s0.to(dtype));
    }

    private static double MaxAbsDiff(Tensor a, Tensor b) => TestUtil.MaxAbsDiff(a, b);

    private static bool AllFinite(Tensor t) => t.isfinite().all().item<bool>();

    // ---------------------------------------------------------------- the recurrence

    [Fact]
    public void RecurrentMatchesTwoHandDerivedStepsWithScalarState()
    {
        // Dk = Dv = 1. S0 = 0.5.
        // Step 1: exp(g) = 0.5, k = 2, v = 1, beta = 0.5, q = 3:
        //   exp(g) S0 = 0.25, S1 = 0.25 + 0.5 * 2 * (1 - 0.25 * 2) = 0.75, o1 = 0.75 * 3 = 2.25.
        // Step 2: exp(g) = 0.8, k = 1, v = -1, beta = 1, q = -2:
        //   exp(g) S1 = 0.6, S2 = 0.6 + 1 * 1 * (-1 - 0.6) = -1, o2 = -1 * -2 = 2.
        using var scope = NewDisposeScope();
        var q = tensor(new double[] { 3, -2 }).reshape(1, 1, 2, 1);
        var k = tensor(new double[] { 2, 1 }).reshape(1, 1, 2, 1);
        var v = tensor(new double[] { 1, -1 }).reshape(1, 1, 2, 1);
        var g = tensor(new double[] { Math.Log(0.5), Math.Log(0.8) }).reshape(1, 1, 2);
        var beta = tensor(new double[] { 0.5, 1 }).reshape(1, 1, 2);
        var s0 = tensor(new double[] { 0.5 }).reshape(1, 1, 1, 1);
        var (o, s) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        var values = TestUtil.Values(o);
        // Hand values, float64 rounding of log / exp only: 1e-14.
        values[0].Should().BeApproximately(2.25, 1e-14);
        values[1].Should().BeApproximately(2.0, 1e-14);
        s.item<double>().Should().BeApproximately(-1.0, 1e-14);
        // The chunked form over both steps in one chunk, and one step per chunk.
        foreach (var c in new[] { 1, 2, 64 })
        {
            var (oc, sc) = GatedDeltaRule.Chunked(q, k, v, g, beta, c, s0);
            MaxAbsDiff(oc, o).Should().BeLessThan(1e-14);
            MaxAbsDiff(sc, s).Should().BeLessThan(1e-14);
        }
    }

    [Fact]
    public void RecurrentMatchesAHandDerivedStepWithMatrixState()
    {
        // Dk = Dv = 2; the rows of S index Dk. S0 = [[1, 2], [3, 4]], exp(g) = 0.5, beta = 1, k = (1, 0), v = (0, 0),
        // q = (0, 1): exp(g) S0 = [[0.5, 1], [1.5, 2]]; (exp(g) S0)^T k = (0.5, 1) (row 0); delta = (-0.5, -1);
        // S1 = exp(g) S0 + k delta^T = [[0, 0], [1.5, 2]]; o = S1^T q = (1.5, 2) (row 1). With S k instead of S^T k
        // the result would differ (column 0 is (0.5, 1.5)).
        using var scope = NewDisposeScope();
        var q = tensor(new double[] { 0, 1 }).reshape(1, 1, 1, 2);
        var k = tensor(new double[] { 1, 0 }).reshape(1, 1, 1, 2);
        var v = zeros(new long[] { 1, 1, 1, 2 }, dtype: ScalarType.Float64);
        var g = tensor(new double[] { Math.Log(0.5) }).reshape(1, 1, 1);
        var beta = ones(new long[] { 1, 1, 1 }, dtype: ScalarType.Float64);
        var s0 = tensor(new double[] { 1, 2, 3, 4 }).reshape(1, 1, 2, 2);
        var (o, s) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        TestUtil.Values(o).Should().BeEquivalentTo(new[] { 1.5, 2.0 }, opt => opt.Using<double>(x => x.Subject.Should().BeApproximately(x.Expectation, 1e-14)).WhenTypeIs<double>());
        TestUtil.Values(s).Should().BeEquivalentTo(new[] { 0.0, 0.0, 1.5, 2.0 }, opt => opt.Using<double>(x => x.Subject.Should().BeApproximately(x.Expectation, 1e-14)).WhenTypeIs<double>());
    }

    /// <summary>
    /// The recurrence written out with scalars over double arrays, independent of any tensor op:
    /// S_t = exp(g_t) S_{t-1} + beta_t k_t (v_t - exp(g_t) S_{t-1}^T k_t)^T, o_t = S_t^T q_t.
    /// </summary>
    private static (double[] Output, double[] FinalState) ScalarGatedDeltaRule(double[] q, double[] k, double[] v,
        double[] g, double[] beta, double[]? s0, long bh, long l, long dk, long dv)
    {
        var output = new double[bh * l * dv];
        var final = new double[bh * dk * dv];
        for (long h = 0; h < bh; h++)
        {
            var s = new double[dk, dv];
            for (long i = 0; i < dk; i++)
                for (long j = 0; j < dv; j++) s[i, j] = s0 is null ? 0.0 : s0[(h * dk + i) * dv + j];
            for (long t = 0; t < l; t++)
            {
                long qk = (h * l + t) * dk, vo = (h * l + t) * dv;
                double decay = Math.Exp(g[h * l + t]), bt = beta[h * l + t];
                for (long i = 0; i < dk; i++)
                    for (long j = 0; j < dv; j++) s[i, j] *= decay;
                var delta = new double[dv];
                for (long j = 0; j < dv; j++)
                {
                    double predicted = 0;
                    for (long i = 0; i < dk; i++) predicted += s[i, j] * k[qk + i];
                    delta[j] = bt * (v[vo + j] - predicted);
                }
                for (long i = 0; i < dk; i++)
                    for (long j = 0; j < dv; j++) s[i, j] += k[qk + i] * delta[j];
                for (long j = 0; j < dv; j++)
                {
                    double o = 0;
                    for (long i = 0; i < dk; i++) o += s[i, j] * q[qk + i];
                    output[vo + j] = o;
                }
            }
            for (long i = 0; i < dk; i++)
                for (long j = 0; j < dv; j++) final[(h * dk + i) * dv + j] = s[i, j];
        }
        return (output, final);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(1, true)]
    [InlineData(29, false)]
    [InlineData(29, true)]
    public void RecurrentEqualsScalarLoop(long length, bool withState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(11 + length, length, gShift: 0);
        var (o, s) = GatedDeltaRule.Recurrent(q, k, v, g, beta, withState ? s0 : null);
        var (oRef, sRef) = ScalarGatedDeltaRule(TestUtil.Values(q), TestUtil.Values(k), TestUtil.Values(v), TestUtil.Values(g),
            TestUtil.Values(beta), withState ? TestUtil.Values(s0) : null, B * NH, length, Dk, Dv);
        o.shape.Should().Equal(B, NH, length, Dv);
        s.shape.Should().Equal(B, NH, Dk, Dv);
        var oVals = TestUtil.Values(o);
        var sVals = TestUtil.Values(s);
        // Same float64 arithmetic in another order: 1e-12.
        for (int i = 0; i < oRef.Length; i++) oVals[i].Should().BeApproximately(oRef[i], 1e-12);
        for (int i = 0; i < sRef.Length; i++) sVals[i].Should().BeApproximately(sRef[i], 1e-12);
    }

    // ---------------------------------------------------------------- chunked vs recurrent

    public static IEnumerable<object[]> LengthsAndChunks()
    {
        foreach (var l in new long[] { 1, 7, 63, 64, 65, 130 })
            foreach (var c in new[] { 1, 8, 64, 200 })
                foreach (var withState in new[] { false, true })
                    yield return new object[] { l, c, withState };
    }

    [Theory]
    [MemberData(nameof(LengthsAndChunks))]
    public void ChunkedEqualsRecurrentInFloat64(long length, int chunkSize, bool withState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(100 + length * 7 + chunkSize, length);
        var init = withState ? s0 : null;
        var (o, s) = GatedDeltaRule.Chunked(q, k, v, g, beta, chunkSize, init);
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, init);
        o.shape.Should().Equal(B, NH, length, Dv);
        s.shape.Should().Equal(B, NH, Dk, Dv);
        o.dtype.Should().Be(ScalarType.Float64);
        // Exact forms in float64: rounding only, 1e-10.
        MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }

    /// <summary>Lengths past one segment (SequenceSegments.Length) take the segmented path: still equal to the recurrence.</summary>
    [Theory]
    [InlineData(1100, 64, true)]  // 1024 + 76
    [InlineData(1030, 7, false)]  // 1022 + 8
    public void LongSequencesInSegmentsEqualRecurrentInFloat64(long length, int chunkSize, bool withState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(900 + length, length, b: 1);
        var init = withState ? s0 : null;
        var (o, s) = GatedDeltaRule.Chunked(q, k, v, g, beta, chunkSize, init);
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, init);
        o.shape.Should().Equal(1, NH, length, Dv);
        MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }

    private static readonly string[] Names = { "q", "k", "v", "g", "beta", "initialState" };

    /// <summary>Gradients of <c>(o * wo).sum() + (S * ws).sum()</c> with respect to every input.</summary>
    private static Tensor[] Gradients(Tensor[] inputs, Func<Tensor[], (Tensor Output, Tensor FinalState)> run, long seed = 77)
    {
        var leaves = inputs.Select(t => t.detach().clone().requires_grad_()).ToArray();
        var (o, s) = run(leaves);
        var gen = new Generator((ulong)seed);
        // Float64 weights cast to the result's dtype, so that runs in different dtypes weigh alike.
        var wo = randn(o.shape, dtype: ScalarType.Float64, generator: gen).to(o.dtype);
        var ws = randn(s.shape, dtype: ScalarType.Float64, generator: gen).to(s.dtype);
        ((o * wo).sum() + (s * ws).sum()).backward();
        return leaves.Select(t => t.grad!).ToArray();
    }

    [Theory]
    [InlineData(5, 4)]
    [InlineData(37, 1)]
    [InlineData(65, 16)]
    [InlineData(100, 64)]
    [InlineData(50, 200)]
    public void GradientsOfEveryInputAgreeBetweenTheForms(long length, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(500 + length + chunkSize, length);
        var inputs = new[] { q, k, v, g, beta, s0 };
        var chunked = Gradients(inputs, x => GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], chunkSize, x[5]));
        var recurrent = Gradients(inputs, x => GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4], x[5]));
        for (int i = 0; i < Names.Length; i++)
        {
            chunked[i].shape.Should().Equal(recurrent[i].shape, Names[i]);
            recurrent[i].abs().max().item<double>().Should().BeGreaterThan(1e-3, $"the gradient wrt {Names[i]} is not trivially zero");
            // float64 through different but exact arithmetic: 1e-8 (gradients sum over many more terms than outputs).
            MaxAbsDiff(chunked[i], recurrent[i]).Should().BeLessThan(1e-8, $"gradient wrt {Names[i]}");
        }
    }

    [Fact]
    public void ChunkSizeDoesNotChangeTheResult()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(4242, 100);
        var (oRef, sRef) = GatedDeltaRule.Chunked(q, k, v, g, beta, 64, s0);
        foreach (var c in new[] { 1, 2, 3, 8, 16, 33, 99, 100, 101 })
        {
            var (o, s) = GatedDeltaRule.Chunked(q, k, v, g, beta, c, s0);
            MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10, $"chunk size {c}");
            MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10, $"chunk size {c}");
        }
    }

    [Theory]
    [InlineData(100, 16, 1)]
    [InlineData(100, 16, 37)]
    [InlineData(100, 7, 99)]
    [InlineData(65, 64, 64)]
    public void RunningInTwoPartsEqualsOneCall(long length, int chunkSize, long split)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(3000 + length + split, length);
        var (oWhole, sWhole) = GatedDeltaRule.Chunked(q, k, v, g, beta, chunkSize, s0);
        Tensor First(Tensor t) => t.narrow(2, 0, split);
        Tensor Rest(Tensor t) => t.narrow(2, split, length - split);
        var (o1, s1) = GatedDeltaRule.Chunked(First(q), First(k), First(v), First(g), First(beta), chunkSize, s0);
        var (o2, s2) = GatedDeltaRule.Chunked(Rest(q), Rest(k), Rest(v), Rest(g), Rest(beta), chunkSize, s1);
        MaxAbsDiff(cat(new[] { o1, o2 }, 2), oWhole).Should().BeLessThan(1e-10);
        MaxAbsDiff(s2, sWhole).Should().BeLessThan(1e-10);
        // The decoding path: continue with the recurrent form from the chunked state.
        var (o2r, s2r) = GatedDeltaRule.Recurrent(Rest(q), Rest(k), Rest(v), Rest(g), Rest(beta), s1);
        MaxAbsDiff(o2r, o2).Should().BeLessThan(1e-10);
        MaxAbsDiff(s2r, s2).Should().BeLessThan(1e-10);
    }

    // ---------------------------------------------------------------- decay extremes

    [Theory]
    [InlineData(ScalarType.Float64, 64)]
    [InlineData(ScalarType.Float64, 8)]
    [InlineData(ScalarType.Float32, 64)]
    public void StrongDecayEveryStepStaysFiniteAndExact(ScalarType dtype, int chunkSize)
    {
        // g = -20 every step: in a chunk of 64 the cumulative decay reaches -1280, whose exp underflows to 0 (in float32
        // already exp(-104) does): no inf or NaN in outputs, states or gradients, and the forms agree.
        using var scope = NewDisposeScope();
        var (q, k, v, _, beta, s0) = Inputs(71, 150, b: 1);
        var g = full(new long[] { 1, NH, 150 }, -20.0, dtype: ScalarType.Float64);
        var inputs = new[] { q, k, v, g, beta, s0 }.Select(t => t.to(dtype)).ToArray();
        var (o, s) = GatedDeltaRule.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], chunkSize, inputs[5]);
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        AllFinite(o).Should().BeTrue();
        AllFinite(s).Should().BeTrue();
        // exp(-20) = 2e-9: the state is (nearly) rewritten every step; float64 1e-10, float32 its rounding, 1e-5.
        double tol = dtype == ScalarType.Float64 ? 1e-10 : 1e-5;
        MaxAbsDiff(o, oRef).Should().BeLessThan(tol);
        MaxAbsDiff(s, sRef).Should().BeLessThan(tol);
        var grads = Gradients(inputs, x => GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], chunkSize, x[5]));
        var gradsRef = Gradients(new[] { q, k, v, g, beta, s0 }, x => GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4], x[5]));
        for (int i = 0; i < Names.Length; i++)
        {
            AllFinite(grads[i]).Should().BeTrue($"the gradient wrt {Names[i]}");
            MaxAbsDiff(grads[i], gradsRef[i]).Should().BeLessThan(dtype == ScalarType.Float64 ? 1e-8 : 1e-4, $"gradient wrt {Names[i]}");
        }
    }

    [Theory]
    [InlineData(8)]
    [InlineData(64)]
    public void NoDecayEqualsTheDeltaRule(int chunkSize)
    {
        // g = 0 everywhere: Gamma = 1 on and below the diagonal and exp(G) = 1, so every chunk is the delta rule's chunk.
        using var scope = NewDisposeScope();
        var (q, k, v, _, beta, s0) = Inputs(72, 130);
        var g = zeros(new long[] { B, NH, 130 }, dtype: ScalarType.Float64);
        var (o, s) = GatedDeltaRule.Chunked(q, k, v, g, beta, chunkSize, s0);
        var (oRef, sRef) = DeltaRule.Chunked(q, k, v, beta, chunkSize, s0);
        // The same products, multiplied by exact ones: 1e-12.
        MaxAbsDiff(o, oRef).Should().BeLessThan(1e-12);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-12);
        var (or, sr) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        var (orRef, srRef) = DeltaRule.Recurrent(q, k, v, beta, s0);
        MaxAbsDiff(or, orRef).Should().BeLessThan(1e-12);
        MaxAbsDiff(sr, srRef).Should().BeLessThan(1e-12);
    }

    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.Float32)]
    public void MixedDecaysAgreeWithTheRecurrence(ScalarType dtype)
    {
        // Chunks of 16: [0, 16) g = 0, [16, 32) g = -20, [32, 48) realistic, [48, 64) g = 0 with one step of -30, then a
        // partial chunk alternating 0 and -20.
        using var scope = NewDisposeScope();
        const long len = 75;
        var (q, k, v, g, beta, s0) = Inputs(73, len, b: 1);
        g = g.clone();
        g.narrow(2, 0, 16).fill_(0.0);
        g.narrow(2, 16, 16).fill_(-20.0);
        g.narrow(2, 48, 16).fill_(0.0);
        g[TensorIndex.Colon, TensorIndex.Colon, 55] = -30.0;
        for (long t = 64; t < len; t++) g[TensorIndex.Colon, TensorIndex.Colon, t] = t % 2 == 0 ? 0.0 : -20.0;
        var inputs = new[] { q, k, v, g, beta, s0 };
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        var x = inputs.Select(t => t.to(dtype)).ToArray();
        var (o, s) = GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], 16, x[5]);
        AllFinite(o).Should().BeTrue();
        // float64 rounding 1e-10; float32 relative RMS 1e-5 (accumulation over at most 16 steps per chunk).
        if (dtype == ScalarType.Float64)
        {
            MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10);
            MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
            var grads = Gradients(inputs, y => GatedDeltaRule.Chunked(y[0], y[1], y[2], y[3], y[4], 16, y[5]));
            var gradsRef = Gradients(inputs, y => GatedDeltaRule.Recurrent(y[0], y[1], y[2], y[3], y[4], y[5]));
            for (int i = 0; i < Names.Length; i++)
                MaxAbsDiff(grads[i], gradsRef[i]).Should().BeLessThan(1e-8, $"gradient wrt {Names[i]}");
        }
        else
        {
            TestUtil.RelRms(o, oRef).Should().BeLessThan(1e-5);
            TestUtil.RelRms(s, sRef).Should().BeLessThan(1e-5);
        }
    }

    [Fact]
    public void AnInfiniteNegativeDecayForgetsTheStateInBothForms()
    {
        // g = -inf at steps 5, 20 and 21 (a hard reset: exp(g) = 0), inside chunks of 16 and across a chunk edge.
        // Outputs after a reset do not depend on anything before it, and no NaN arises (the in-chunk decays are sums of
        // the g between two rows, never differences of cumulative sums, so -inf never meets -inf).
        using var scope = NewDisposeScope();
        const long len = 40;
        var (q, k, v, g, beta, s0) = Inputs(74, len, b: 1);
        g = g.clone();
        foreach (var t in new long[] { 5, 20, 21 }) g[TensorIndex.Colon, TensorIndex.Colon, t] = double.NegativeInfinity;
        var inputs = new[] { q, k, v, g, beta, s0 };
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        AllFinite(oRef).Should().BeTrue();
        foreach (var c in new[] { 1, 16, 64 })
        {
            var (o, s) = GatedDeltaRule.Chunked(q, k, v, g, beta, c, s0);
            AllFinite(o).Should().BeTrue($"chunk size {c}");
            MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10);
            MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
            var grads = Gradients(inputs, y => GatedDeltaRule.Chunked(y[0], y[1], y[2], y[3], y[4], c, y[5]));
            var gradsRef = Gradients(inputs, y => GatedDeltaRule.Recurrent(y[0], y[1], y[2], y[3], y[4], y[5]));
            for (int i = 0; i < Names.Length; i++)
            {
                AllFinite(grads[i]).Should().BeTrue($"the gradient wrt {Names[i]}, chunk size {c}");
                MaxAbsDiff(grads[i], gradsRef[i]).Should().BeLessThan(1e-8, $"gradient wrt {Names[i]}, chunk size {c}");
            }
        }
        // The outputs from step 21 on are those of a run started at step 21 from a zero state.
        Tensor From(Tensor t) => t.narrow(2, 21, len - 21);
        var (oAfter, _) = GatedDeltaRule.Recurrent(From(q), From(k), From(v), From(g), From(beta));
        MaxAbsDiff(From(oRef), oAfter).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void AStrongDecayBeforeMildOnesKeepsFloat32Accuracy()
    {
        // One g = -3000 at the start of each chunk of 64, then mild decays: the cumulative sums reach -3000, where a
        // float32 ulp is 2.4e-4, but the in-chunk decays between later rows are sums of the mild g alone (no
        // cancellation), so float32 keeps its usual accuracy against the float64 recurrence (relative RMS 1e-5).
        using var scope = NewDisposeScope();
        const long len = 128;
        var (q, k, v, g, beta, s0) = Inputs(75, len, b: 1, gShift: 4);
        g = g.clone();
        g[TensorIndex.Colon, TensorIndex.Colon, 0] = -3000.0;
        g[TensorIndex.Colon, TensorIndex.Colon, 64] = -3000.0;
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        var x = new[] { q, k, v, g, beta, s0 }.Select(t => t.to(ScalarType.Float32)).ToArray();
        var (o, s) = GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], 64, x[5]);
        TestUtil.RelRms(o, oRef).Should().BeLessThan(1e-5);
        TestUtil.RelRms(s, sRef).Should().BeLessThan(1e-5);
    }

    // ---------------------------------------------------------------- dtypes

    [Theory]
    [InlineData(257, 64)]
    [InlineData(300, 16)]
    public void Float32ChunkedIsWithinRelativeRms1e5OfFloat64(long length, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(900 + length, length, b: 1, dk: 32, dv: 32);
        var (oRef, sRef) = GatedDeltaRule.Recurrent(q, k, v, g, beta, s0);
        var x = new[] { q, k, v, g, beta, s0 }.Select(t => t.to(ScalarType.Float32)).ToArray();
        var (o32, s32) = GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], chunkSize, x[5]);
        o32.dtype.Should().Be(ScalarType.Float32);
        s32.dtype.Should().Be(ScalarType.Float32);
        TestUtil.RelRms(o32, oRef).Should().BeLessThan(1e-5);
        TestUtil.RelRms(s32, sRef).Should().BeLessThan(1e-5);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void HalfPrecisionInputsAreComputedInFloat32(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(1234, 70, dk: 16, dv: 16);
        var half = new[] { q, k, v, g, beta, s0 }.Select(t => t.to(dtype)).ToArray();
        // The float32 computation of the same rounded inputs: the half-precision call must give it, cast.
        var f32 = half.Select(t => t.to(ScalarType.Float32)).ToArray();
        var (oF, sF) = GatedDeltaRule.Chunked(f32[0], f32[1], f32[2], f32[3], f32[4], 16, f32[5]);
        var (oRF, sRF) = GatedDeltaRule.Recurrent(f32[0], f32[1], f32[2], f32[3], f32[4], f32[5]);
        var (oC, sC) = GatedDeltaRule.Chunked(half[0], half[1], half[2], half[3], half[4], 16, half[5]);
        var (oR, sR) = GatedDeltaRule.Recurrent(half[0], half[1], half[2], half[3], half[4], half[5]);
        foreach (var (o, s, oRef, sRef) in new[] { (oC, sC, oF, sF), (oR, sR, oRF, sRF) })
        {
            o.dtype.Should().Be(dtype);
            s.dtype.Should().Be(ScalarType.Float32);
            // The same float32 arithmetic: the state bit for bit, the output its rounding to the half dtype.
            MaxAbsDiff(s, sRef).Should().Be(0);
            MaxAbsDiff(o, oRef.to(dtype)).Should().Be(0);
        }
        // And the float32 chunked form is close to the float64 recurrence of the rounded inputs (relative RMS 1e-5).
        var f64 = half.Select(t => t.to(ScalarType.Float64)).ToArray();
        var (o64, s64) = GatedDeltaRule.Recurrent(f64[0], f64[1], f64[2], f64[3], f64[4], f64[5]);
        TestUtil.RelRms(sC, s64).Should().BeLessThan(1e-5);
        TestUtil.RelRms(oC, o64).Should().BeLessThan(dtype == ScalarType.BFloat16 ? 8e-3 : 1e-3);   // the output's rounding
    }

    [Fact]
    public void TheInputsAreNotModifiedNorReturned()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(42, 33);
        var originals = new[] { q, k, v, g, beta, s0 };
        var copies = originals.Select(t => t.clone()).ToArray();
        var results = new[] { GatedDeltaRule.Chunked(q, k, v, g, beta, 8, s0), GatedDeltaRule.Recurrent(q, k, v, g, beta, s0) };
        for (int i = 0; i < originals.Length; i++) MaxAbsDiff(originals[i], copies[i]).Should().Be(0);
        foreach (var (o, s) in results)
            foreach (var t in originals)
            {
                ReferenceEquals(o, t).Should().BeFalse();
                ReferenceEquals(s, t).Should().BeFalse();
            }
    }

    [Theory]
    [InlineData("k")]
    [InlineData("v")]
    [InlineData("g")]
    [InlineData("beta")]
    public void APackedNaNStaysInItsSequence(string input)
    {
        // Sequences [0, 6), [6, 13), [13, 30) with chunks of 4: the chunk-aligned layout never puts two sequences in one
        // chunk, so a NaN in the second sequence reaches neither the first nor the third (outputs and final states).
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(76, 30, b: 1);
        var x = new[] { q, k, v, g, beta }.Select(t => t.clone()).ToArray();
        x[Array.IndexOf(new[] { "q", "k", "v", "g", "beta" }, input)].select(2, 8).fill_(double.NaN);
        var cu = tensor(new long[] { 0, 6, 13, 30 });
        var h0 = cat(new[] { s0, s0, s0 }, 0);
        foreach (var (o, s) in new[]
        {
            GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], 4, h0, cu), GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4], h0, cu),
        })
        {
            AllFinite(o.narrow(2, 0, 6)).Should().BeTrue();
            AllFinite(o.narrow(2, 13, 17)).Should().BeTrue();
            AllFinite(s[0]).Should().BeTrue();
            AllFinite(s[2]).Should().BeTrue();
            AllFinite(s[1]).Should().BeFalse();
        }
    }

    [Fact]
    public void OnlyTheTwoResultsStayInTheCallersScope()
    {
        using var outer = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(77, 70, b: 1);
        var (ql, kl, vl, gl, bl, _) = Inputs(78, 1100, b: 1);            // the segmented path
        var h0 = cat(new[] { s0, s0 }, 0);
        var cu = tensor(new long[] { 0, 30, 70 });
        var calls = new (string Name, Func<(Tensor, Tensor)> Call)[]
        {
            ("chunked", () => GatedDeltaRule.Chunked(q, k, v, g, beta, 16, s0)),
            ("chunked, segments", () => GatedDeltaRule.Chunked(ql, kl, vl, gl, bl, 64, s0)),
            ("recurrent", () => GatedDeltaRule.Recurrent(q, k, v, g, beta, s0)),
            ("chunked, packed", () => GatedDeltaRule.Chunked(q, k, v, g, beta, 16, h0, cu)),
            ("recurrent, packed", () => GatedDeltaRule.Recurrent(q, k, v, g, beta, h0, cu)),
        };
        foreach (var (name, call) in calls)
        {
            using var scope = NewDisposeScope();
            call();
            scope.DisposablesCount.Should().Be(2, $"{name} leaves only its output and final state");
        }
    }

    // ---------------------------------------------------------------- validation

    public static IEnumerable<object[]> BadInputs()
    {
        // name of the argument that must be reported, and the call that must throw.
        yield return Case("q", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q[0], k, v, g, b));
        yield return Case("k", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k.narrow(3, 0, 4), v, g, b));
        yield return Case("v", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v.narrow(2, 0, 3), g, b));
        yield return Case("g", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g.narrow(2, 0, 3), b));
        yield return Case("g", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g.narrow(1, 0, 1), b));
        yield return Case("g", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g.unsqueeze(-1), b));
        yield return Case("g", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g.to(ScalarType.Int64), b));
        yield return Case("beta", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g, b.narrow(2, 0, 3)));
        yield return Case("beta", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g, b.narrow(0, 0, 1)));
        yield return Case("beta", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g, b.unsqueeze(-1)));
        yield return Case("chunkSize", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g, b, 0));
        yield return Case("initialState", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g, b, 4, s.transpose(2, 3)));
        yield return Case("initialState", (q, k, v, g, b, s) => GatedDeltaRule.Chunked(q, k, v, g, b, 4, s[0]));
        yield return Case("q", (q, k, v, g, b, s) => GatedDeltaRule.Recurrent(q.narrow(2, 0, 0), k.narrow(2, 0, 0), v.narrow(2, 0, 0), g.narrow(2, 0, 0), b.narrow(2, 0, 0)));
        yield return Case("q", (q, k, v, g, b, s) => GatedDeltaRule.Recurrent(q.to(ScalarType.Int64), k, v, g, b));
        yield return Case("g", (q, k, v, g, b, s) => GatedDeltaRule.Recurrent(q, k, v, g.narrow(0, 0, 1), b));
        yield return Case("beta", (q, k, v, g, b, s) => GatedDeltaRule.Recurrent(q, k, v, g, b.narrow(1, 0, 1)));
        yield return Case("initialState", (q, k, v, g, b, s) => GatedDeltaRule.Recurrent(q, k, v, g, b, s.narrow(0, 0, 1)));

        static object[] Case(string param, Func<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, object> call) => new object[] { param, call };
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInputThrowsNamingTheArgument(string param, Func<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, object> call)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(5, 10);
        var act = () => call(q, k, v, g, beta, s0);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }

    [Fact]
    public void AWrongDecayShapeIsReportedWithTheExpectedAndTheActualShape()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, _) = Inputs(6, 10);
        var ex = FluentActions.Invoking(() => GatedDeltaRule.Chunked(q, k, v, g.narrow(2, 0, 9), beta))
            .Should().Throw<ArgumentException>().Which;
        ex.ParamName.Should().Be("g");
        ex.Message.Should().Contain("Expected g [B, NH, L] = [2, 2, 10]").And.Contain("got shape [2, 2, 9]");
        var exBeta = FluentActions.Invoking(() => GatedDeltaRule.Recurrent(q, k, v, g, beta.narrow(1, 0, 1)))
            .Should().Throw<ArgumentException>().Which;
        exBeta.ParamName.Should().Be("beta");
        exBeta.Message.Should().Contain("Expected beta [B, NH, L] = [2, 2, 10]").And.Contain("got shape [2, 1, 10]");
    }

    [SkippableFact]
    public void CudaMatchesCpu()
    {
        Skip.IfNot(cuda.is_available(), "CUDA is not available");
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = Inputs(8, 130, ScalarType.Float32);
        var (oCpu, sCpu) = GatedDeltaRule.Chunked(q, k, v, g, beta, 64, s0);
        var dev = CUDA;
        var x = new[] { q, k, v, g, beta, s0 }.Select(t => t.to(dev)).ToArray();
        var (oGpu, sGpu) = GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], 64, x[5]);
        oGpu.device_type.Should().Be(DeviceType.CUDA);
        // float32 on two devices (TF32 off by default in libtorch for matmul): relative RMS 1e-4.
        TestUtil.RelRms(oGpu.cpu(), oCpu).Should().BeLessThan(1e-4);
        TestUtil.RelRms(sGpu.cpu(), sCpu).Should().BeLessThan(1e-4);
        var (oR, _) = GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4], x[5]);
        TestUtil.RelRms(oR.cpu(), oCpu).Should().BeLessThan(1e-4);
        var bf = x.Take(5).Select(t => t.to(ScalarType.BFloat16)).ToArray();
        var (oBf, sBf) = GatedDeltaRule.Chunked(bf[0], bf[1], bf[2], bf[3], bf[4], 64, x[5]);
        oBf.dtype.Should().Be(ScalarType.BFloat16);
        sBf.dtype.Should().Be(ScalarType.Float32);
        TestUtil.RelRms(oBf.cpu(), oCpu).Should().BeLessThan(2e-2);
    }
}
