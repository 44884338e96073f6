using Discretax.Kernels;
using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class LinOSSSequenceMixerTests
{
    public static TheoryData<LinOSSDiscretization, bool> Variants() => new()
    {
        { LinOSSDiscretization.IMEX, true },
        { LinOSSDiscretization.IMEX, false },
        { LinOSSDiscretization.IM, true },
        { LinOSSDiscretization.IM, false },
    };

    /// <summary>
    /// The mixer against a step-by-step integration of the discretized oscillators, written from the schemes'
    /// equations (IMEX: z_t = (z + dt (-A y + Bu)) / (1 + dt G), y_t = y + dt z_t; IM: the implicit 2x2 system
    /// [[1 + dt G, dt A], [-dt, 1]] (z_t, y_t) = (z + dt Bu, y) solved by Cramer's rule), real and imaginary parts of Bu
    /// separately, out = Re(C y) + D u; the parameters at init lie inside the stable band, so the projection is the
    /// identity (checked). float64, tolerance 1e-12.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void ForwardEqualsStepByStepIntegration(LinOSSDiscretization disc, bool damping)
    {
        const int h = 3, n = 5, l = 23, batch = 2;
        using var scope = NewDisposeScope();
        var m = new LinOSSSequenceMixer(h, n, disc, damping);
        m.to(ScalarType.Float64);
        var x = TestUtil.Randn(new Generator(7), new long[] { batch, l, h });
        var y = m.forward(x);

        var a = TestUtil.Values(m.A_diag);
        var gd = damping ? TestUtil.Values(m.G_diag!) : new double[n];
        var dt = TestUtil.Values(m.steps).Select(s => 1 / (1 + Math.Exp(-s))).ToArray();
        var (pa, pg, pdt) = m.Coefficients();
        TestUtil.MaxAbsDiff(pa, m.A_diag).Should().BeLessThan(1e-12 * (1 + a.Max()));
        if (damping) TestUtil.MaxAbsDiff(pg, m.G_diag!).Should().BeLessThan(1e-12 * (1 + gd.Select(Math.Abs).Max()));
        var bw = TestUtil.Values(m.B); var cw = TestUtil.Values(m.C); var d = TestUtil.Values(m.D);
        var xs = TestUtil.Values(x); var ys = TestUtil.Values(y);
        for (int b = 0; b < batch; b++)
        {
            var z = new double[n, 2];
            var q = new double[n, 2];
            for (int t = 0; t < l; t++)
            {
                for (int j = 0; j < n; j++)
                    for (int part = 0; part < 2; part++)
                    {
                        double bu = 0;
                        for (int c = 0; c < h; c++) bu += bw[(j * h + c) * 2 + part] * xs[(b * l + t) * h + c];
                        double z0 = z[j, part], y0 = q[j, part], s = dt[j];
                        if (disc == LinOSSDiscretization.IMEX)
                        {
                            z[j, part] = (z0 + s * (-a[j] * y0 + bu)) / (1 + s * gd[j]);
                            q[j, part] = y0 + s * z[j, part];
                        }
                        else
                        {
                            double m11 = 1 + s * gd[j], m12 = s * a[j], m21 = -s, m22 = 1;
                            double r1 = z0 + s * bu, r2 = y0, det = m11 * m22 - m12 * m21;
                            z[j, part] = (r1 * m22 - m12 * r2) / det;
                            q[j, part] = (m11 * r2 - m21 * r1) / det;
                        }
                    }
                for (int c = 0; c < h; c++)
                {
                    double expected = d[c] * xs[(b * l + t) * h + c];
                    for (int j = 0; j < n; j++)
                        expected += cw[(c * n + j) * 2] * q[j, 0] - cw[(c * n + j) * 2 + 1] * q[j, 1];
                    ys[(b * l + t) * h + c].Should().BeApproximately(expected, 1e-12);
                }
            }
        }
    }

    /// <summary>Largest eigenvalue modulus of each 2x2 matrix of M [N, 2, 2] (float64), from trace and determinant.</summary>
    private static double[] SpectralRadii(Tensor m)
    {
        var v = TestUtil.Values(m);
        var radii = new double[v.Length / 4];
        for (int i = 0; i < radii.Length; i++)
        {
            double tr = v[4 * i] + v[4 * i + 3], det = v[4 * i] * v[4 * i + 3] - v[4 * i + 1] * v[4 * i + 2];
            double disc = tr * tr - 4 * det;
            radii[i] = disc < 0 ? Math.Sqrt(det) : Math.Max(Math.Abs(tr + Math.Sqrt(disc)), Math.Abs(tr - Math.Sqrt(disc))) / 2;
        }
        return radii;
    }

    private static void AssertStable(Tensor m)
    {
        var v = TestUtil.Values(m);
        for (int i = 0; i < v.Length / 4; i++)
        {
            double tr = v[4 * i] + v[4 * i + 3], det = v[4 * i] * v[4 * i + 3] - v[4 * i + 1] * v[4 * i + 2];
            det.Should().BeLessThanOrEqualTo(1 + 1e-12);
            (1 - tr + det).Should().BeGreaterThanOrEqualTo(-1e-12);
            (1 + tr + det).Should().BeGreaterThanOrEqualTo(-1e-12);
        }
        SpectralRadii(m).Max().Should().BeLessThanOrEqualTo(1 + 1e-7);
    }

    /// <summary>
    /// Stability: for 20 inits drawn per variant (N = 64), and for 20 draws of raw parameters far outside the band
    /// (A_diag, G_diag ~ N(0, 10^2), steps ~ N(0, 2^2)) which the projection must bring back, every eigenvalue of every
    /// channel's M has modulus at most 1: by the Jury criterion for 2x2 maps (det M &lt;= 1, 1 - tr M + det M &gt;= 0,
    /// 1 + tr M + det M &gt;= 0, each to 1e-12), and directly from the eigenvalues to 1e-7 (at a double root near the
    /// unit circle, e.g. the band's edges, the eigenvalues move by sqrt(rounding) ~ 1e-8). float64.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void EigenvaluesHaveModulusAtMostOne(LinOSSDiscretization disc, bool damping)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(11);
        for (int draw = 0; draw < 20; draw++)
        {
            var m = new LinOSSSequenceMixer(4, 64, disc, damping);
            m.to(ScalarType.Float64);
            AssertStable(m.TransitionMatrix());
            using (no_grad())
            {
                m.A_diag.copy_(randn(new long[] { 64 }, dtype: ScalarType.Float64, generator: g) * 10);
                m.G_diag?.copy_(randn(new long[] { 64 }, dtype: ScalarType.Float64, generator: g) * 10);
                m.steps.copy_(randn(new long[] { 64 }, dtype: ScalarType.Float64, generator: g) * 2);
            }
            AssertStable(m.TransitionMatrix());
        }
    }

    /// <summary>
    /// Undamped IMEX is symplectic: det M = 1 (1e-12), and a free oscillator (no input) run for 10,000 steps through
    /// <see cref="BlockScan2x2.Scan"/> stays on its invariant ellipse Q(h) = m21 z^2 + (m22 - m11) z y - m12 y^2 (which
    /// M^T J M = J preserves): |Q(h_t) / Q(h_0) - 1| &lt; 1e-9, and its amplitude max |y| over the last 2,000 steps is
    /// within 2% of that over the first 2,000 (it neither grows nor decays). The damped map, as a control, loses energy.
    /// </summary>
    [Fact]
    public void UndampedImexIsSymplecticAndConservesAmplitude()
    {
        using var scope = NewDisposeScope();
        const int n = 16, steps = 10_000;
        var mixer = new LinOSSSequenceMixer(2, n, LinOSSDiscretization.IMEX, damping: false);
        mixer.to(ScalarType.Float64);
        using (no_grad())
        {
            // A in [0.2, 1] and dt = 0.5: rotation angles acos(1 - dt^2 A / 2) in [0.22, 0.51], periods of 12-28 steps.
            mixer.A_diag.copy_(linspace(0.2, 1.0, n, dtype: ScalarType.Float64));
            mixer.steps.zero_();
        }
        var m = mixer.TransitionMatrix();
        var v = TestUtil.Values(m);
        for (int i = 0; i < n; i++)
            (v[4 * i] * v[4 * i + 3] - v[4 * i + 1] * v[4 * i + 2]).Should().BeApproximately(1.0, 1e-12);

        var h0 = stack(new[] { zeros(1, n, dtype: ScalarType.Float64), ones(1, n, dtype: ScalarType.Float64) }, -1); // z = 0, y = 1
        var (h, _) = BlockScan2x2.Scan(m, zeros(new long[] { 1, steps, n, 2 }, dtype: ScalarType.Float64), h0);
        var z = h.select(-1, 0);
        var y = h.select(-1, 1);
        var m11 = m.select(-2, 0).select(-1, 0); var m12 = m.select(-2, 0).select(-1, 1);
        var m21 = m.select(-2, 1).select(-1, 0); var m22 = m.select(-2, 1).select(-1, 1);
        var q = m21 * z.square() + (m22 - m11) * z * y - m12 * y.square();
        var q0 = -m12; // z = 0, y = 1
        (q / q0 - 1).abs().max().item<double>().Should().BeLessThan(1e-9);
        var first = y.narrow(1, 0, 2000).abs().amax(new long[] { 1 });
        var last = y.narrow(1, steps - 2000, 2000).abs().amax(new long[] { 1 });
        (last / first - 1).abs().max().item<double>().Should().BeLessThan(0.02);

        var damped = new LinOSSSequenceMixer(2, n, LinOSSDiscretization.IMEX, damping: true);
        damped.to(ScalarType.Float64);
        using (no_grad())
        {
            damped.A_diag.copy_(linspace(0.2, 1.0, n, dtype: ScalarType.Float64));
            damped.G_diag!.fill_(0.05); // det M = 1 / (1 + 0.5 * 0.05): |lambda| = 0.988, |lambda|^10000 ~ 1e-53
            damped.steps.zero_();
        }
        var (hd, _) = BlockScan2x2.Scan(damped.TransitionMatrix(), zeros(new long[] { 1, steps, n, 2 }, dtype: ScalarType.Float64), h0);
        hd.select(1, steps - 1).abs().max().item<double>().Should().BeLessThan(0.5);
    }

    /// <summary>
    /// Initialization statistics over 4096 oscillators: steps ~ N(0, 0.5^2) (std within 5%); damped, the eigenvalues of M
    /// are r e^{+-i theta} with r in [rMin, 1], theta in [0, thetaMax] (1e-6) and mean r^2 = (rMin^2 + 1)/2 within 2%;
    /// undamped A_diag in [0, 1]; B and C within +-1/sqrt(fan) with the uniform's standard deviation within 5%;
    /// D with standard deviation 1 within 10%.
    /// </summary>
    [Theory]
    [InlineData(LinOSSDiscretization.IMEX)]
    [InlineData(LinOSSDiscretization.IM)]
    public void InitializationDrawsEigenvaluesOnTheRing(LinOSSDiscretization disc)
    {
        using var scope = NewDisposeScope();
        const double rMin = 0.6, thetaMax = 2.0;
        const int n = 4096, h = 64;
        var m = new LinOSSSequenceMixer(h, n, disc, true, rMin, thetaMax);
        m.to(ScalarType.Float64);
        m.steps.std().item<double>().Should().BeApproximately(0.5, 0.025);
        var v = TestUtil.Values(m.TransitionMatrix());
        double sumR2 = 0;
        for (int i = 0; i < n; i++)
        {
            double tr = v[4 * i] + v[4 * i + 3], det = v[4 * i] * v[4 * i + 3] - v[4 * i + 1] * v[4 * i + 2];
            double r = Math.Sqrt(det);
            r.Should().BeInRange(rMin - 1e-6, 1 + 1e-6);
            double theta = Math.Acos(Math.Clamp(tr / (2 * r), -1, 1));
            theta.Should().BeInRange(-1e-6, thetaMax + 1e-6);
            sumR2 += det;
        }
        (sumR2 / n).Should().BeApproximately((rMin * rMin + 1) / 2, 0.02 * (rMin * rMin + 1) / 2);
        double bBound = 1 / Math.Sqrt(h), cBound = 1 / Math.Sqrt(n);
        m.B.abs().max().item<double>().Should().BeLessThanOrEqualTo(bBound);
        m.C.abs().max().item<double>().Should().BeLessThanOrEqualTo(cBound);
        m.B.std().item<double>().Should().BeApproximately(bBound / Math.Sqrt(3), 0.05 * bBound / Math.Sqrt(3));
        m.C.std().item<double>().Should().BeApproximately(cBound / Math.Sqrt(3), 0.05 * cBound / Math.Sqrt(3));
        var dm = new LinOSSSequenceMixer(4096, 4, disc, damping: false);
        dm.D.std().item<float>().Should().BeApproximately(1f, 0.1f);
        dm.A_diag.min().item<float>().Should().BeGreaterThanOrEqualTo(0);
        dm.A_diag.max().item<float>().Should().BeLessThanOrEqualTo(1);
    }

    /// <summary>The projection clamps A into the IMEX band: a huge A_diag becomes the upper edge, a negative one the lower.</summary>
    [Fact]
    public void ImexProjectionClampsIntoTheBand()
    {
        using var scope = NewDisposeScope();
        var m = new LinOSSSequenceMixer(2, 2, LinOSSDiscretization.IMEX, true);
        m.to(ScalarType.Float64);
        using (no_grad())
        {
            m.A_diag.copy_(tensor(new[] { 1e6, -5.0 }, dtype: ScalarType.Float64));
            m.G_diag!.copy_(tensor(new[] { 0.3, -1.0 }, dtype: ScalarType.Float64));
            m.steps.zero_();
        }
        var (a, g, dt) = m.Coefficients();
        double s = 0.5;
        double hi = (2 + s * 0.3 + 2 * Math.Sqrt(1 + s * 0.3)) / (s * s);
        a[0].item<double>().Should().BeApproximately(hi, 1e-9);
        a[1].item<double>().Should().BeApproximately(0.0, 1e-12); // G = relu(-1) = 0, lower edge (2 - 2)/dt^2 = 0
        g[1].item<double>().Should().Be(0);
        dt[0].item<double>().Should().Be(0.5);
    }

    [Fact]
    public void ParameterNamesAreTheReferences()
    {
        using var damped = new LinOSSSequenceMixer(4, 3);
        damped.state_dict().Keys.Should().BeEquivalentTo(new[] { "A_diag", "G_diag", "steps", "B", "C", "D" });
        using var undamped = new LinOSSSequenceMixer(4, 3, damping: false);
        undamped.state_dict().Keys.Should().BeEquivalentTo(new[] { "A_diag", "steps", "B", "C", "D" });
        damped.B.shape.Should().Equal(3, 4, 2);
        damped.C.shape.Should().Equal(4, 3, 2);
    }

    /// <summary>
    /// float32 and bfloat16 inputs against the float64 forward of the same parameters (L = 300): relative RMS below 5e-4
    /// (float32) and 2e-2 (bfloat16, computed in float32 from the rounded input), dtypes kept. The float32 bound is loose
    /// on purpose: channels drawn with theta near 0 or pi sit near a double eigenvalue, where a relative change of 1e-7
    /// in the projected A moves the eigenvalues by about sqrt(1e-7) = 3e-4; observed 2e-6 to 9e-5 over inits.
    /// </summary>
    [Theory]
    [InlineData(LinOSSDiscretization.IMEX)]
    [InlineData(LinOSSDiscretization.IM)]
    public void LowerPrecisionAgreesWithFloat64(LinOSSDiscretization disc)
    {
        using var scope = NewDisposeScope();
        var m = new LinOSSSequenceMixer(6, 16, disc);
        WellConditioned(m, new Generator(4));
        m.eval();
        var x = TestUtil.Randn(new Generator(3), new long[] { 2, 300, 6 }, ScalarType.Float32);
        var y32 = m.forward(x);
        var xb = x.to(ScalarType.BFloat16);
        var yb = m.forward(xb);
        m.to(ScalarType.Float64);
        var y64 = m.forward(x.to(ScalarType.Float64));
        var yb64 = m.forward(xb.to(ScalarType.Float64));
        y32.dtype.Should().Be(ScalarType.Float32);
        yb.dtype.Should().Be(ScalarType.BFloat16);
        TestUtil.RelRms(y32, y64).Should().BeLessThan(5e-4);
        TestUtil.RelRms(yb, yb64).Should().BeLessThan(2e-2);
    }

    /// <summary>
    /// Redraws the mixer's parameters from <paramref name="g"/> (so the test does not depend on the global generator,
    /// which parallel tests share) with the init's recipe for damped oscillators, but with eigenvalue phases in
    /// [0.3, pi - 0.3]: phases near 0 or pi sit near a double eigenvalue, where float32 rounding of A moves the
    /// eigenvalues by sqrt(1e-7) and the float32/float64 comparison measures conditioning, not the implementation.
    /// </summary>
    private static void WellConditioned(LinOSSSequenceMixer m, Generator g)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long n = m.StateDim;
        var raw = randn(new long[] { n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var dt = raw.sigmoid();
        var r = (rand(new long[] { n }, dtype: ScalarType.Float64, generator: g) * (1 - 0.81) + 0.81).sqrt();
        var theta = rand(new long[] { n }, dtype: ScalarType.Float64, generator: g) * (Math.PI - 0.6) + 0.3;
        var a = (1 + r.square() - 2 * r * theta.cos()) / (r.square() * dt.square());
        var gd = m.Discretization == LinOSSDiscretization.IMEX
            ? (1 - r.square()) / (r.square() * dt)
            : (2 * theta.cos() / r - 2) / dt;
        m.steps.copy_(raw);
        m.A_diag.copy_(a);
        m.G_diag!.copy_(gd);
        foreach (var p in new[] { m.B, m.C, m.D }) p.copy_(rand(p.shape, generator: g) - 0.5);
    }

    [Fact]
    public void BadOptionsThrow()
    {
        FluentActions.Invoking(() => new LinOSSSequenceMixer(4, 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("stateDim");
        FluentActions.Invoking(() => new LinOSSSequenceMixer(4, 3, rMin: 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("rMin");
        FluentActions.Invoking(() => new LinOSSSequenceMixer(4, 3, rMin: 1.5)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("rMin");
        FluentActions.Invoking(() => new LinOSSSequenceMixer(4, 3, thetaMax: 4)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("thetaMax");
        FluentActions.Invoking(() => new LinOSSSequenceMixer(4, 3, (LinOSSDiscretization)7)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("discretization");
        FluentActions.Invoking(() => new LinOSS(4, numBlocks: 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("numBlocks");
    }
}
