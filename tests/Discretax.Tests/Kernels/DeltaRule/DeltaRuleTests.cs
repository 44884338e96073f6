using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class DeltaRuleTests
{
    private const long B = 2, NH = 2, Dk = 8, Dv = 6;

    /// <summary>Random inputs as a DeltaNet layer produces them: L2-normalized keys, beta in (0, 1).</summary>
    private static (Tensor Q, Tensor K, Tensor V, Tensor Beta, Tensor S0) Inputs(
        long seed, long length, ScalarType dtype = ScalarType.Float64, long b = B, long nh = NH, long dk = Dk, long dv = Dv)
    {
        var g = new Generator((ulong)seed);
        var q = randn(new[] { b, nh, length, dk }, dtype: ScalarType.Float64, generator: g);
        var kRaw = randn(new[] { b, nh, length, dk }, dtype: ScalarType.Float64, generator: g);
        var k = kRaw / kRaw.norm(-1, keepdim: true);
        var v = randn(new[] { b, nh, length, dv }, dtype: ScalarType.Float64, generator: g);
        var beta = randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: g).sigmoid();
        var s0 = randn(new[] { b, nh, dk, dv }, dtype: ScalarType.Float64, generator: g) * 0.5;
        return (q.to(dtype), k.to(dtype), v.to(dtype), beta.to(dtype), s0.to(dtype));
    }

    private static double MaxAbsDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();

    private static double RelativeRms(Tensor actual, Tensor reference)
    {
        var r = reference.to(ScalarType.Float64);
        var d = actual.to(ScalarType.Float64) - r;
        return d.square().mean().sqrt().item<double>() / r.square().mean().sqrt().item<double>();
    }

    /// <summary>
    /// The recurrence written out with scalars over nested double arrays, independent of any tensor op:
    /// S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T, o_t = S_t^T q_t.
    /// </summary>
    private static (double[] Output, double[] FinalState) ScalarDeltaRule(
        double[] q, double[] k, double[] v, double[] beta, double[]? s0, long b, long nh, long l, long dk, long dv)
    {
        var output = new double[b * nh * l * dv];
        var final = new double[b * nh * dk * dv];
        for (long h = 0; h < b * nh; h++)
        {
            var s = new double[dk][];
            for (long i = 0; i < dk; i++)
            {
                s[i] = new double[dv];
                for (long j = 0; j < dv; j++) s[i][j] = s0 is null ? 0.0 : s0[(h * dk + i) * dv + j];
            }
            for (long t = 0; t < l; t++)
            {
                long qk = (h * l + t) * dk, vo = (h * l + t) * dv;
                double bt = beta[h * l + t];
                var delta = new double[dv];
                for (long j = 0; j < dv; j++)
                {
                    double predicted = 0;
                    for (long i = 0; i < dk; i++) predicted += s[i][j] * k[qk + i];
                    delta[j] = bt * (v[vo + j] - predicted);
                }
                for (long i = 0; i < dk; i++)
                    for (long j = 0; j < dv; j++)
                        s[i][j] += k[qk + i] * delta[j];
                for (long j = 0; j < dv; j++)
                {
                    double o = 0;
                    for (long i = 0; i < dk; i++) o += s[i][j] * q[qk + i];
                    output[vo + j] = o;
                }
            }
            for (long i = 0; i < dk; i++)
                for (long j = 0; j < dv; j++) final[(h * dk + i) * dv + j] = s[i][j];
        }
        return (output, final);
    }

    private static double[] Values(Tensor t) => t.to(ScalarType.Float64).contiguous().data<double>().ToArray();

    [Theory]
    [InlineData(1, false)]
    [InlineData(1, true)]
    [InlineData(37, false)]
    [InlineData(37, true)]
    public void RecurrentEqualsScalarLoop(long length, bool withState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(11 + length, length);
        var (o, s) = DeltaRule.Recurrent(q, k, v, beta, withState ? s0 : null);
        var (oRef, sRef) = ScalarDeltaRule(Values(q), Values(k), Values(v), Values(beta), withState ? Values(s0) : null, B, NH, length, Dk, Dv);

        o.shape.Should().Equal(B, NH, length, Dv);
        s.shape.Should().Equal(B, NH, Dk, Dv);
        var oVals = Values(o);
        var sVals = Values(s);
        // Same float64 arithmetic in a different order: agreement to 1e-12.
        for (int i = 0; i < oRef.Length; i++) oVals[i].Should().BeApproximately(oRef[i], 1e-12);
        for (int i = 0; i < sRef.Length; i++) sVals[i].Should().BeApproximately(sRef[i], 1e-12);
    }

    public static IEnumerable<object[]> LengthsAndChunks()
    {
        foreach (var l in new long[] { 1, 5, 63, 64, 65, 100, 257 })
            foreach (var c in new[] { 1, 4, 16, 64 })
                foreach (var withState in new[] { false, true })
                    yield return new object[] { l, c, withState };
    }

    [Theory]
    [MemberData(nameof(LengthsAndChunks))]
    public void ChunkedEqualsRecurrentInFloat64(long length, int chunkSize, bool withState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(100 + length * 7 + chunkSize, length);
        var init = withState ? s0 : null;
        var (o, s) = DeltaRule.Chunked(q, k, v, beta, chunkSize, init);
        var (oRef, sRef) = DeltaRule.Recurrent(q, k, v, beta, init);

        o.shape.Should().Equal(B, NH, length, Dv);
        s.shape.Should().Equal(B, NH, Dk, Dv);
        o.dtype.Should().Be(ScalarType.Float64);
        MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }

    /// <summary>Lengths past one segment (SequenceSegments.Length) take the segmented path: still equal to the recurrence.</summary>
    [Theory]
    [InlineData(1500, 64, true)]  // segments of 1024 steps: 1024 + 476
    [InlineData(2100, 7, false)]  // segments of 1022 steps (146 chunks of 7): 1022 + 1022 + 56
    [InlineData(1024, 64, true)]  // exactly one segment
    public void LongSequencesInSegmentsEqualRecurrentInFloat64(long length, int chunkSize, bool withState)
    {
        using var scope = NewDisposeScope();
        SequenceSegments.Length(chunkSize).Should().Be(chunkSize == 64 ? 1024 : 1022);
        var (q, k, v, beta, s0) = Inputs(900 + length, length);
        var init = withState ? s0 : null;
        var (o, s) = DeltaRule.Chunked(q, k, v, beta, chunkSize, init);
        var (oRef, sRef) = DeltaRule.Recurrent(q, k, v, beta, init);
        o.shape.Should().Equal(B, NH, length, Dv);
        MaxAbsDiff(o, oRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 4)]
    [InlineData(63, 16)]
    [InlineData(64, 16)]
    [InlineData(65, 16)]
    [InlineData(100, 64)]
    [InlineData(257, 64)]
    [InlineData(257, 4)]
    [InlineData(1100, 64)] // two segments of the long-sequence path (1024 + 76)
    public void GradientsOfBothFormsAgree(long length, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(500 + length + chunkSize, length);
        var g = new Generator(77);
        var outWeight = randn(new[] { B, NH, length, Dv }, dtype: ScalarType.Float64, generator: g);
        var stateWeight = randn(new[] { B, NH, Dk, Dv }, dtype: ScalarType.Float64, generator: g);

        Tensor[] Grads(bool chunked)
        {
            var leaves = new[] { q, k, v, beta, s0 }.Select(t => t.detach().clone().requires_grad_()).ToArray();
            var (o, s) = chunked
                ? DeltaRule.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], chunkSize, leaves[4])
                : DeltaRule.Recurrent(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]);
            var loss = (o * outWeight).sum() + (s * stateWeight).sum();
            loss.backward();
            return leaves.Select(t => t.grad!).ToArray();
        }

        var chunkedGrads = Grads(true);
        var recurrentGrads = Grads(false);
        var names = new[] { "q", "k", "v", "beta", "initialState" };
        for (int i = 0; i < names.Length; i++)
        {
            chunkedGrads[i].shape.Should().Equal(recurrentGrads[i].shape, names[i]);
            recurrentGrads[i].abs().max().item<double>().Should().BeGreaterThan(1e-3, $"the gradient wrt {names[i]} is not trivially zero");
            MaxAbsDiff(chunkedGrads[i], recurrentGrads[i]).Should().BeLessThan(1e-8, $"gradient wrt {names[i]}");
        }
    }

    [Theory]
    [InlineData(257, 64)]
    [InlineData(300, 16)]
    public void Float32ChunkedIsWithinRelativeRms1e5OfFloat64(long length, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(900 + length, length, dk: 32, dv: 32);
        var (oRef, sRef) = DeltaRule.Recurrent(q, k, v, beta, s0);
        var (o32, s32) = DeltaRule.Chunked(q.to(ScalarType.Float32), k.to(ScalarType.Float32), v.to(ScalarType.Float32),
            beta.to(ScalarType.Float32), chunkSize, s0.to(ScalarType.Float32));

        o32.dtype.Should().Be(ScalarType.Float32);
        s32.dtype.Should().Be(ScalarType.Float32);
        RelativeRms(o32, oRef).Should().BeLessThan(1e-5);
        RelativeRms(s32, sRef).Should().BeLessThan(1e-5);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void HalfPrecisionInputsKeepTheStateInFloat32(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(1234, 70, dk: 16, dv: 16);
        // Reference on the same rounded inputs, computed in float64.
        var (qh, kh, vh, bh, sh) = (q.to(dtype), k.to(dtype), v.to(dtype), beta.to(dtype), s0.to(dtype));
        var (oRef, sRef) = DeltaRule.Recurrent(qh.to(ScalarType.Float64), kh.to(ScalarType.Float64), vh.to(ScalarType.Float64),
            bh.to(ScalarType.Float64), sh.to(ScalarType.Float64));

        foreach (var (o, s) in new[] { DeltaRule.Chunked(qh, kh, vh, bh, 16, sh), DeltaRule.Recurrent(qh, kh, vh, bh, sh) })
        {
            o.dtype.Should().Be(dtype);
            s.dtype.Should().Be(ScalarType.Float32);
            // The state is accumulated in float32 (error ~1e-6); the bound is the output's rounding to 8 / 11 bits.
            RelativeRms(s, sRef).Should().BeLessThan(1e-5);
            RelativeRms(o, oRef).Should().BeLessThan(dtype == ScalarType.BFloat16 ? 8e-3 : 1e-3);
        }
    }

    [Theory]
    [InlineData(100, 16, 1)]
    [InlineData(100, 16, 37)]
    [InlineData(100, 16, 64)]
    [InlineData(100, 7, 99)]
    [InlineData(65, 64, 1)]
    public void RunningInTwoPartsEqualsOneCall(long length, int chunkSize, long split)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(3000 + length + split, length);
        var (oWhole, sWhole) = DeltaRule.Chunked(q, k, v, beta, chunkSize, s0);

        Tensor First(Tensor t) => t.narrow(2, 0, split);
        Tensor Rest(Tensor t) => t.narrow(2, split, length - split);
        var (o1, s1) = DeltaRule.Chunked(First(q), First(k), First(v), First(beta), chunkSize, s0);
        var (o2, s2) = DeltaRule.Chunked(Rest(q), Rest(k), Rest(v), Rest(beta), chunkSize, s1);
        MaxAbsDiff(cat(new[] { o1, o2 }, 2), oWhole).Should().BeLessThan(1e-10);
        MaxAbsDiff(s2, sWhole).Should().BeLessThan(1e-10);

        // The decoding path: continue with the recurrent form from the chunked state.
        var (o2r, s2r) = DeltaRule.Recurrent(Rest(q), Rest(k), Rest(v), Rest(beta), s1);
        MaxAbsDiff(o2r, o2).Should().BeLessThan(1e-10);
        MaxAbsDiff(s2r, s2).Should().BeLessThan(1e-10);
    }

    [Fact]
    public void TheInputsAreNotModified()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(42, 33);
        var copies = new[] { q, k, v, beta, s0 }.Select(t => t.clone()).ToArray();
        DeltaRule.Chunked(q, k, v, beta, 8, s0);
        DeltaRule.Recurrent(q, k, v, beta, s0);
        var originals = new[] { q, k, v, beta, s0 };
        for (int i = 0; i < originals.Length; i++) MaxAbsDiff(originals[i], copies[i]).Should().Be(0);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(64)]
    public void ChunkDeltaRuleEqualsTheKernelWithOneHead(int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, _) = Inputs(77 + chunkSize, 23, nh: 1);
        var output = DeltaRule.ChunkDeltaRule(q.squeeze(1), k.squeeze(1), v.squeeze(1), beta.squeeze(1), chunkSize);
        var (reference, _) = DeltaRule.Recurrent(q, k, v, beta);

        output.shape.Should().Equal(B, 23, Dv);
        MaxAbsDiff(output, reference.squeeze(1)).Should().BeLessThan(1e-10);
    }

    public static IEnumerable<object[]> BadInputs()
    {
        // name of the argument that must be reported, and the call that must throw.
        yield return Case("q", (q, k, v, b, s) => DeltaRule.Chunked(q[0], k, v, b));
        yield return Case("k", (q, k, v, b, s) => DeltaRule.Chunked(q, k.narrow(3, 0, 4), v, b));
        yield return Case("k", (q, k, v, b, s) => DeltaRule.Chunked(q, k.narrow(2, 0, 4), v, b));
        yield return Case("k", (q, k, v, b, s) => DeltaRule.Chunked(q, k.to(ScalarType.Float32), v, b));
        yield return Case("v", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v.narrow(1, 0, 1), b));
        yield return Case("v", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v.narrow(0, 0, 1), b));
        yield return Case("v", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v.narrow(2, 0, 3), b));
        yield return Case("beta", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b.narrow(2, 0, 3)));
        yield return Case("beta", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b.narrow(1, 0, 1)));
        yield return Case("beta", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b.unsqueeze(-1)));
        yield return Case("chunkSize", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b, 0));
        yield return Case("chunkSize", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b, -3));
        yield return Case("initialState", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b, 4, s.transpose(2, 3)));
        yield return Case("initialState", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b, 4, s.narrow(1, 0, 1)));
        yield return Case("initialState", (q, k, v, b, s) => DeltaRule.Chunked(q, k, v, b, 4, s[0]));
        yield return Case("initialState", (q, k, v, b, s) => DeltaRule.Recurrent(q, k, v, b, s.narrow(0, 0, 1)));
        yield return Case("q", (q, k, v, b, s) => DeltaRule.Recurrent(q.narrow(2, 0, 0), k.narrow(2, 0, 0), v.narrow(2, 0, 0), b.narrow(2, 0, 0)));
        yield return Case("q", (q, k, v, b, s) => DeltaRule.Recurrent(q.to(ScalarType.Int64), k, v, b));
        yield return Case("k", (q, k, v, b, s) => DeltaRule.Recurrent(q, k.narrow(3, 0, 4), v, b));
        yield return Case("v", (q, k, v, b, s) => DeltaRule.Recurrent(q, k, v.narrow(2, 0, 3), b));
        yield return Case("beta", (q, k, v, b, s) => DeltaRule.Recurrent(q, k, v, b.narrow(0, 0, 1)));
        yield return Case("Q", (q, k, v, b, s) => DeltaRule.ChunkDeltaRule(q, k[.., 0], v[.., 0], b[.., 0], 4));
        yield return Case("K", (q, k, v, b, s) => DeltaRule.ChunkDeltaRule(q[.., 0], k[.., 0].narrow(1, 0, 2), v[.., 0], b[.., 0], 4));
        yield return Case("V", (q, k, v, b, s) => DeltaRule.ChunkDeltaRule(q[.., 0], k[.., 0], v[.., 0].narrow(1, 0, 2), b[.., 0], 4));
        yield return Case("beta", (q, k, v, b, s) => DeltaRule.ChunkDeltaRule(q[.., 0], k[.., 0], v[.., 0], b, 4));
        yield return Case("beta", (q, k, v, b, s) => DeltaRule.ChunkDeltaRule(q[.., 0], k[.., 0], v[.., 0], b[.., 0].narrow(1, 0, 2), 4));
        yield return Case("chunkSize", (q, k, v, b, s) => DeltaRule.ChunkDeltaRule(q[.., 0], k[.., 0], v[.., 0], b[.., 0], 0));

        static object[] Case(string param, Func<Tensor, Tensor, Tensor, Tensor, Tensor, object> call) => new object[] { param, call };
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInputThrowsNamingTheArgument(string param, Func<Tensor, Tensor, Tensor, Tensor, Tensor, object> call)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(5, 10);
        var act = () => call(q, k, v, beta, s0);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }

    [SkippableFact]
    public void CudaMatchesCpu()
    {
        Skip.IfNot(cuda.is_available(), "CUDA is not available");
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = Inputs(8, 130, ScalarType.Float32);
        var (oCpu, sCpu) = DeltaRule.Chunked(q, k, v, beta, 64, s0);
        var dev = CUDA;
        var (oGpu, sGpu) = DeltaRule.Chunked(q.to(dev), k.to(dev), v.to(dev), beta.to(dev), 64, s0.to(dev));
        oGpu.device_type.Should().Be(DeviceType.CUDA);
        RelativeRms(oGpu.cpu(), oCpu).Should().BeLessThan(1e-4);
        RelativeRms(sGpu.cpu(), sCpu).Should().BeLessThan(1e-4);
        var (oBf, sBf) = DeltaRule.Chunked(q.to(dev).to(ScalarType.BFloat16), k.to(dev).to(ScalarType.BFloat16),
            v.to(dev).to(ScalarType.BFloat16), beta.to(dev).to(ScalarType.BFloat16), 64, s0.to(dev));
        oBf.dtype.Should().Be(ScalarType.BFloat16);
        sBf.dtype.Should().Be(ScalarType.Float32);
        RelativeRms(oBf.cpu(), oCpu).Should().BeLessThan(2e-2);
    }
}
