using Discretax.Layers;
using static TorchSharp.torch;

namespace Discretax.Tests.Layers;

public class RMSNormTests
{
    [Fact]
    public void MatchesTheHandComputedNormalization()
    {
        // Row [3, 4]: mean square 12.5; row [1, -1]: mean square 1. Gains [1, 2]. eps = 1e-6.
        using var norm = new RMSNorm(2);
        norm.to(ScalarType.Float64);
        Reference.Set(norm.weight!, tensor(new double[] { 1, 2 }));
        using var x = tensor(new double[] { 3, 4, 1, -1 }, new long[] { 2, 2 });
        using var y = norm.forward(x);
        double a = 1 / Math.Sqrt(12.5 + 1e-6), b = 1 / Math.Sqrt(1 + 1e-6);
        TestUtil.Values(y).Should().BeEquivalentTo(new[] { 3 * a, 8 * a, b, -2 * b }, o => o.WithStrictOrdering()
            .Using<double>(c => c.Subject.Should().BeApproximately(c.Expectation, 1e-14)).WhenTypeIs<double>());
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void HalfPrecisionInputKeepsItsDtypeAndIsAccurate(ScalarType dtype)
    {
        using var norm = new RMSNorm(16);
        var g = new Generator(3);
        using var x = TestUtil.Randn(g, new long[] { 4, 16 }, ScalarType.Float32);
        using var xh = x.to(dtype);
        using var y = norm.forward(xh);
        y.dtype.Should().Be(dtype);
        using var reference = norm.forward(xh.to(ScalarType.Float32));
        TestUtil.RelRms(y, reference).Should().BeLessThan(1e-2, "only the final rounding to the half type differs");
    }

    [Fact]
    public void WrongFeatureSizeThrowsNamingTheArgument()
    {
        using var norm = new RMSNorm(4);
        using var x = zeros(2, 5);
        var act = () => norm.forward(x);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
        var bad = () => new RMSNorm(4, eps: 0);
        bad.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("eps");
    }
}
