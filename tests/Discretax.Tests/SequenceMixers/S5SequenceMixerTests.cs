using System.Numerics;
using Discretax.Kernels;
using Discretax.Models;
using Discretax.SequenceMixers;
using Discretax.Tests.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class S5SequenceMixerTests
{
    /// <summary>A float64 mixer whose parameters are moved off their initial values (so every one matters).</summary>
    private static S5SequenceMixer Perturbed(long h, long stateDim, int ssmBlocks, bool conjSym, Discretization disc,
        bool clipEigs = true, double stepRescale = 1.0, int seed = 40)
    {
        var m = new S5SequenceMixer(h, stateDim, ssmBlocks, conjSym: conjSym, clipEigs: clipEigs, discretization: disc,
            dtMin: 0.01, dtMax: 0.5, stepRescale: stepRescale);
        m.to(ScalarType.Float64);
        var g = new Generator((ulong)seed);
        using (no_grad())
        {
            m.Lambda_re.add_(TestUtil.Randn(g, m.Lambda_re.shape) * 0.1);
            m.Lambda_im.add_(TestUtil.Randn(g, m.Lambda_im.shape) * 0.1);
            m.log_step.add_(TestUtil.Randn(g, m.log_step.shape) * 0.1);
        }
        return m;
    }

    /// <summary>The discretized system written out in System.Numerics.Complex from the raw parameters.</summary>
    private static (Complex[] LambdaBar, Complex[,] BBar) ReferenceDiscretization(S5SequenceMixer m)
    {
        long p = m.StateSize, h = m.InFeatures;
        var re = TestUtil.Values(m.Lambda_re); var im = TestUtil.Values(m.Lambda_im);
        var ls = TestUtil.Values(m.log_step); var b = TestUtil.Values(m.B);
        var lambdaBar = new Complex[p];
        var bBar = new Complex[p, h];
        for (int j = 0; j < p; j++)
        {
            var lambda = new Complex(m.ClipEigs ? Math.Min(re[j], -1e-4) : re[j], im[j]);
            double dt = m.StepRescale * Math.Exp(ls[j]);
            Complex scale;
            if (m.Discretization == Discretization.Zoh)
            {
                lambdaBar[j] = Complex.Exp(lambda * dt);
                scale = (lambdaBar[j] - 1) / lambda;
            }
            else
            {
                lambdaBar[j] = (1 + dt / 2 * lambda) / (1 - dt / 2 * lambda);
                scale = dt / (1 - dt / 2 * lambda);
            }
            for (int c = 0; c < h; c++) bBar[j, c] = scale * new Complex(b[(j * h + c) * 2], b[(j * h + c) * 2 + 1]);
        }
        return (lambdaBar, bBar);
    }

    /// <summary>
    /// The mixer (full forward, and streamed in two pieces with the state carried between them) against the step-by-step
    /// recurrence x_t = Lambda_bar x_{t-1} + B_bar u_t, y_t = (2) Re(C~ x_t) + D u_t in System.Numerics.Complex, the
    /// discretization also written out from the raw parameters. float64, tolerance 1e-11.
    /// </summary>
    [Theory]
    [InlineData(true, 1, Discretization.Zoh)]
    [InlineData(false, 1, Discretization.Zoh)]
    [InlineData(true, 2, Discretization.Zoh)]
    [InlineData(false, 2, Discretization.Zoh)]
    [InlineData(true, 2, Discretization.Bilinear)]
    [InlineData(false, 1, Discretization.Bilinear)]
    public void ForwardEqualsTheScalarComplexRecurrence(bool conjSym, int ssmBlocks, Discretization disc)
    {
        const int h = 3, stateDim = 8, l = 23, batch = 2;
        using var m = Perturbed(h, stateDim, ssmBlocks, conjSym, disc, stepRescale: 1.7);
        m.StateSize.Should().Be(conjSym ? 4 : 8);
        var g = new Generator(41);
        using var x = TestUtil.Randn(g, new long[] { batch, l, h });
        using var y = m.forward(x);
        var (y1, s1) = m.Stream(x.narrow(1, 0, 7));
        var (y2, s2) = m.Stream(x.narrow(1, 7, l - 7), s1);
        using var streamed = cat(new[] { y1, y2 }, 1);
        y1.Dispose(); y2.Dispose(); s1.Dispose(); s2.Dispose();

        var (lambdaBar, bBar) = ReferenceDiscretization(m);
        long p = m.StateSize;
        var c = TestUtil.Values(m.C); var d = TestUtil.Values(m.D);
        var xs = TestUtil.Values(x); var ys = TestUtil.Values(y); var ss = TestUtil.Values(streamed);
        double factor = conjSym ? 2 : 1;
        for (int b = 0; b < batch; b++)
        {
            var state = new Complex[p];
            for (int t = 0; t < l; t++)
            {
                for (int j = 0; j < p; j++)
                {
                    var bu = Complex.Zero;
                    for (int k = 0; k < h; k++) bu += bBar[j, k] * xs[(b * l + t) * h + k];
                    state[j] = lambdaBar[j] * state[j] + bu;
                }
                for (int k = 0; k < h; k++)
                {
                    var cx = Complex.Zero;
                    for (int j = 0; j < p; j++) cx += new Complex(c[(k * p + j) * 2], c[(k * p + j) * 2 + 1]) * state[j];
                    double expected = factor * cx.Real + d[k] * xs[(b * l + t) * h + k];
                    ys[(b * l + t) * h + k].Should().BeApproximately(expected, 1e-11);
                    ss[(b * l + t) * h + k].Should().BeApproximately(expected, 1e-11);
                }
            }
        }
    }

    /// <summary>
    /// ZOH and bilinear against their closed forms (complex, 1e-13 relative), and against their defining properties:
    /// ZOH is the exact solution of x' = Lambda x + B~ u over one step with u held constant (RK4 with 10000 substeps,
    /// 1e-10); bilinear is the trapezoidal rule, (1 - Delta Lambda/2) x1 = (1 + Delta Lambda/2) x0 + Delta B~ u (1e-12).
    /// stepRescale 2.5 enters Delta.
    /// </summary>
    [Theory]
    [InlineData(Discretization.Zoh)]
    [InlineData(Discretization.Bilinear)]
    public void DiscretizationMatchesItsClosedFormAndDefinition(Discretization disc)
    {
        const int h = 2;
        using var m = Perturbed(h, 8, 1, conjSym: false, disc, stepRescale: 2.5, seed: 42);
        var (lbT, bbT) = m.Discretize();
        using var _lb = lbT; using var _bb = bbT;
        lbT.dtype.Should().Be(ScalarType.ComplexFloat64);
        bbT.shape.Should().Equal(8, h);
        var lb = HiPPOTests.ToComplex(lbT); var bb = HiPPOTests.ToComplex(bbT);
        var (refLb, refBb) = ReferenceDiscretization(m);
        var re = TestUtil.Values(m.Lambda_re); var im = TestUtil.Values(m.Lambda_im);
        var ls = TestUtil.Values(m.log_step); var bParam = TestUtil.Values(m.B);
        for (int j = 0; j < 8; j++)
        {
            (lb[j] - refLb[j]).Magnitude.Should().BeLessThan(1e-13 * refLb[j].Magnitude);
            var lambda = new Complex(Math.Min(re[j], -1e-4), im[j]);
            double dt = 2.5 * Math.Exp(ls[j]);
            for (int k = 0; k < h; k++)
            {
                (bb[j * h + k] - refBb[j, k]).Magnitude.Should().BeLessThan(1e-13 * refBb[j, k].Magnitude + 1e-300);
                var bTilde = new Complex(bParam[(j * h + k) * 2], bParam[(j * h + k) * 2 + 1]);
                var x0 = new Complex(0.3, -0.7);
                const double u = 1.3;
                var x1 = lb[j] * x0 + bb[j * h + k] * u;
                if (disc == Discretization.Zoh)
                {
                    var z = x0;
                    const int steps = 10000;
                    double hs = dt / steps;
                    Complex F(Complex s) => lambda * s + bTilde * u;
                    for (int i = 0; i < steps; i++)
                    {
                        var k1 = F(z); var k2 = F(z + hs / 2 * k1); var k3 = F(z + hs / 2 * k2); var k4 = F(z + hs * k3);
                        z += hs / 6 * (k1 + 2 * k2 + 2 * k3 + k4);
                    }
                    (x1 - z).Magnitude.Should().BeLessThan(1e-10);
                }
                else
                {
                    var residual = (1 - dt * lambda / 2) * x1 - (1 + dt * lambda / 2) * x0 - dt * bTilde * u;
                    residual.Magnitude.Should().BeLessThan(1e-12);
                }
            }
        }
    }

    /// <summary>
    /// The initial eigenvalues: Re = -1/2 and Im = the imaginary parts of the eigenvalues of the block's S = A + P P^T from
    /// an independent general eigensolver (torch.linalg.eigvals, float64), ascending; with conjSym only the lower half
    /// (negative imaginary parts); repeated per block. Tolerance 1e-6 (the parameters are stored in float32).
    /// </summary>
    [Theory]
    [InlineData(true, 1)]
    [InlineData(true, 2)]
    [InlineData(false, 2)]
    public void InitialEigenvaluesAreTheHiPPONormalPartsPerBlock(bool conjSym, int ssmBlocks)
    {
        const int stateDim = 12;
        int blockSize = stateDim / ssmBlocks, kept = conjSym ? blockSize / 2 : blockSize;
        using var m = new S5SequenceMixer(4, stateDim, ssmBlocks, conjSym: conjSym);
        m.Lambda_re.shape.Should().Equal(kept * ssmBlocks);
        var (a, p, _) = HiPPO.LegSNplr(blockSize);
        using var s = a + p.unsqueeze(1) * p.unsqueeze(0);
        using var eig = linalg.eigvals(s);
        var expectedIm = HiPPOTests.ToComplex(eig).Select(z => z.Imaginary).OrderBy(v => v).Take(kept).ToArray();
        var re = TestUtil.Values(m.Lambda_re); var im = TestUtil.Values(m.Lambda_im);
        for (int blk = 0; blk < ssmBlocks; blk++)
            for (int j = 0; j < kept; j++)
            {
                re[blk * kept + j].Should().BeApproximately(-0.5, 1e-6);
                im[blk * kept + j].Should().BeApproximately(expectedIm[j], 1e-6 * Math.Max(1, Math.Abs(expectedIm[j])));
            }
        if (conjSym) im.Should().OnlyContain(v => v < 0);
        a.Dispose(); p.Dispose();
    }

    /// <summary>
    /// B~ = V^{-1} B and C~ = C V at init (conjSym off, so V is the full unitary blockdiag): V B~ is real (1e-6) with the
    /// truncated-normal scale 1/sqrt(N) and bound 2/(0.8796 sqrt(N)); C = C~ V^* has real and imaginary scale
    /// 1/sqrt(N H) (LecunNormal) or 1/sqrt(N) (TruncStandardNormal); ComplexNormal draws C~ [H, P, 2] with scale
    /// sqrt(1/2). Sample standard deviations within 6% (2048 to 8192 samples); D ~ N(0, 1).
    /// </summary>
    [Theory]
    [InlineData(S5CInit.LecunNormal)]
    [InlineData(S5CInit.TruncStandardNormal)]
    [InlineData(S5CInit.ComplexNormal)]
    public void InputAndOutputMatricesFollowTheReferenceInitialization(S5CInit cInit)
    {
        const int h = 32, n = 64, blocks = 2, nb = n / blocks;
        using var scope = NewDisposeScope();
        using var m = new S5SequenceMixer(h, n, blocks, cInit, conjSym: false);
        m.to(ScalarType.Float64);
        m.B.shape.Should().Equal(n, h, 2);
        m.C.shape.Should().Equal(h, n, 2);
        var v = HiPPO.LegSDplr(nb).V;
        var bTilde = complex(m.B.select(2, 0), m.B.select(2, 1)).view(blocks, nb, h);
        var b = v.matmul(bTilde);                                                  // [blocks, N_b, H]
        b.imag.abs().max().item<double>().Should().BeLessThan(1e-6);
        double bStd = 1 / Math.Sqrt(n);
        b.real.std().item<double>().Should().BeApproximately(bStd, 0.06 * bStd);
        b.real.abs().max().item<double>().Should().BeLessThanOrEqualTo(2 * bStd / 0.87962566103423978 + 1e-6);

        var cTilde = complex(m.C.select(2, 0), m.C.select(2, 1));                  // [H, P]
        if (cInit == S5CInit.ComplexNormal)
        {
            cTilde.real.std().item<double>().Should().BeApproximately(Math.Sqrt(0.5), 0.06 * Math.Sqrt(0.5));
            cTilde.imag.std().item<double>().Should().BeApproximately(Math.Sqrt(0.5), 0.06 * Math.Sqrt(0.5));
        }
        else
        {
            var c = cTilde.view(h, blocks, nb).matmul(v.conj().t());                // C = C~ V^*
            double cStd = cInit == S5CInit.LecunNormal ? 1 / Math.Sqrt(n * h) : 1 / Math.Sqrt(n);
            c.real.std().item<double>().Should().BeApproximately(cStd, 0.06 * cStd);
            c.imag.std().item<double>().Should().BeApproximately(cStd, 0.06 * cStd);
            c.real.abs().max().item<double>().Should().BeLessThanOrEqualTo(2 * cStd / 0.87962566103423978 + 1e-6);
        }
        m.D.shape.Should().Equal(h);
        m.state_dict().Keys.Should().BeEquivalentTo("Lambda_re", "Lambda_im", "B", "C", "D", "log_step");
    }

    /// <summary>log_step [P, 1] ~ U(log dtMin, log dtMax) over 2048 states: within the range, mean and standard
    /// deviation within 3% / 5% of (a + b)/2 and (b - a)/sqrt(12).</summary>
    [Fact]
    public void LogStepIsLogUniform()
    {
        const double dtMin = 0.002, dtMax = 0.5;
        using var m = new S5SequenceMixer(2, 4096, ssmBlocks: 512, dtMin: dtMin, dtMax: dtMax);
        m.log_step.shape.Should().Equal(2048, 1);
        var ls = TestUtil.Values(m.log_step);
        double a = Math.Log(dtMin), b = Math.Log(dtMax);
        ls.Should().OnlyContain(v => v >= a - 1e-6 && v <= b + 1e-6);
        ls.Average().Should().BeApproximately((a + b) / 2, 0.03 * (b - a));
        double mean = ls.Average();
        Math.Sqrt(ls.Select(v => (v - mean) * (v - mean)).Average()).Should().BeApproximately((b - a) / Math.Sqrt(12), 0.05 * (b - a) / Math.Sqrt(12));
    }

    /// <summary>
    /// clipEigs: eigenvalues with Re &gt; -1e-4 are used as Re = -1e-4 (Lambda(), |Lambda_bar| &lt; 1, the output equals a
    /// mixer with the clipped values stored, 1e-14, and Lambda_re gets no gradient there); without it they are used as
    /// stored and the state grows (|Lambda_bar| &gt; 1 for Re &gt; 0).
    /// </summary>
    [Fact]
    public void ClipEigsKeepsTheRealPartsNegative()
    {
        var raw = new[] { 0.3, 0.0, -1e-5, -0.2 };
        var clipped = raw.Select(v => Math.Min(v, -1e-4)).ToArray();
        using var on = new S5SequenceMixer(3, 8, clipEigs: true);
        using var off = new S5SequenceMixer(3, 8, clipEigs: false);
        using var reference = new S5SequenceMixer(3, 8, clipEigs: false);
        foreach (var m in new[] { on, off, reference }) m.to(ScalarType.Float64);
        using (no_grad())
        {
            off.load_state_dict(on.state_dict());
            reference.load_state_dict(on.state_dict());
            on.Lambda_re.copy_(tensor(raw)); off.Lambda_re.copy_(tensor(raw)); reference.Lambda_re.copy_(tensor(clipped));
        }
        using (var lOn = on.Lambda()) TestUtil.Values(lOn.real).Should().Equal(clipped);
        using (var lOff = off.Lambda()) TestUtil.Values(lOff.real).Should().Equal(raw);
        var (lbOn, bbOn) = on.Discretize(); var (lbOff, bbOff) = off.Discretize();
        TestUtil.Values(lbOn.abs()).Should().OnlyContain(v => v < 1);
        TestUtil.Values(lbOff.abs())[0].Should().BeGreaterThan(1);
        lbOn.Dispose(); bbOn.Dispose(); lbOff.Dispose(); bbOff.Dispose();

        var g = new Generator(43);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 3 });
        using var yOn = on.forward(x);
        using var yRef = reference.forward(x);
        TestUtil.MaxAbsDiff(yOn, yRef).Should().BeLessThan(1e-14);
        using var yOff = off.forward(x);
        TestUtil.MaxAbsDiff(yOff, yOn).Should().BeGreaterThan(1e-6);

        yOn.square().sum().backward();
        var grad = TestUtil.Values(on.Lambda_re.grad!);
        grad.Take(3).Should().OnlyContain(v => v == 0);
        grad[3].Should().NotBe(0);
    }

    [Fact]
    public void FloatAndHalfInputsKeepTheirDtype()
    {
        using var m = new S5SequenceMixer(4, 8);
        var g = new Generator(44);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 4 }, ScalarType.Float32);
        TestUtil.KeepsFloat32AndBFloat16Dtypes(m, x, 2e-2);
        var (_, state) = m.Stream(x);
        using (state) state["x"].dtype.Should().Be(ScalarType.ComplexFloat32);
    }

    [Fact]
    public void InvalidOptionsThrowNamingTheArgument()
    {
        void Throws(Action a, string name) => a.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be(name);
        Throws(() => new S5SequenceMixer(4, 0), "stateDim");
        Throws(() => new S5SequenceMixer(4, 10, ssmBlocks: 3), "stateDim");
        Throws(() => new S5SequenceMixer(4, 6, ssmBlocks: 2), "stateDim");          // odd block with conjSym
        Throws(() => new S5SequenceMixer(4, 8, ssmBlocks: 0), "ssmBlocks");
        Throws(() => new S5SequenceMixer(4, cInit: (S5CInit)7), "cInit");
        Throws(() => new S5SequenceMixer(4, discretization: (Discretization)5), "discretization");
        Throws(() => new S5SequenceMixer(4, dtMin: 0), "dtMin");
        Throws(() => new S5SequenceMixer(4, dtMin: 0.1, dtMax: 0.01), "dtMax");
        Throws(() => new S5SequenceMixer(4, stepRescale: 0), "stepRescale");
        Throws(() => new S5(8, numBlocks: 0), "numBlocks");
        Throws(() => new S5(8, stateDim: 10, ssmBlocks: 4), "stateDim");
        using var odd = new S5SequenceMixer(4, 6, ssmBlocks: 2, conjSym: false);
        odd.StateSize.Should().Be(6);
    }

    [Fact]
    public void TheModelStacksStandardBlocksWithGLU()
    {
        using var model = new S5(8, numBlocks: 3, stateDim: 4, useBias: false);
        model.NumBlocks.Should().Be(3);
        model.state_dict().Keys.Should().Contain("blocks.2.sequence_mixer.Lambda_re").And.Contain("blocks.0.sequence_mixer.log_step")
            .And.Contain("blocks.0.channel_mixer.w1.weight").And.NotContain("blocks.0.channel_mixer.w1.bias");
    }
}
