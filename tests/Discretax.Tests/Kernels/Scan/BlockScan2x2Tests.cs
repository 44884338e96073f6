using Discretax.Kernels;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class BlockScan2x2Tests
{
    // The states (Output) of each form; the final states are checked in FinalStateIsACopyOfTheLastStep.
    private static Tensor ScanH(Tensor c, Tensor x, Tensor? h0 = null) => BlockScan2x2.Scan(c, x, h0).Output;

    private static Tensor RecurrentH(Tensor c, Tensor x, Tensor? h0 = null) => BlockScan2x2.Recurrent(c, x, h0).Output;

    private static Tensor ParallelH(Tensor c, Tensor x, Tensor? h0 = null, int chunkSize = BlockScan2x2.DefaultChunkSize) =>
        BlockScan2x2.Parallel(c, x, h0, chunkSize).Output;

    public enum MLayout { N, LN, BLN }

    private static long[] MShape(MLayout layout, long b, long l, long n) => layout switch
    {
        MLayout.N => new[] { n, 2, 2 },
        MLayout.LN => new[] { l, n, 2, 2 },
        _ => new[] { b, l, n, 2, 2 },
    };

    /// <summary>Matrices r R(theta) + 0.15 E with r in [0.5, 0.9], E standard normal: spectral radius around 1 at most.</summary>
    private static Tensor MakeM(long[] shape, ScalarType dtype, Generator g)
    {
        using var scope = NewDisposeScope();
        var lead = shape[..^2];
        var r = rand(lead, dtype: ScalarType.Float64, generator: g) * 0.4 + 0.5;
        var th = rand(lead, dtype: ScalarType.Float64, generator: g) * (2 * Math.PI);
        var rot = stack(new[] { stack(new[] { th.cos(), -th.sin() }, -1), stack(new[] { th.sin(), th.cos() }, -1) }, -2);
        var m = r.unsqueeze(-1).unsqueeze(-1) * rot + 0.15 * randn(shape, dtype: ScalarType.Float64, generator: g);
        return m.to_type(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>max |actual - expected| / max(1, max |expected|), in float64.</summary>
    private static double RelMax(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var e = expected.to_type(ScalarType.Float64);
        var a = actual.to_type(ScalarType.Float64);
        return (a - e).abs().max().item<double>() / Math.Max(1.0, e.abs().max().item<double>());
    }

    private static (Tensor M, Tensor F, Tensor? H0) Inputs(MLayout layout, long b, long l, long n, bool withH0, ScalarType dtype, int seed)
    {
        var g = new Generator((ulong)seed);
        var m = MakeM(MShape(layout, b, l, n), dtype, g);
        var f = randn(new[] { b, l, n, 2 }, dtype: dtype, generator: g);
        var h0 = withH0 ? randn(new[] { b, n, 2 }, dtype: dtype, generator: g) : null;
        return (m, f, h0);
    }

    [Fact]
    public void Sequential_matches_a_scalar_loop()
    {
        using var scope = NewDisposeScope();
        const int B = 2, L = 9, N = 3;
        var (m, f, h0) = Inputs(MLayout.BLN, B, L, N, true, ScalarType.Float64, 1);
        var h = RecurrentH(m, f, h0);
        var mv = TestUtil.Values(m);
        var fv = TestUtil.Values(f);
        var hv = TestUtil.Values(h0!);
        var got = TestUtil.Values(h);
        for (int b = 0; b < B; b++)
            for (int c = 0; c < N; c++)
            {
                double z = hv[(b * N + c) * 2], y = hv[(b * N + c) * 2 + 1];
                for (int t = 0; t < L; t++)
                {
                    int mi = ((b * L + t) * N + c) * 4, fi = ((b * L + t) * N + c) * 2;
                    double nz = mv[mi] * z + mv[mi + 1] * y + fv[fi];
                    double ny = mv[mi + 2] * z + mv[mi + 3] * y + fv[fi + 1];
                    z = nz;
                    y = ny;
                    got[fi].Should().BeApproximately(z, 1e-14);
                    got[fi + 1].Should().BeApproximately(y, 1e-14);
                }
            }
    }

    public static TheoryData<MLayout, long, long, long, bool> ForwardCases()
    {
        var data = new TheoryData<MLayout, long, long, long, bool>();
        foreach (MLayout layout in Enum.GetValues<MLayout>())
            foreach (bool h0 in new[] { false, true })
            {
                data.Add(layout, 2, 1, 5, h0);
                data.Add(layout, 3, 37, 7, h0);
                data.Add(layout, 2, 150, 133, h0); // large enough to split rows over threads, ragged last block
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(ForwardCases))]
    public void Scan_matches_Sequential_float64(MLayout layout, long b, long l, long n, bool withH0)
    {
        using var scope = NewDisposeScope();
        var (m, f, h0) = Inputs(layout, b, l, n, withH0, ScalarType.Float64, 10);
        RelMax(ScanH(m, f, h0), RecurrentH(m, f, h0)).Should().BeLessThan(1e-12);
    }

    [Theory]
    [MemberData(nameof(ForwardCases))]
    public void Scan_gradients_match_autograd_through_Sequential(MLayout layout, long b, long l, long n, bool withH0)
    {
        if (l > 100) return; // the loop's autograd at L = 150 adds nothing the other sizes do not cover
        using var scope = NewDisposeScope();
        var (m, f, h0) = Inputs(layout, b, l, n, withH0, ScalarType.Float64, 20);
        var w = randn(new[] { b, l, n, 2 }, dtype: ScalarType.Float64, generator: new Generator(21));
        var (gm1, gf1, gh1) = Grads(ScanH, m, f, h0, w);
        var (gm2, gf2, gh2) = Grads(RecurrentH, m, f, h0, w);
        RelMax(gm1, gm2).Should().BeLessThan(1e-12);
        RelMax(gf1, gf2).Should().BeLessThan(1e-12);
        if (withH0) RelMax(gh1!, gh2!).Should().BeLessThan(1e-12);
    }

    private static (Tensor, Tensor, Tensor?) Grads(Func<Tensor, Tensor, Tensor?, Tensor> scan, Tensor m, Tensor f, Tensor? h0, Tensor w,
        bool needM = true, bool needF = true, bool needH0 = true)
    {
        var mm = m.detach().requires_grad_(needM);
        var ff = f.detach().requires_grad_(needF);
        var hh = h0?.detach().requires_grad_(needH0);
        (scan(mm, ff, hh) * w).sum().backward();
        // A tensor that never influenced the loss (M when L = 1 and h_0 = 0) has no autograd gradient: zero.
        return (mm.grad ?? zeros_like(m), ff.grad ?? zeros_like(f), hh is null ? null : hh.grad ?? zeros_like(hh));
    }

    [Fact]
    public void Scan_gradients_when_only_some_inputs_require_them()
    {
        using var scope = NewDisposeScope();
        var (m, f, h0) = Inputs(MLayout.N, 2, 11, 4, true, ScalarType.Float64, 30);
        var w = randn(new[] { 2L, 11, 4, 2 }, dtype: ScalarType.Float64, generator: new Generator(31));
        var (_, gf1, _) = Grads(ScanH, m, f, h0, w, needM: false, needH0: false);
        var (_, gf2, _) = Grads(RecurrentH, m, f, h0, w, needM: false, needH0: false);
        RelMax(gf1, gf2).Should().BeLessThan(1e-12);
        var (gm1, _, gh1) = Grads(ScanH, m, f, h0, w, needF: false);
        var (gm2, _, gh2) = Grads(RecurrentH, m, f, h0, w, needF: false);
        RelMax(gm1, gm2).Should().BeLessThan(1e-12);
        RelMax(gh1!, gh2!).Should().BeLessThan(1e-12);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 8)]
    [InlineData(3, 64)]
    [InlineData(37, 8)]
    [InlineData(100, 8)]
    [InlineData(100, 64)]
    [InlineData(37, 1)]
    public void ParallelForm_matches_Sequential_with_gradients(long l, int chunk)
    {
        using var scope = NewDisposeScope();
        foreach (MLayout layout in Enum.GetValues<MLayout>())
            foreach (bool withH0 in new[] { false, true })
            {
                var (m, f, h0) = Inputs(layout, 2, l, 3, withH0, ScalarType.Float64, 40 + (int)l);
                RelMax(ParallelH(m, f, h0, chunk), RecurrentH(m, f, h0)).Should().BeLessThan(1e-12);
                var w = randn(new[] { 2, l, 3, 2 }, dtype: ScalarType.Float64, generator: new Generator(5));
                var (gm1, gf1, gh1) = Grads((a, b, c) => ParallelH(a, b, c, chunk), m, f, h0, w);
                var (gm2, gf2, gh2) = Grads(RecurrentH, m, f, h0, w);
                RelMax(gm1, gm2).Should().BeLessThan(1e-12);
                RelMax(gf1, gf2).Should().BeLessThan(1e-12);
                if (withH0) RelMax(gh1!, gh2!).Should().BeLessThan(1e-12);
            }
    }

    [Fact]
    public void Float32_forward_and_gradients_against_float64()
    {
        using var scope = NewDisposeScope();
        var (m, f, h0) = Inputs(MLayout.N, 3, 200, 40, true, ScalarType.Float64, 50);
        var w = randn(new[] { 3L, 200, 40, 2 }, dtype: ScalarType.Float64, generator: new Generator(51));
        var ref64 = RecurrentH(m, f, h0);
        var (gm64, gf64, gh64) = Grads(RecurrentH, m, f, h0, w);
        var (m32, f32, h32, w32) = (m.to_type(ScalarType.Float32), f.to_type(ScalarType.Float32), h0!.to_type(ScalarType.Float32), w.to_type(ScalarType.Float32));
        foreach (var scan in new Func<Tensor, Tensor, Tensor?, Tensor>[] { ScanH, (a, b, c) => ParallelH(a, b, c) })
        {
            var h = scan(m32, f32, h32);
            h.dtype.Should().Be(ScalarType.Float32);
            TestUtil.RelRms(h, ref64).Should().BeLessThan(1e-5);
            var (gm, gf, gh) = Grads(scan, m32, f32, h32, w32);
            TestUtil.RelRms(gm, gm64).Should().BeLessThan(1e-5);
            TestUtil.RelRms(gf, gf64).Should().BeLessThan(1e-5);
            TestUtil.RelRms(gh!, gh64!).Should().BeLessThan(1e-5);
        }
    }

    [Fact]
    public void Half_precision_runs_in_float32_and_keeps_dtype()
    {
        using var scope = NewDisposeScope();
        var (m, f, h0) = Inputs(MLayout.N, 2, 30, 8, true, ScalarType.Float64, 60);
        var mb = m.to_type(ScalarType.BFloat16);
        var fb = f.to_type(ScalarType.BFloat16);
        var hb = h0!.to_type(ScalarType.BFloat16);
        var reference = RecurrentH(mb.to_type(ScalarType.Float64), fb.to_type(ScalarType.Float64), hb.to_type(ScalarType.Float64));
        var h = ScanH(mb, fb, hb);
        h.dtype.Should().Be(ScalarType.BFloat16);
        TestUtil.RelRms(h, reference).Should().BeLessThan(2e-2);
    }

    [Fact]
    public void Rotation_preserves_the_norm_over_many_steps()
    {
        // A pure rotation with no forcing: |h_t| = |h_0| for all t (checks the kernel does not drift).
        using var scope = NewDisposeScope();
        const int L = 5000;
        double th = 0.3;
        var m = tensor(new[] { Math.Cos(th), -Math.Sin(th), Math.Sin(th), Math.Cos(th) }, dtype: ScalarType.Float64).reshape(1, 2, 2);
        var f = zeros(new long[] { 1, L, 1, 2 }, dtype: ScalarType.Float64);
        var h0 = tensor(new[] { 1.0, 0.0 }, dtype: ScalarType.Float64).reshape(1, 1, 2);
        var h = ScanH(m, f, h0);
        var norms = h.square().sum(-1).sqrt();
        (norms - 1).abs().max().item<double>().Should().BeLessThan(1e-12);
        // and the phase is t * theta
        double z = h[0, L - 1, 0, 0].item<double>(), y = h[0, L - 1, 0, 1].item<double>();
        z.Should().BeApproximately(Math.Cos(L * th), 1e-10);
        y.Should().BeApproximately(Math.Sin(L * th), 1e-10);
    }

    [SkippableFact]
    public void Cuda_Scan_and_gradients_match_cpu_Sequential()
    {
        Skip.IfNot(torch.cuda.is_available());
        using var scope = NewDisposeScope();
        var (m, f, h0) = Inputs(MLayout.N, 2, 77, 5, true, ScalarType.Float64, 70);
        var w = randn(new[] { 2L, 77, 5, 2 }, dtype: ScalarType.Float64, generator: new Generator(71));
        var reference = RecurrentH(m, f, h0);
        var (gm2, gf2, gh2) = Grads(RecurrentH, m, f, h0, w);
        var (mc, fc, hc, wc) = (m.cuda(), f.cuda(), h0!.cuda(), w.cuda());
        RelMax(ScanH(mc, fc, hc).cpu(), reference).Should().BeLessThan(1e-12);
        var (gm1, gf1, gh1) = Grads(ScanH, mc, fc, hc, wc);
        RelMax(gm1.cpu(), gm2).Should().BeLessThan(1e-12);
        RelMax(gf1.cpu(), gf2).Should().BeLessThan(1e-12);
        RelMax(gh1!.cpu(), gh2!).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void Bad_inputs_throw_naming_the_argument()
    {
        using var scope = NewDisposeScope();
        var f = zeros(2, 5, 3, 2, dtype: ScalarType.Float64);
        var m = zeros(3, 2, 2, dtype: ScalarType.Float64);
        FluentActions.Invoking(() => ScanH(m, zeros(2, 5, 3, dtype: ScalarType.Float64))).Should().Throw<ArgumentException>().WithParameterName("f");
        FluentActions.Invoking(() => ScanH(m, zeros(new long[] { 2, 5, 3, 2 }, dtype: ScalarType.Int64))).Should().Throw<ArgumentException>().WithParameterName("f");
        FluentActions.Invoking(() => ScanH(zeros(4, 2, 2, dtype: ScalarType.Float64), f)).Should().Throw<ArgumentException>().WithParameterName("m");
        FluentActions.Invoking(() => ScanH(zeros(3, 2, 3, dtype: ScalarType.Float64), f)).Should().Throw<ArgumentException>().WithParameterName("m");
        FluentActions.Invoking(() => ScanH(zeros(3, 2, 2, dtype: ScalarType.Float32), f)).Should().Throw<ArgumentException>().WithParameterName("m");
        FluentActions.Invoking(() => RecurrentH(zeros(4, 3, 2, 2, dtype: ScalarType.Float64), f)).Should().Throw<ArgumentException>().WithParameterName("m");
        FluentActions.Invoking(() => ScanH(m, f, zeros(2, 3, dtype: ScalarType.Float64))).Should().Throw<ArgumentException>().WithParameterName("initialState");
        FluentActions.Invoking(() => ParallelH(m, f, null, 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("chunkSize");
    }
}
