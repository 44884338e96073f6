using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using SysComplex = System.Numerics.Complex;

namespace Discretax.Tests.Kernels;

public class LinearScanTests
{
    // The states (Output) of each form; the final states are checked in FinalStateIsACopyOfTheLastStep.
    private static Tensor ScanH(Tensor c, Tensor x, Tensor? h0 = null) => LinearScan.Scan(c, x, h0).Output;

    private static Tensor RecurrentH(Tensor c, Tensor x, Tensor? h0 = null) => LinearScan.Recurrent(c, x, h0).Output;

    private static Tensor ParallelH(Tensor c, Tensor x, Tensor? h0 = null, int chunkSize = LinearScan.DefaultChunkSize) =>
        LinearScan.Parallel(c, x, h0, chunkSize).Output;

    public enum ALayout { N, LN, BLN, OneN, B1N }

    // ---------- helpers ----------

    private static long[] AShape(ALayout layout, long b, long l, long n) => layout switch
    {
        ALayout.N => new[] { n },
        ALayout.LN => new[] { l, n },
        ALayout.BLN => new[] { b, l, n },
        ALayout.OneN => new[] { 1, n },
        _ => new[] { b, 1, n },
    };

    /// <summary>Coefficients with modulus in [lo, hi] (random sign or phase).</summary>
    private static Tensor MakeA(long[] shape, ScalarType dtype, double lo, double hi, Generator g)
    {
        var real = dtype is ScalarType.Float32 or ScalarType.Float64 ? dtype : (dtype == ScalarType.ComplexFloat32 ? ScalarType.Float32 : ScalarType.Float64);
        using var u = rand(shape, dtype: ScalarType.Float64, generator: g);
        using var r = u * (hi - lo) + lo;
        using var phase = rand(shape, dtype: ScalarType.Float64, generator: g) * (2 * Math.PI);
        if (real == dtype)
        {
            using var sign = (rand(shape, dtype: ScalarType.Float64, generator: g) > 0.5).to_type(ScalarType.Float64) * 2 - 1;
            return (r * sign).to_type(dtype);
        }
        using var c = torch.complex(r * phase.cos(), r * phase.sin());
        return c.to_type(dtype);
    }

    private static Tensor Randn(long[] shape, ScalarType dtype, Generator g) => randn(shape, dtype: dtype, generator: g);

    /// <summary>max |actual - expected| / max(1, max |expected|), computed in float64.</summary>
    private static double RelMax(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var e = expected.is_complex() ? expected.to_type(ScalarType.ComplexFloat64) : expected.to_type(ScalarType.Float64);
        var a = actual.is_complex() ? actual.to_type(ScalarType.ComplexFloat64) : actual.to_type(ScalarType.Float64);
        double diff = (a - e).abs().max().item<double>();
        double scale = Math.Max(1.0, e.abs().max().item<double>());
        return diff / scale;
    }

    /// <summary>RMS(actual - expected) / RMS(expected), in float64.</summary>
    private static double RelRms(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var e = expected.is_complex() ? expected.to_type(ScalarType.ComplexFloat64) : expected.to_type(ScalarType.Float64);
        var a = actual.is_complex() ? actual.to_type(ScalarType.ComplexFloat64) : actual.to_type(ScalarType.Float64);
        double num = (a - e).abs().pow(2).mean().sqrt().item<double>();
        double den = e.abs().pow(2).mean().sqrt().item<double>();
        return num / den;
    }

    private static double[] Doubles(Tensor t)
    {
        using var c = t.is_complex() ? t.view_as_real().contiguous() : t.contiguous();
        return c.data<double>().ToArray();
    }

    // ---------- Sequential against a hand-written scalar loop ----------

    [Fact]
    public void SequentialMatchesScalarLoopReal()
    {
        var g = new Generator(11);
        const int B = 2, L = 5, N = 3;
        using var a = MakeA(new long[] { L, N }, ScalarType.Float64, 0.3, 1.1, g);
        using var b = Randn(new long[] { B, L, N }, ScalarType.Float64, g);
        using var h0 = Randn(new long[] { B, N }, ScalarType.Float64, g);
        using var h = RecurrentH(a, b, h0);
        double[] av = Doubles(a), bv = Doubles(b), h0v = Doubles(h0), hv = Doubles(h);
        for (int bi = 0; bi < B; bi++)
            for (int n = 0; n < N; n++)
            {
                double s = h0v[bi * N + n];
                for (int t = 0; t < L; t++)
                {
                    s = av[t * N + n] * s + bv[(bi * L + t) * N + n];
                    hv[(bi * L + t) * N + n].Should().BeApproximately(s, 1e-14 * Math.Max(1, Math.Abs(s)));
                }
            }
    }

    [Fact]
    public void SequentialMatchesScalarLoopComplex()
    {
        var g = new Generator(12);
        const int B = 2, L = 6, N = 3;
        using var a = MakeA(new long[] { B, L, N }, ScalarType.ComplexFloat64, 0.3, 1.1, g);
        using var b = Randn(new long[] { B, L, N }, ScalarType.ComplexFloat64, g);
        using var h = RecurrentH(a, b);
        double[] av = Doubles(a), bv = Doubles(b), hv = Doubles(h);
        for (int bi = 0; bi < B; bi++)
            for (int n = 0; n < N; n++)
            {
                var s = SysComplex.Zero;
                for (int t = 0; t < L; t++)
                {
                    int i = (bi * L + t) * N + n;
                    s = new SysComplex(av[2 * i], av[2 * i + 1]) * s + new SysComplex(bv[2 * i], bv[2 * i + 1]);
                    var got = new SysComplex(hv[2 * i], hv[2 * i + 1]);
                    (got - s).Magnitude.Should().BeLessThan(1e-14 * Math.Max(1, s.Magnitude));
                }
            }
    }

    // ---------- CPU kernel (Scan) against Sequential ----------

    public static TheoryData<ScalarType, ALayout, bool, int, int, int> ForwardCases()
    {
        var data = new TheoryData<ScalarType, ALayout, bool, int, int, int>();
        foreach (var dtype in new[] { ScalarType.Float64, ScalarType.ComplexFloat64 })
            foreach (var layout in new[] { ALayout.N, ALayout.LN, ALayout.BLN })
                foreach (bool withH0 in new[] { false, true })
                {
                    data.Add(dtype, layout, withH0, 2, 1, 7);   // L = 1
                    data.Add(dtype, layout, withH0, 3, 37, 7);  // N not a multiple of the vector width
                }
        // Large enough to run in parallel with row blocks (and a ragged last block).
        data.Add(ScalarType.ComplexFloat64, ALayout.N, true, 2, 300, 70);
        data.Add(ScalarType.Float64, ALayout.BLN, true, 3, 200, 150);
        data.Add(ScalarType.ComplexFloat64, ALayout.LN, false, 1, 400, 133);
        return data;
    }

    [Theory]
    [MemberData(nameof(ForwardCases))]
    public void ScanMatchesSequential(ScalarType dtype, ALayout layout, bool withH0, int B, int L, int N)
    {
        var g = new Generator((ulong)(100 + (int)layout + L));
        using var scope = NewDisposeScope();
        var a = MakeA(AShape(layout, B, L, N), dtype, 0.5, 0.999, g);
        var b = Randn(new long[] { B, L, N }, dtype, g);
        var h0 = withH0 ? Randn(new long[] { B, N }, dtype, g) : null;
        var expected = RecurrentH(a, b, h0);
        var actual = ScanH(a, b, h0);
        actual.shape.Should().Equal(B, L, N);
        actual.dtype.Should().Be(dtype);
        RelMax(actual, expected).Should().BeLessThan(1e-12);
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-6)]
    [InlineData(ScalarType.ComplexFloat64, 1e-6)]
    [InlineData(ScalarType.ComplexFloat64, 0.999)]
    public void ScanMatchesSequentialForModuli(ScalarType dtype, double modulus)
    {
        var g = new Generator(7);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { 2, 100, 5 }, dtype, modulus, modulus, g);
        var b = Randn(new long[] { 2, 100, 5 }, dtype, g);
        var h0 = Randn(new long[] { 2, 5 }, dtype, g);
        RelMax(ScanH(a, b, h0), RecurrentH(a, b, h0)).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void ScanReadsNonContiguousAndConjugatedInputs()
    {
        var g = new Generator(8);
        using var scope = NewDisposeScope();
        // a [L, N] = [3, 9] as the conjugate view of a transposed [9, 3] tensor; b [B, L, N] = [5, 3, 9] as a transpose.
        var aT = MakeA(new long[] { 9, 3 }, ScalarType.ComplexFloat64, 0.5, 0.99, g).conj().transpose(0, 1);
        var b = Randn(new long[] { 3, 5, 9 }, ScalarType.ComplexFloat64, g).transpose(0, 1);
        aT.is_contiguous().Should().BeFalse();
        b.is_contiguous().Should().BeFalse();
        var expected = RecurrentH(aT.resolve_conj().contiguous(), b.contiguous());
        RelMax(ScanH(aT, b), expected).Should().BeLessThan(1e-12);
        RelMax(ParallelH(aT, b, chunkSize: 2), expected).Should().BeLessThan(1e-12);
    }

    // ---------- gradients: custom backward vs autograd through Sequential ----------

    public static TheoryData<ScalarType, ALayout, bool> GradCases()
    {
        var data = new TheoryData<ScalarType, ALayout, bool>();
        foreach (var dtype in new[] { ScalarType.Float64, ScalarType.ComplexFloat64 })
            foreach (var layout in Enum.GetValues<ALayout>())
                data.Add(dtype, layout, true);
        data.Add(ScalarType.ComplexFloat64, ALayout.N, false);
        data.Add(ScalarType.Float64, ALayout.LN, false);
        return data;
    }

    private delegate Tensor ScanForm(Tensor a, Tensor b, Tensor? h0);

    /// <summary>Gradients of sum(Re(h * w)) with respect to (a, b, h0) that require one.</summary>
    private static Tensor?[] Grads(ScanForm form, Tensor a, Tensor b, Tensor? h0, Tensor w)
    {
        var h = form(a, b, h0);
        var loss = h.is_complex() ? (h * w).real.sum() : (h * w).sum();
        var inputs = new List<Tensor>();
        foreach (var t in new[] { a, b, h0 })
            if (t is not null && t.requires_grad) inputs.Add(t);
        var grads = torch.autograd.grad(new[] { loss }, inputs);
        var result = new Tensor?[3];
        int k = 0;
        for (int i = 0; i < 3; i++)
        {
            var t = i == 0 ? a : i == 1 ? b : h0;
            if (t is not null && t.requires_grad) result[i] = grads[k++];
        }
        return result;
    }

    [Theory]
    [MemberData(nameof(GradCases))]
    public void ScanGradientsMatchAutogradThroughSequential(ScalarType dtype, ALayout layout, bool allRequireGrad)
    {
        const int B = 3, L = 23, N = 5;
        var g = new Generator((ulong)(200 + (int)layout));
        using var scope = NewDisposeScope();
        var a = MakeA(AShape(layout, B, L, N), dtype, 0.3, 0.99, g).requires_grad_(true);
        var b = Randn(new long[] { B, L, N }, dtype, g).requires_grad_(allRequireGrad);
        var h0 = Randn(new long[] { B, N }, dtype, g).requires_grad_(allRequireGrad);
        var w = Randn(new long[] { B, L, N }, dtype, g);

        var expected = Grads(RecurrentH, a, b, h0, w);
        var actual = Grads(ScanH, a, b, h0, w);
        for (int i = 0; i < 3; i++)
        {
            if (expected[i] is null)
            {
                actual[i].Should().BeNull();
                continue;
            }
            actual[i]!.shape.Should().Equal(expected[i]!.shape);
            RelMax(actual[i]!, expected[i]!).Should().BeLessThan(1e-12, $"gradient {i} (0 = a, 1 = b, 2 = h0)");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.ComplexFloat64)]
    public void ScanGradientWhenOnlyBRequiresGrad(ScalarType dtype)
    {
        const int B = 2, L = 17, N = 9;
        var g = new Generator(300);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { N }, dtype, 0.3, 0.99, g);
        var b = Randn(new long[] { B, L, N }, dtype, g).requires_grad_(true);
        var w = Randn(new long[] { B, L, N }, dtype, g);
        var expected = Grads(RecurrentH, a, b, null, w);
        var actual = Grads(ScanH, a, b, null, w);
        RelMax(actual[1]!, expected[1]!).Should().BeLessThan(1e-12);
        actual[0].Should().BeNull();
    }

    [Fact]
    public void ScanGradientWhenOnlyInitialStateRequiresGrad()
    {
        const int B = 2, L = 11, N = 4;
        var g = new Generator(301);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { L, N }, ScalarType.ComplexFloat64, 0.3, 0.99, g);
        var b = Randn(new long[] { B, L, N }, ScalarType.ComplexFloat64, g);
        var h0 = Randn(new long[] { B, N }, ScalarType.ComplexFloat64, g).requires_grad_(true);
        var w = Randn(new long[] { B, L, N }, ScalarType.ComplexFloat64, g);
        var expected = Grads(RecurrentH, a, b, h0, w);
        var actual = Grads(ScanH, a, b, h0, w);
        RelMax(actual[2]!, expected[2]!).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void ScanWithoutGradModeReturnsADetachedResult()
    {
        var g = new Generator(302);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { 6 }, ScalarType.Float64, 0.3, 0.99, g).requires_grad_(true);
        var b = Randn(new long[] { 2, 5, 6 }, ScalarType.Float64, g);
        Tensor h;
        using (torch.no_grad())
            h = ScanH(a, b);
        h.requires_grad.Should().BeFalse();
        RelMax(h, RecurrentH(a, b)).Should().BeLessThan(1e-12);
    }

    // ---------- the parallel tensor form (the CUDA path) on CPU ----------

    public static TheoryData<ScalarType, ALayout, int, int, bool> ParallelCases()
    {
        var data = new TheoryData<ScalarType, ALayout, int, int, bool>();
        foreach (var dtype in new[] { ScalarType.Float64, ScalarType.ComplexFloat64 })
            foreach (var layout in new[] { ALayout.N, ALayout.LN, ALayout.BLN })
            {
                foreach (int len in new[] { 1, 2, 3, 37, 100 })
                    data.Add(dtype, layout, len, 8, true);
                data.Add(dtype, layout, 37, 1, false);
                data.Add(dtype, layout, 100, 64, false);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(ParallelCases))]
    public void ParallelFormMatchesSequential(ScalarType dtype, ALayout layout, int L, int chunk, bool withH0)
    {
        const int B = 2, N = 5;
        var g = new Generator((ulong)(400 + L + chunk));
        using var scope = NewDisposeScope();
        var a = MakeA(AShape(layout, B, L, N), dtype, 0.5, 0.999, g);
        var b = Randn(new long[] { B, L, N }, dtype, g);
        var h0 = withH0 ? Randn(new long[] { B, N }, dtype, g) : null;
        var actual = ParallelH(a, b, h0, chunk);
        actual.shape.Should().Equal(B, L, N);
        RelMax(actual, RecurrentH(a, b, h0)).Should().BeLessThan(1e-12);
    }

    [Theory]
    [InlineData(ScalarType.Float64, ALayout.N)]
    [InlineData(ScalarType.ComplexFloat64, ALayout.BLN)]
    [InlineData(ScalarType.ComplexFloat64, ALayout.OneN)]
    public void ParallelFormGradientsMatchSequential(ScalarType dtype, ALayout layout)
    {
        const int B = 2, L = 21, N = 3;
        var g = new Generator((ulong)(500 + (int)layout));
        using var scope = NewDisposeScope();
        var a = MakeA(AShape(layout, B, L, N), dtype, 0.3, 0.99, g).requires_grad_(true);
        var b = Randn(new long[] { B, L, N }, dtype, g).requires_grad_(true);
        var h0 = Randn(new long[] { B, N }, dtype, g).requires_grad_(true);
        var w = Randn(new long[] { B, L, N }, dtype, g);
        var expected = Grads(RecurrentH, a, b, h0, w);
        var actual = Grads((x, y, z) => ParallelH(x, y, z, 4), a, b, h0, w);
        for (int i = 0; i < 3; i++)
            RelMax(actual[i]!, expected[i]!).Should().BeLessThan(1e-12, $"gradient {i}");
    }

    [Fact]
    public void ModulusNearOneOverALongSpan()
    {
        // |a| = 0.9999 over L = 5000: a^5000 ~ 0.61, the state sums thousands of terms.
        const int L = 5000, N = 4;
        var g = new Generator(600);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { N }, ScalarType.ComplexFloat64, 0.9999, 0.9999, g);
        var b = Randn(new long[] { 1, L, N }, ScalarType.ComplexFloat64, g);
        var h0 = Randn(new long[] { 1, N }, ScalarType.ComplexFloat64, g);
        var expected = RecurrentH(a, b, h0);
        RelMax(ParallelH(a, b, h0), expected).Should().BeLessThan(1e-11);
        RelMax(ParallelH(a, b, h0, 16), expected).Should().BeLessThan(1e-11);
        RelMax(ScanH(a, b, h0), expected).Should().BeLessThan(1e-11);
    }

    [Theory]
    [InlineData(ScalarType.Float64)]
    [InlineData(ScalarType.ComplexFloat64)]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.ComplexFloat32)]
    public void TinyModulusUnderflowsCleanly(ScalarType dtype)
    {
        // |a| = 1e-30: products of a few coefficients underflow to 0, which is their correct value; a form that
        // divided by cumulative products would produce inf/NaN here.
        const int B = 2, L = 200, N = 3;
        var g = new Generator(601);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { L, N }, dtype, 1e-30, 1e-30, g);
        var b = Randn(new long[] { B, L, N }, dtype, g);
        var h0 = Randn(new long[] { B, N }, dtype, g);
        var expected = RecurrentH(a, b, h0);
        foreach (var actual in new[] { ParallelH(a, b, h0), ParallelH(a, b, h0, 7), ScanH(a, b, h0) })
        {
            actual.isfinite().all().item<bool>().Should().BeTrue();
            RelMax(actual, expected).Should().BeLessThan(dtype is ScalarType.Float64 or ScalarType.ComplexFloat64 ? 1e-14 : 1e-6);
            // h_t = b_t up to 1e-30 relative.
            RelMax(actual.narrow(1, 1, L - 1), b.narrow(1, 1, L - 1)).Should().BeLessThan(dtype is ScalarType.Float64 or ScalarType.ComplexFloat64 ? 1e-14 : 1e-6);
        }
    }

    // ---------- reduced precision ----------

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.ComplexFloat32)]
    public void Float32AgainstFloat64Reference(ScalarType dtype)
    {
        const int B = 2, L = 500, N = 33;
        var g = new Generator(700);
        using var scope = NewDisposeScope();
        var wide = dtype == ScalarType.Float32 ? ScalarType.Float64 : ScalarType.ComplexFloat64;
        var a = MakeA(new long[] { N }, wide, 0.9, 0.999, g);
        var b = Randn(new long[] { B, L, N }, wide, g);
        var h0 = Randn(new long[] { B, N }, wide, g);
        var reference = RecurrentH(a, b, h0);
        var a32 = a.to_type(dtype);
        var b32 = b.to_type(dtype);
        var h032 = h0.to_type(dtype);
        // Bound: float32 rounding of inputs and ~sqrt(1/(1-|a|)) accumulated roundings: 1e-5 relative RMS.
        RelRms(ScanH(a32, b32, h032), reference).Should().BeLessThan(1e-5);
        RelRms(ParallelH(a32, b32, h032), reference).Should().BeLessThan(1e-5);
    }

    [Theory]
    [InlineData(ScalarType.Float32, ALayout.N)]
    [InlineData(ScalarType.Float32, ALayout.BLN)]
    [InlineData(ScalarType.ComplexFloat32, ALayout.N)]
    [InlineData(ScalarType.ComplexFloat32, ALayout.LN)]
    public void Float32GradientsAgainstFloat64Reference(ScalarType dtype, ALayout layout)
    {
        const int B = 2, L = 60, N = 37;
        var g = new Generator((ulong)(710 + (int)layout));
        using var scope = NewDisposeScope();
        var wide = dtype == ScalarType.Float32 ? ScalarType.Float64 : ScalarType.ComplexFloat64;
        var a = MakeA(AShape(layout, B, L, N), wide, 0.5, 0.99, g);
        var b = Randn(new long[] { B, L, N }, wide, g);
        var h0 = Randn(new long[] { B, N }, wide, g);
        var w = Randn(new long[] { B, L, N }, wide, g);
        var expected = Grads(RecurrentH, a.requires_grad_(true), b.requires_grad_(true), h0.requires_grad_(true), w);
        var a32 = a.detach().to_type(dtype).requires_grad_(true);
        var b32 = b.detach().to_type(dtype).requires_grad_(true);
        var h032 = h0.detach().to_type(dtype).requires_grad_(true);
        var actual = Grads(ScanH, a32, b32, h032, w.to_type(dtype));
        for (int i = 0; i < 3; i++)
        {
            actual[i]!.dtype.Should().Be(dtype);
            RelRms(actual[i]!, expected[i]!).Should().BeLessThan(1e-5, $"gradient {i}");
        }
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 2e-2)]
    [InlineData(ScalarType.Float16, 5e-3)]
    public void HalfPrecisionComputesInFloat32(ScalarType dtype, double bound)
    {
        const int B = 2, L = 300, N = 8;
        var g = new Generator(701);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { N }, ScalarType.Float64, 0.9, 0.99, g).to_type(dtype);
        var b = Randn(new long[] { B, L, N }, ScalarType.Float64, g).to_type(dtype);
        // The reference sees the same (rounded) inputs in float64; the error left is the output rounding
        // (2^-8 for bfloat16, 2^-11 for float16), not an accumulation over L.
        var reference = RecurrentH(a.to_type(ScalarType.Float64), b.to_type(ScalarType.Float64));
        var h = ScanH(a, b);
        h.dtype.Should().Be(dtype);
        RelRms(h, reference).Should().BeLessThan(bound);
        RelRms(ParallelH(a, b), reference).Should().BeLessThan(bound);
    }

    // ---------- validation ----------

    [Fact]
    public void BadInputsThrowNamingTheArgument()
    {
        using var scope = NewDisposeScope();
        var b = zeros(2, 5, 3, dtype: ScalarType.Float64);
        var a = zeros(3, dtype: ScalarType.Float64);
        var cases = new (Action Call, string Param)[]
        {
            (() => ScanH(a, zeros(5, 3, dtype: ScalarType.Float64)), "b"),
            (() => ScanH(a, zeros(2, 5, 3, dtype: ScalarType.Int32)), "b"),
            (() => ScanH(zeros(4, dtype: ScalarType.Float64), b), "a"),
            (() => ScanH(zeros(6, 3, dtype: ScalarType.Float64), b), "a"),
            (() => ScanH(zeros(1, 2, 5, 3, dtype: ScalarType.Float64), b), "a"),
            (() => ScanH(zeros(3, dtype: ScalarType.Float32), b), "a"),
            (() => ScanH(zeros(3, dtype: ScalarType.ComplexFloat64), b), "a"),
            (() => ScanH(a, b, zeros(2, 4, dtype: ScalarType.Float64)), "initialState"),
            (() => ScanH(a, b, zeros(2, 1, 3, dtype: ScalarType.Float64)), "initialState"),
            (() => ScanH(a, b, zeros(2, 3, dtype: ScalarType.Float32)), "initialState"),
            (() => RecurrentH(zeros(4, dtype: ScalarType.Float64), b), "a"),
            (() => ParallelH(zeros(4, dtype: ScalarType.Float64), b), "a"),
            (() => ParallelH(a, b, null, 0), "chunkSize"),
        };
        foreach (var (call, param) in cases)
            call.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }

    // ---------- CUDA ----------

    [SkippableFact]
    public void CudaScanMatchesCpuSequential()
    {
        Skip.IfNot(torch.cuda.is_available(), "CUDA is not available.");
        var g = new Generator(800);
        using var scope = NewDisposeScope();
        var a = MakeA(new long[] { 16 }, ScalarType.ComplexFloat64, 0.5, 0.999, g).requires_grad_(true);
        var b = Randn(new long[] { 2, 300, 16 }, ScalarType.ComplexFloat64, g).requires_grad_(true);
        var h0 = Randn(new long[] { 2, 16 }, ScalarType.ComplexFloat64, g);
        var w = Randn(new long[] { 2, 300, 16 }, ScalarType.ComplexFloat64, g);
        var expected = RecurrentH(a, b, h0);
        var ac = a.detach().cuda().requires_grad_(true);
        var bc = b.detach().cuda().requires_grad_(true);
        var h = ScanH(ac, bc, h0.cuda());
        h.device_type.Should().Be(DeviceType.CUDA);
        RelMax(h.cpu(), expected).Should().BeLessThan(1e-12);
        var ge = Grads(RecurrentH, a, b, h0, w);
        var gc = Grads(ScanH, ac, bc, h0.cuda(), w.cuda());
        RelMax(gc[0]!.cpu(), ge[0]!).Should().BeLessThan(1e-12);
        RelMax(gc[1]!.cpu(), ge[1]!).Should().BeLessThan(1e-12);
    }
}
