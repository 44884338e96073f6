using Discretax.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Layers;

public class FastDropoutTests
{
    [Theory]
    [InlineData(0.1)]
    [InlineData(0.3)]
    [InlineData(0.75)]
    public void MaskDropsTheRequestedFractionAndScalesTheSurvivors(double p)
    {
        // 2^20 Bernoulli draws: the dropped fraction has standard deviation sqrt(p(1-p)/n) <= 4.9e-4; allow 5 sigma.
        const long n = 1 << 20;
        using var mask = FastDropout.Mask(new[] { n }, ScalarType.Float64, p, seed: 12345, parallelism: 2);
        var m = TestUtil.Values(mask);
        double scale = 1 / (1 - p);
        m.Should().OnlyContain(v => v == 0 || v == scale, "survivors are scaled by exactly 1 / (1 - p)");
        double dropped = m.Count(v => v == 0) / (double)n;
        dropped.Should().BeApproximately(p, 5 * Math.Sqrt(p * (1 - p) / n));
    }

    [Fact]
    public void DrawsOfNeighbouringElementsAreIndependent()
    {
        // Elements 2k and 2k+1 share one 64-bit draw (its two halves); 2k+1 and 2k+2 come from consecutive counters.
        // For independent Bernoulli(p) pairs, P(both dropped) = p^2; n/2 pairs give a standard deviation of
        // sqrt(p^2 (1 - p^2) / (n/2)); allow 5 sigma.
        const long n = 1 << 20;
        const double p = 0.5;
        using var mask = FastDropout.Mask(new[] { n }, ScalarType.Float32, p, seed: 99, parallelism: 2);
        var m = TestUtil.Values(mask);
        double tol = 5 * Math.Sqrt(p * p * (1 - p * p) / (n / 2));
        for (int offset = 0; offset < 2; offset++)
        {
            long both = 0, pairs = 0;
            for (long i = offset; i + 1 < n; i += 2, pairs++)
                if (m[i] == 0 && m[i + 1] == 0) both++;
            (both / (double)pairs).Should().BeApproximately(p * p, tol, $"pairs starting at offset {offset}");
        }
    }

    [Fact]
    public void MaskIsAFunctionOfTheSeedAloneNotOfTheThreadCount()
    {
        var shape = new long[] { 3, 70_001 }; // odd element count, several chunks
        using var one = FastDropout.Mask(shape, ScalarType.Float32, 0.2, seed: 7, parallelism: 1);
        using var three = FastDropout.Mask(shape, ScalarType.Float32, 0.2, seed: 7, parallelism: 3);
        using var again = FastDropout.Mask(shape, ScalarType.Float32, 0.2, seed: 7, parallelism: 2);
        using var other = FastDropout.Mask(shape, ScalarType.Float32, 0.2, seed: 8, parallelism: 2);
        one.equal(three).all().item<bool>().Should().BeTrue();
        one.equal(again).all().item<bool>().Should().BeTrue();
        one.equal(other).all().item<bool>().Should().BeFalse();
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void TrainModeZeroesOrScalesEachElementAndTheGradientIsTheMask(ScalarType dtype)
    {
        const double p = 0.25;
        using var drop = new FastDropout(p);
        drop.train();
        var g = new Generator(5);
        using var x = (TestUtil.Randn(g, new long[] { 4, 33, 7 }, dtype) + 3).requires_grad_(true); // no zeros in x
        using var y = drop.forward(x);
        y.dtype.Should().Be(dtype);
        y.shape.Should().Equal(x.shape);
        y.sum().backward();
        var xs = TestUtil.Values(x.detach());
        var ys = TestUtil.Values(y.detach());
        var grad = TestUtil.Values(x.grad!);
        double scale = 1 / (1 - p), tol = dtype == ScalarType.Float32 ? 1e-6 : 1e-15;
        for (int i = 0; i < xs.Length; i++)
        {
            if (ys[i] == 0) grad[i].Should().Be(0);
            else
            {
                (ys[i] / xs[i]).Should().BeApproximately(scale, tol * scale);
                grad[i].Should().BeApproximately(scale, tol * scale);
            }
        }
        ys.Count(v => v == 0).Should().BeInRange(1, xs.Length - 1, "some elements are dropped and some kept");

        using var y2 = drop.forward(x);
        y2.equal(y).all().item<bool>().Should().BeFalse("every call draws a new mask");
    }

    [Fact]
    public void EvalModeAndZeroProbabilityReturnTheInputAsANewHandle()
    {
        // The identity is an alias: a new tensor object on the input's storage (no copy), so that Sequential may
        // dispose it without disposing the caller's input.
        var g = new Generator(6);
        using var x = TestUtil.Randn(g, new long[] { 2, 5, 3 }, ScalarType.Float32);
        using var drop = new FastDropout(0.5);
        drop.eval();
        using var none = new FastDropout(0.0);
        none.train();
        foreach (var m in new[] { drop, none })
        {
            using var xc = x.clone();
            using var y = m.forward(xc);
            y.Should().NotBeSameAs(xc);
            y.shape.Should().Equal(x.shape);
            y.equal(x).all().item<bool>().Should().BeTrue();
            y.fill_(7);
            xc.eq(7).all().item<bool>().Should().BeTrue("the result shares the input's storage (no copy)");
        }
        x.IsInvalid.Should().BeFalse();
    }

    [Fact]
    public void HalfPrecisionTakesTorchsDropoutWithTheSameSemantics()
    {
        const double p = 0.5;
        using var drop = new FastDropout(p);
        drop.train();
        using var x = ones(new long[] { 64, 64 }, ScalarType.BFloat16);
        using var y = drop.forward(x);
        y.dtype.Should().Be(ScalarType.BFloat16);
        var ys = TestUtil.Values(y);
        ys.Should().OnlyContain(v => v == 0 || v == 2);
        (ys.Count(v => v == 0) / 4096.0).Should().BeApproximately(p, 5 * Math.Sqrt(p * (1 - p) / 4096));
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void RejectsAProbabilityOutsideZeroToOne(double p)
    {
        var act = () => new FastDropout(p);
        act.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("p").WithMessage("*[0, 1)*");
    }
}
