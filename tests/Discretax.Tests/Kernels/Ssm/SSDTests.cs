using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class SSDTests
{
    private const long B = 2, NH = 4, P = 5, N = 3;

    /// <summary>
    /// Random inputs as a Mamba2 layer produces them: log decays a = -softplus(z) * scale (dt * A, non-positive), b and c
    /// per group, an initial state.
    /// </summary>
    private static (Tensor X, Tensor A, Tensor Bm, Tensor Cm, Tensor S0) Inputs(long seed, long length, long groups = NH,
        ScalarType dtype = ScalarType.Float64, long b = B, long nh = NH, long p = P, long n = N, double decayScale = 0.5)
    {
        var g = new Generator((ulong)seed);
        var x = randn(new[] { b, nh, length, p }, dtype: ScalarType.Float64, generator: g);
        var a = -nn.functional.softplus(randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: g)) * decayScale;
        var bm = randn(new[] { b, groups, length, n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var cm = randn(new[] { b, groups, length, n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var s0 = randn(new[] { b, nh, p, n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        return (x.to(dtype), a.to(dtype), bm.to(dtype), cm.to(dtype), s0.to(dtype));
    }

    private static double MaxAbsDiff(Tensor a, Tensor b) => TestUtil.MaxAbsDiff(a, b);

    private static bool AllFinite(Tensor t) => t.isfinite().all().item<bool>();

    /// <summary>b or c <c>[B, G, L, N]</c> expanded to one per head, head h taking group h / (NH / G), by an index.</summary>
    private static Tensor Expand(Tensor t, long nh)
    {
        long r = nh / t.shape[1];
        var index = tensor(Enumerable.Range(0, (int)nh).Select(h => (long)(h / r)).ToArray());
        return t.index_select(1, index);
    }

    [Fact]
    public void RecurrentEqualsAHandDerivedTwoStepCase()
    {
        using var scope = NewDisposeScope();
        // P = N = 1, one head: h_1 = e^{a_1} h_0 + x_1 b_1, y_1 = h_1 c_1; h_2 = e^{a_2} h_1 + x_2 b_2, y_2 = h_2 c_2.
        double[] a = { -0.5, -1.25 }, x = { 2.0, -1.0 }, b = { 0.5, 3.0 }, c = { 1.5, -2.0 };
        const double h0 = 0.25;
        double h1 = Math.Exp(a[0]) * h0 + x[0] * b[0];
        double h2 = Math.Exp(a[1]) * h1 + x[1] * b[1];
        Tensor T(double[] v, params long[] shape) => tensor(v, ScalarType.Float64).reshape(shape);
        var (y, s) = SSD.Recurrent(T(x, 1, 1, 2, 1), T(a, 1, 1, 2), T(b, 1, 1, 2, 1), T(c, 1, 1, 2, 1), T(new[] { h0 }, 1, 1, 1, 1));
        y.shape.Should().Equal(1, 1, 2, 1);
        s.shape.Should().Equal(1, 1, 1, 1);
        // Four float64 operations: agreement to rounding.
        y[0, 0, 0, 0].item<double>().Should().BeApproximately(h1 * c[0], 1e-14);
        y[0, 0, 1, 0].item<double>().Should().BeApproximately(h2 * c[1], 1e-14);
        s.item<double>().Should().BeApproximately(h2, 1e-14);
        var (yc, sc) = SSD.Chunked(T(x, 1, 1, 2, 1), T(a, 1, 1, 2), T(b, 1, 1, 2, 1), T(c, 1, 1, 2, 1), 2, T(new[] { h0 }, 1, 1, 1, 1));
        yc[0, 0, 1, 0].item<double>().Should().BeApproximately(h2 * c[1], 1e-14);
        sc.item<double>().Should().BeApproximately(h2, 1e-14);
    }

    /// <summary>
    /// The recurrence written out with scalars over flat double arrays, independent of any tensor op, with head h
    /// reading group h / (NH / G): h_t = exp(a_t) h_{t-1} + x_t b_t^T, y_t = h_t c_t.
    /// </summary>
    private static (double[] Output, double[] Final) ScalarSsd(double[] x, double[] a, double[] b, double[] c, double[]? s0,
        long bs, long nh, long g, long l, long p, long n)
    {
        var y = new double[bs * nh * l * p];
        var final = new double[bs * nh * p * n];
        for (long bi = 0; bi < bs; bi++)
            for (long h = 0; h < nh; h++)
            {
                long grp = h / (nh / g), bh = bi * nh + h, bg = bi * g + grp;
                var s = new double[p * n];
                if (s0 is not null) Array.Copy(s0, bh * p * n, s, 0, p * n);
                for (long t = 0; t < l; t++)
                {
                    double decay = Math.Exp(a[bh * l + t]);
                    for (long i = 0; i < p; i++)
                        for (long j = 0; j < n; j++)
                            s[i * n + j] = decay * s[i * n + j] + x[(bh * l + t) * p + i] * b[(bg * l + t) * n + j];
                    for (long i = 0; i < p; i++)
                    {
                        double sum = 0;
                        for (long j = 0; j < n; j++) sum += s[i * n + j] * c[(bg * l + t) * n + j];
                        y[(bh * l + t) * p + i] = sum;
                    }
                }
                Array.Copy(s, 0, final, bh * p * n, p * n);
            }
        return (y, final);
    }

    [Theory]
    [InlineData(1, 4, false)]
    [InlineData(19, 4, true)]
    [InlineData(19, 2, true)]
    [InlineData(19, 1, false)]
    public void RecurrentEqualsTheScalarLoop(long length, long groups, bool withState)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(10 + length + groups, length, groups);
        var (y, s) = SSD.Recurrent(x, a, b, c, withState ? s0 : null);
        var (yRef, sRef) = ScalarSsd(TestUtil.Values(x), TestUtil.Values(a), TestUtil.Values(b), TestUtil.Values(c),
            withState ? TestUtil.Values(s0) : null, B, NH, groups, length, P, N);
        y.shape.Should().Equal(B, NH, length, P);
        s.shape.Should().Equal(B, NH, P, N);
        // The same float64 arithmetic in another order: agreement to 1e-12.
        var yv = TestUtil.Values(y);
        var sv = TestUtil.Values(s);
        for (int i = 0; i < yRef.Length; i++) yv[i].Should().BeApproximately(yRef[i], 1e-12);
        for (int i = 0; i < sRef.Length; i++) sv[i].Should().BeApproximately(sRef[i], 1e-12);
    }

    public static IEnumerable<object[]> LengthsChunksGroups()
    {
        foreach (var l in new long[] { 1, 7, 64, 65, 150 })
            foreach (var c in new[] { 1, 8, 64, 300 })
                foreach (var g in new long[] { 4, 2, 1 })
                    yield return new object[] { l, c, g, (l + c + g) % 2 == 0 };
    }

    [Theory]
    [MemberData(nameof(LengthsChunksGroups))]
    public void ChunkedEqualsRecurrentInFloat64(long length, int chunkSize, long groups, bool withState)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(100 + length * 7 + chunkSize + groups, length, groups);
        var init = withState ? s0 : null;
        var (y, s) = SSD.Chunked(x, a, b, c, chunkSize, init);
        var (yRef, sRef) = SSD.Recurrent(x, a, b, c, init);
        y.shape.Should().Equal(B, NH, length, P);
        s.shape.Should().Equal(B, NH, P, N);
        y.dtype.Should().Be(ScalarType.Float64);
        s.dtype.Should().Be(ScalarType.Float64);
        // float64, sums of at most a few hundred O(1) terms: 1e-10.
        MaxAbsDiff(y, yRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }

    /// <summary>Lengths past one segment (SequenceSegments.Length) take the segmented path: still equal to the recurrence.</summary>
    [Theory]
    [InlineData(1100, 64, 2)]  // segments of 1024 steps: 1024 + 76
    [InlineData(2100, 7, 1)]   // segments of 1022 steps (146 chunks of 7): 1022 + 1022 + 56
    public void LongSequencesInSegmentsEqualRecurrentInFloat64(long length, int chunkSize, long groups)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(900 + length, length, groups, b: 1, p: 3, n: 2, decayScale: 0.05);
        var (y, s) = SSD.Chunked(x, a, b, c, chunkSize, s0);
        var (yRef, sRef) = SSD.Recurrent(x, a, b, c, s0);
        y.shape.Should().Equal(1, NH, length, 3);
        MaxAbsDiff(y, yRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(1, false)]
    [InlineData(2, false)]
    public void GroupsEqualTheKernelWithBAndCExpandedPerHead(long groups, bool chunked)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(40 + groups, 37, groups);
        (Tensor, Tensor) Run(Tensor bb, Tensor cc) => chunked ? SSD.Chunked(x, a, bb, cc, 8, s0) : SSD.Recurrent(x, a, bb, cc, s0);
        var (y, s) = Run(b, c);
        var (yRef, sRef) = Run(Expand(b, NH), Expand(c, NH));
        // Head h reads group h / (NH / G): the same arithmetic per head, agreement to 1e-12.
        MaxAbsDiff(y, yRef).Should().BeLessThan(1e-12);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-12);
        if (groups == 2)
        {
            // The tiled mapping (head h reads group h % G, fla's torch path) is another computation.
            var tiled = tensor(new long[] { 0, 1, 0, 1 });
            var (yTiled, _) = Run(b.index_select(1, tiled), c.index_select(1, tiled));
            MaxAbsDiff(y, yTiled).Should().BeGreaterThan(1e-3);
        }
    }

    [Theory]
    [InlineData(1, 1, 4)]
    [InlineData(23, 8, 4)]
    [InlineData(23, 8, 2)]
    [InlineData(64, 64, 1)]
    [InlineData(70, 64, 2)]
    [InlineData(70, 100, 1)]
    [InlineData(1100, 64, 2)] // two segments of the long-sequence path (1024 + 76)
    public void GradientsOfBothFormsAgree(long length, int chunkSize, long groups)
    {
        using var scope = NewDisposeScope();
        bool longCase = length > 1000;
        var (x, a, b, c, s0) = Inputs(500 + length + chunkSize + groups, length, groups, b: longCase ? 1 : B,
            p: longCase ? 2 : P, n: longCase ? 2 : N, decayScale: longCase ? 0.05 : 0.5);
        var g = new Generator(77);
        var outWeight = randn(x.shape, dtype: ScalarType.Float64, generator: g);
        var stateWeight = randn(s0.shape, dtype: ScalarType.Float64, generator: g);

        Tensor[] Grads(bool chunked)
        {
            var leaves = new[] { x, a, b, c, s0 }.Select(t => t.detach().clone().requires_grad_()).ToArray();
            var (y, s) = chunked
                ? SSD.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], chunkSize, leaves[4])
                : SSD.Recurrent(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]);
            ((y * outWeight).sum() + (s * stateWeight).sum()).backward();
            return leaves.Select(t => t.grad!).ToArray();
        }

        var chunkedGrads = Grads(true);
        var recurrentGrads = Grads(false);
        var names = new[] { "x", "a", "b", "c", "initialState" };
        for (int i = 0; i < names.Length; i++)
        {
            chunkedGrads[i].shape.Should().Equal(recurrentGrads[i].shape, names[i]);
            recurrentGrads[i].abs().max().item<double>().Should().BeGreaterThan(1e-3, $"the gradient wrt {names[i]} is not trivially zero");
            // float64 sums over the sequence: 1e-9.
            MaxAbsDiff(chunkedGrads[i], recurrentGrads[i]).Should().BeLessThan(1e-9, $"gradient wrt {names[i]}");
        }
    }

    public static TheoryData<string, ScalarType> DecayCases()
    {
        var data = new TheoryData<string, ScalarType>();
        foreach (var kind in new[] { "minus20", "zeros", "mixed", "chunksOfZero" })
            foreach (var dtype in new[] { ScalarType.Float64, ScalarType.Float32 })
                data.Add(kind, dtype);
        return data;
    }

    [Theory]
    [MemberData(nameof(DecayCases))]
    public void DecayExtremesStayFiniteAndExact(string kind, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        const long length = 50;
        const int chunk = 16;
        var (x, a0, b, c, s0) = Inputs(61, length, 2);
        var step = arange(length, dtype: ScalarType.Float64).reshape(1, 1, length);
        var a = kind switch
        {
            "minus20" => full_like(a0, -20.0),                                   // exp(-20 * 16) underflows to exact zeros
            "zeros" => zeros_like(a0),                                            // no decay at all: a plain sum
            "mixed" => where(step.remainder(3).eq(0), full_like(a0, -20.0), where(step.remainder(3).eq(1), zeros_like(a0), a0)),
            _ => where(step.lt(16).logical_or(step.ge(32)), zeros_like(a0), a0),  // the first and third chunks all zero
        };
        var inputs = new[] { x, a, b, c, s0 }.Select(t => t.to(dtype).detach().requires_grad_()).ToArray();
        var (y, s) = SSD.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], chunk, inputs[4]);
        AllFinite(y).Should().BeTrue();
        AllFinite(s).Should().BeTrue();
        (y.sum() + s.sum()).backward();
        foreach (var t in inputs) AllFinite(t.grad!).Should().BeTrue();

        var (yRef, sRef) = SSD.Recurrent(x, a, b, c, s0);                         // float64 oracle
        if (dtype == ScalarType.Float64)
        {
            MaxAbsDiff(y, yRef).Should().BeLessThan(1e-10);
            MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
        }
        else
        {
            // float32 rounding of sums of up to 50 O(1) terms (no decay at all for "zeros"): relative RMS 1e-5.
            TestUtil.RelRms(y, yRef).Should().BeLessThan(1e-5);
            TestUtil.RelRms(s, sRef).Should().BeLessThan(1e-5);
        }
        if (kind == "minus20")
        {
            // exp(-20) ~ 2e-9: every output is its own step's x_t (b_t . c_t) up to a relative 1e-8.
            var own = x * (b * c).sum(-1, keepdim: true).repeat_interleave(2, 1);
            MaxAbsDiff(yRef, own).Should().BeLessThan(1e-7);
        }
    }

    [Fact]
    public void ChunkSizeDoesNotChangeTheResult()
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(71, 97, 2);
        var (yRef, sRef) = SSD.Chunked(x, a, b, c, 64, s0);
        foreach (var chunk in new[] { 1, 2, 3, 16, 97, 128, 1000 })
        {
            var (y, s) = SSD.Chunked(x, a, b, c, chunk, s0);
            MaxAbsDiff(y, yRef).Should().BeLessThan(1e-10, $"chunk {chunk}");
            MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10, $"chunk {chunk}");
        }
        // float32: every chunk size within relative RMS 1e-6 of the float64 result (the float32 rounding of the products).
        var x32 = x.to(ScalarType.Float32);
        foreach (var chunk in new[] { 1, 16, 64 })
        {
            var (y, _) = SSD.Chunked(x32, a.to(ScalarType.Float32), b.to(ScalarType.Float32), c.to(ScalarType.Float32), chunk,
                s0.to(ScalarType.Float32));
            TestUtil.RelRms(y, yRef).Should().BeLessThan(1e-6, $"chunk {chunk}");
        }
    }

    [Theory]
    [InlineData(257, 64, 4)]
    [InlineData(300, 16, 1)]
    public void Float32ChunkedIsWithinRelativeRms1e6OfFloat64(long length, int chunkSize, long groups)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(900 + length, length, groups, p: 16, n: 16, decayScale: 2);
        var (yRef, sRef) = SSD.Recurrent(x, a, b, c, s0);
        var f = ScalarType.Float32;
        var (y32, s32) = SSD.Chunked(x.to(f), a.to(f), b.to(f), c.to(f), chunkSize, s0.to(f));
        y32.dtype.Should().Be(f);
        s32.dtype.Should().Be(f);
        // The segment sums are summed from the steps (no difference of large cumulative sums): float32 rounding only.
        TestUtil.RelRms(y32, yRef).Should().BeLessThan(1e-6);
        TestUtil.RelRms(s32, sRef).Should().BeLessThan(1e-6);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void HalfPrecisionInputsAreComputedInFloat32(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(1234, 70, 2, p: 16, n: 8);
        // Reference on the same rounded inputs, computed in float64.
        var (xh, ah, bh, ch, sh) = (x.to(dtype), a.to(dtype), b.to(dtype), c.to(dtype), s0.to(dtype));
        var f64 = ScalarType.Float64;
        var (yRef, sRef) = SSD.Recurrent(xh.to(f64), ah.to(f64), bh.to(f64), ch.to(f64), sh.to(f64));
        // float32 against float64 on the same inputs.
        var (y32, _) = SSD.Chunked(xh.to(ScalarType.Float32), ah.to(ScalarType.Float32), bh.to(ScalarType.Float32), ch.to(ScalarType.Float32),
            16, sh.to(ScalarType.Float32));
        foreach (var (y, s) in new[] { SSD.Chunked(xh, ah, bh, ch, 16, sh), SSD.Recurrent(xh, ah, bh, ch, sh) })
        {
            y.dtype.Should().Be(dtype);
            s.dtype.Should().Be(ScalarType.Float32);
            // The state is accumulated in float32 (error ~1e-7); the output bound is its rounding to 8 / 11 bits.
            TestUtil.RelRms(s, sRef).Should().BeLessThan(1e-5);
            TestUtil.RelRms(y, yRef).Should().BeLessThan(dtype == ScalarType.BFloat16 ? 8e-3 : 1e-3);
            // And exactly the float32 computation rounded: within one rounding of the output dtype.
            TestUtil.RelRms(y, y32).Should().BeLessThan(dtype == ScalarType.BFloat16 ? 8e-3 : 1e-3);
        }
        // A float32 a (Mamba2's dt * A is float32) with bfloat16 x, b, c is accepted.
        SSD.Chunked(xh, a.to(ScalarType.Float32), bh, ch).Output.dtype.Should().Be(dtype);
    }

    [Theory]
    [InlineData(100, 16, 1)]
    [InlineData(100, 16, 37)]
    [InlineData(100, 7, 99)]
    [InlineData(65, 64, 64)]
    public void RunningInTwoPartsEqualsOneCall(long length, int chunkSize, long split)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(3000 + length + split, length, 2);
        var (yWhole, sWhole) = SSD.Chunked(x, a, b, c, chunkSize, s0);
        Tensor First(Tensor t) => t.narrow(2, 0, split);
        Tensor Rest(Tensor t) => t.narrow(2, split, length - split);
        var (y1, s1) = SSD.Chunked(First(x), First(a), First(b), First(c), chunkSize, s0);
        var (y2, s2) = SSD.Chunked(Rest(x), Rest(a), Rest(b), Rest(c), chunkSize, s1);
        MaxAbsDiff(cat(new[] { y1, y2 }, 2), yWhole).Should().BeLessThan(1e-10);
        MaxAbsDiff(s2, sWhole).Should().BeLessThan(1e-10);
        // The decoding path: continue with the recurrent form from the chunked state.
        var (y2r, s2r) = SSD.Recurrent(Rest(x), Rest(a), Rest(b), Rest(c), s1);
        MaxAbsDiff(y2r, y2).Should().BeLessThan(1e-10);
        MaxAbsDiff(s2r, s2).Should().BeLessThan(1e-10);
    }

    [Fact]
    public void TheInputsAreNotModifiedNorReturned()
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(42, 33, 2);
        var originals = new[] { x, a, b, c, s0 };
        var copies = originals.Select(t => t.clone()).ToArray();
        var results = new[] { SSD.Chunked(x, a, b, c, 8, s0), SSD.Recurrent(x, a, b, c, s0), SSD.Chunked(x, a, b, c, 64, s0) };
        for (int i = 0; i < originals.Length; i++) MaxAbsDiff(originals[i], copies[i]).Should().Be(0);
        foreach (var (y, s) in results)
            foreach (var t in originals)
            {
                ReferenceEquals(y, t).Should().BeFalse();
                ReferenceEquals(s, t).Should().BeFalse();
            }
    }

    [Fact]
    public void EveryFormLeavesOnlyItsTwoResultsInTheCallersScope()
    {
        using var outer = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(43, 1100, 2, b: 1, p: 2, n: 2);
        var cu = tensor(new long[] { 0, 5, 1100 });
        var packedState = s0.expand(2, NH, 2, 2).contiguous();
        Tensor[] shortIn = new[] { x, a, b, c }.Select(t => t.narrow(2, 0, 30)).ToArray();
        var (s1, cuShort) = (s0.narrow(0, 0, 1), tensor(new long[] { 0, 5, 30 }));
        var calls = new Func<(Tensor, Tensor)>[]
        {
            () => SSD.Chunked(x, a, b, c, 8, s0),                                  // 1100 steps: the segmented path
            () => SSD.Chunked(shortIn[0], shortIn[1], shortIn[2], shortIn[3], 8),
            () => SSD.Recurrent(shortIn[0], shortIn[1], shortIn[2], shortIn[3], s1),
            () => SSD.Chunked(x, a, b, c, 8, packedState, cu),
            () => SSD.Recurrent(shortIn[0], shortIn[1], shortIn[2], shortIn[3], packedState, cuShort),
        };
        for (int i = 0; i < calls.Length; i++)
        {
            using var scope = NewDisposeScope();
            calls[i]();
            scope.DisposablesCount.Should().Be(2, "only the output and the final state may stay in the caller's scope (call {0})", i);
        }
    }

    public static IEnumerable<object[]> BadInputs()
    {
        // The argument that must be reported, and the call that must throw (x [2, 4, 10, 5], a [2, 4, 10], b, c [2, 2, 10, 3]).
        yield return Case("x", (x, a, b, c, s) => SSD.Chunked(x[0], a, b, c));
        yield return Case("x", (x, a, b, c, s) => SSD.Chunked(x.to(ScalarType.Int64), a, b, c));
        yield return Case("x", (x, a, b, c, s) => SSD.Chunked(x.narrow(0, 0, 0), a.narrow(0, 0, 0), b.narrow(0, 0, 0), c.narrow(0, 0, 0)));
        yield return Case("x", (x, a, b, c, s) => SSD.Recurrent(x.narrow(2, 0, 0), a.narrow(2, 0, 0), b.narrow(2, 0, 0), c.narrow(2, 0, 0)));
        yield return Case("a", (x, a, b, c, s) => SSD.Chunked(x, a.narrow(2, 0, 3), b, c));
        yield return Case("a", (x, a, b, c, s) => SSD.Chunked(x, a.narrow(1, 0, 2), b, c));
        yield return Case("a", (x, a, b, c, s) => SSD.Chunked(x, a.unsqueeze(-1), b, c));
        yield return Case("a", (x, a, b, c, s) => SSD.Recurrent(x, a.to(ScalarType.Int32), b, c));
        yield return Case("b", (x, a, b, c, s) => SSD.Chunked(x, a, b.narrow(2, 0, 3), c));
        yield return Case("b", (x, a, b, c, s) => SSD.Chunked(x, a, b.narrow(0, 0, 1), c));
        yield return Case("b", (x, a, b, c, s) => SSD.Chunked(x, a, cat(new[] { b, b.narrow(1, 0, 1) }, 1), cat(new[] { c, c.narrow(1, 0, 1) }, 1)));
        yield return Case("b", (x, a, b, c, s) => SSD.Chunked(x, a, b.to(ScalarType.Float32), c));
        yield return Case("b", (x, a, b, c, s) => SSD.Recurrent(x, a, b[0], c));
        yield return Case("c", (x, a, b, c, s) => SSD.Chunked(x, a, b, c.narrow(3, 0, 2)));
        yield return Case("c", (x, a, b, c, s) => SSD.Chunked(x, a, b, c.narrow(1, 0, 1)));
        yield return Case("c", (x, a, b, c, s) => SSD.Recurrent(x, a, b, c.to(ScalarType.Float32)));
        yield return Case("chunkSize", (x, a, b, c, s) => SSD.Chunked(x, a, b, c, 0));
        yield return Case("chunkSize", (x, a, b, c, s) => SSD.Chunked(x, a, b, c, -3));
        yield return Case("initialState", (x, a, b, c, s) => SSD.Chunked(x, a, b, c, 4, s.transpose(2, 3)));
        yield return Case("initialState", (x, a, b, c, s) => SSD.Chunked(x, a, b, c, 4, s.narrow(1, 0, 2)));
        yield return Case("initialState", (x, a, b, c, s) => SSD.Chunked(x, a, b, c, 4, s[0]));
        yield return Case("initialState", (x, a, b, c, s) => SSD.Recurrent(x, a, b, c, s.narrow(0, 0, 1)));
        yield return Case("initialState", (x, a, b, c, s) => SSD.Recurrent(x, a, b, c, s.to(ScalarType.Int64)));

        static object[] Case(string param, Func<Tensor, Tensor, Tensor, Tensor, Tensor, object> call) => new object[] { param, call };
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInputThrowsNamingTheArgument(string param, Func<Tensor, Tensor, Tensor, Tensor, Tensor, object> call)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(5, 10, 2);
        var act = () => call(x, a, b, c, s0);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }

    [Fact]
    public void BadInputMessagesSayWhatWasExpectedAndWhatCame()
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(6, 10, 2);
        var groups = () => SSD.Chunked(x, a, cat(new[] { b, b.narrow(1, 0, 1) }, 1), cat(new[] { c, c.narrow(1, 0, 1) }, 1));
        groups.Should().Throw<ArgumentException>().WithMessage("*G dividing the NH = 4 heads*got shape [2, 3, 10, 3] (G = 3)*");
        var stateDim = () => SSD.Chunked(x, a, b, c.narrow(3, 0, 2));
        stateDim.Should().Throw<ArgumentException>().WithMessage("*c with the shape of b [2, 2, 10, 3]*got shape [2, 2, 10, 2]*");
        var state = () => SSD.Recurrent(x, a, b, c, s0.transpose(2, 3));
        state.Should().Throw<ArgumentException>().WithMessage("*initialState [B, NH, P, N] = [2, 4, 5, 3]*got shape [2, 4, 3, 5]*");
        var empty = () => SSD.Chunked(x.narrow(0, 0, 0), a.narrow(0, 0, 0), b.narrow(0, 0, 0), c.narrow(0, 0, 0));
        empty.Should().Throw<ArgumentException>().WithMessage("*x [B, NH, L, P] with every size at least 1*got shape [0, 4, 10, 5]*");
    }

    [SkippableFact]
    public void CudaMatchesCpu()
    {
        Skip.IfNot(cuda.is_available(), "CUDA is not available");
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(8, 130, 2, ScalarType.Float32, p: 32, n: 16);
        var (yCpu, sCpu) = SSD.Chunked(x, a, b, c, 64, s0);
        var dev = CUDA;
        var (yGpu, sGpu) = SSD.Chunked(x.to(dev), a.to(dev), b.to(dev), c.to(dev), 64, s0.to(dev));
        yGpu.device_type.Should().Be(DeviceType.CUDA);
        TestUtil.RelRms(yGpu.cpu(), yCpu).Should().BeLessThan(1e-4);
        TestUtil.RelRms(sGpu.cpu(), sCpu).Should().BeLessThan(1e-4);
        var (yRec, _) = SSD.Recurrent(x.to(dev), a.to(dev), b.to(dev), c.to(dev), s0.to(dev));
        TestUtil.RelRms(yRec.cpu(), yCpu).Should().BeLessThan(1e-4);
        var bf = ScalarType.BFloat16;
        var (yBf, sBf) = SSD.Chunked(x.to(dev).to(bf), a.to(dev), b.to(dev).to(bf), c.to(dev).to(bf), 64, s0.to(dev));
        yBf.dtype.Should().Be(bf);
        sBf.dtype.Should().Be(ScalarType.Float32);
        TestUtil.RelRms(yBf.cpu(), yCpu).Should().BeLessThan(2e-2);
    }
}
