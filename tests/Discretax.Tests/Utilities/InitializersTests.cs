using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.Tests.Utilities;

/// <summary>The truncated normal against its analytic moments (any seed: bounds at 6 standard errors over 2^18 draws).</summary>
public class InitializersTests
{
    private const long N = 1 << 18;

    [Fact]
    public void TruncatedNormalIsAStandardNormalOnMinus2To2TimesTheScale()
    {
        using var t = Initializers.TruncatedNormal(new[] { N }, 0.5);
        t.dtype.Should().Be(ScalarType.Float64);
        t.abs().max().item<double>().Should().BeLessThanOrEqualTo(1.0, "the support is [-2, 2] times the scale");
        double mean = t.mean().item<double>(), std = t.std().item<double>();
        double expectedStd = 0.5 * Initializers.TruncatedStd;
        Math.Abs(mean).Should().BeLessThan(6 * expectedStd / Math.Sqrt(N));
        Math.Abs(std - expectedStd).Should().BeLessThan(6 * expectedStd / Math.Sqrt(2 * N) * 1.5);
        // P(|Z| < 1 | |Z| < 2) = erf(1/sqrt 2) / erf(sqrt 2) = 0.682689 / 0.954500
        double inner = (t.abs() < 0.5).to(ScalarType.Float64).mean().item<double>();
        Math.Abs(inner - 0.682689492 / 0.954499736).Should().BeLessThan(6 * Math.Sqrt(0.25 / N));
    }

    [Fact]
    public void TheVarianceScalingFormHasTheRequestedStd()
    {
        using var t = Initializers.TruncatedNormalWithStd(new[] { N }, 0.3);
        double std = t.std().item<double>();
        Math.Abs(std - 0.3).Should().BeLessThan(6 * 0.3 / Math.Sqrt(2 * N) * 1.5);
        t.abs().max().item<double>().Should().BeLessThanOrEqualTo(2 * 0.3 / Initializers.TruncatedStd);
    }
}
