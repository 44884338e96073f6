using System.Numerics;
using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class LRUSequenceMixerTests
{
    /// <summary>
    /// The mixer against the LRU recurrence in System.Numerics.Complex, from the parameters alone:
    /// lambda = exp(-exp(nu_log) + i exp(theta_log)), h_t = lambda h_{t-1} + exp(gamma_log) (B_re + i B_im) x_t,
    /// y_t = Re(C h_t) + D x_t. float64, tolerance 1e-12.
    /// </summary>
    [Fact]
    public void ForwardEqualsTheScalarComplexRecurrence()
    {
        const int h = 3, n = 5, l = 23, batch = 2;
        using var m = new LRUSequenceMixer(h, n, rMin: 0.5, rMax: 0.99);
        m.to(ScalarType.Float64);
        var g = new Generator(31);
        using var x = TestUtil.Randn(g, new long[] { batch, l, h });
        using var y = m.forward(x);

        var nu = TestUtil.Values(m.nu_log); var th = TestUtil.Values(m.theta_log); var ga = TestUtil.Values(m.gamma_log);
        var bre = TestUtil.Values(m.B_re); var bim = TestUtil.Values(m.B_im);
        var cre = TestUtil.Values(m.C_re); var cim = TestUtil.Values(m.C_im); var d = TestUtil.Values(m.D);
        var xs = TestUtil.Values(x); var ys = TestUtil.Values(y);
        for (int b = 0; b < batch; b++)
        {
            var state = new Complex[n];
            for (int t = 0; t < l; t++)
            {
                for (int j = 0; j < n; j++)
                {
                    var lambda = Complex.Exp(new Complex(-Math.Exp(nu[j]), Math.Exp(th[j])));
                    var bu = Complex.Zero;
                    for (int c = 0; c < h; c++) bu += new Complex(bre[j * h + c], bim[j * h + c]) * xs[(b * l + t) * h + c];
                    state[j] = lambda * state[j] + Math.Exp(ga[j]) * bu;
                }
                for (int c = 0; c < h; c++)
                {
                    double out_ = d[c] * xs[(b * l + t) * h + c];
                    for (int j = 0; j < n; j++) out_ += (new Complex(cre[c * n + j], cim[c * n + j]) * state[j]).Real;
                    ys[(b * l + t) * h + c].Should().BeApproximately(out_, 1e-12);
                }
            }
        }
    }

    /// <summary>Statistically over 4096 states: |lambda| in [rMin, rMax], phases in [0, maxPhase], and
    /// |lambda|^2 uniform on [rMin^2, rMax^2] (its mean is the midpoint within 3%); gamma = sqrt(1 - |lambda|^2).</summary>
    [Fact]
    public void InitializationPlacesEigenvaluesOnTheRingAndNormalizesTheInput()
    {
        const double rMin = 0.4, rMax = 0.9, maxPhase = Math.PI / 3;
        using var m = new LRUSequenceMixer(2, 4096, rMin, rMax, maxPhase);
        m.to(ScalarType.Float64);
        using var lambda = m.Lambda();
        var modulus = TestUtil.Values(lambda.abs());
        var phase = TestUtil.Values(m.theta_log.exp());
        modulus.Should().OnlyContain(r => r >= rMin - 1e-6 && r <= rMax + 1e-6);
        phase.Should().OnlyContain(p => p >= 0 && p <= maxPhase + 1e-6);
        modulus.Select(r => r * r).Average().Should().BeApproximately((rMin * rMin + rMax * rMax) / 2, 0.03 * (rMax * rMax - rMin * rMin));
        phase.Average().Should().BeApproximately(maxPhase / 2, 0.03 * maxPhase);
        var gamma = TestUtil.Values(m.gamma_log.exp());
        for (int j = 0; j < modulus.Length; j++) gamma[j].Should().BeApproximately(Math.Sqrt(1 - modulus[j] * modulus[j]), 1e-6);
    }

    [Fact]
    public void InitialScalesFollowTheReference()
    {
        // B ~ N(0, 1)/sqrt(2H), C ~ N(0, 1)/sqrt(N), D ~ N(0, 1): sample standard deviations within 5%.
        const int h = 64, n = 256;
        using var m = new LRUSequenceMixer(h, n);
        TestUtil.Values(m.B_re.std()).Single().Should().BeApproximately(1 / Math.Sqrt(2 * h), 0.05 / Math.Sqrt(2 * h));
        TestUtil.Values(m.B_im.std()).Single().Should().BeApproximately(1 / Math.Sqrt(2 * h), 0.05 / Math.Sqrt(2 * h));
        TestUtil.Values(m.C_re.std()).Single().Should().BeApproximately(1 / Math.Sqrt(n), 0.05 / Math.Sqrt(n));
        m.B_re.shape.Should().Equal(n, h);
        m.C_im.shape.Should().Equal(h, n);
        m.D.shape.Should().Equal(h);
        m.state_dict().Keys.Should().BeEquivalentTo("nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D");
    }

    [Fact]
    public void FloatAndHalfInputsKeepTheirDtype()
    {
        using var m = new LRUSequenceMixer(4, 8);
        var g = new Generator(32);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 4 }, ScalarType.Float32);
        TestUtil.KeepsFloat32AndBFloat16Dtypes(m, x, 2e-2);
    }

    [Fact]
    public void InvalidOptionsThrowNamingTheArgument()
    {
        ((Action)(() => new LRUSequenceMixer(4, 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("stateDim");
        ((Action)(() => new LRUSequenceMixer(4, rMax: 1.5))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("rMax");
        ((Action)(() => new LRUSequenceMixer(4, rMin: 0.9, rMax: 0.5))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("rMin");
        ((Action)(() => new LRUSequenceMixer(4, maxPhase: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("maxPhase");
        ((Action)(() => new LRU(8, numBlocks: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("numBlocks");
    }

    [Fact]
    public void TheModelStacksStandardBlocksWithGLU()
    {
        using var model = new LRU(8, numBlocks: 3, stateDim: 4, useBias: false);
        model.NumBlocks.Should().Be(3);
        model.state_dict().Keys.Should().Contain("blocks.2.sequence_mixer.nu_log").And.Contain("blocks.0.channel_mixer.w1.weight")
            .And.NotContain("blocks.0.channel_mixer.w1.bias");
    }
}
