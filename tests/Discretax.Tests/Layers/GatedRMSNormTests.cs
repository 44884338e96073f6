using Discretax.Layers;
using static TorchSharp.torch;

namespace Discretax.Tests.Layers;

public class GatedRMSNormTests
{
    /// <summary>
    /// Both orders against the definitions evaluated element by element in float64 (double arithmetic, no tensor
    /// norm): fla's rms(x) w silu(g) and mamba's rms(x silu(g)) w, over groups of the last dimension. Tolerance 1e-12.
    /// </summary>
    [Theory]
    [InlineData(true, 6)]
    [InlineData(false, 6)]
    [InlineData(false, 2)]
    [InlineData(true, 3)]
    public void MatchesTheDefinition(bool normBeforeGate, int groupSize)
    {
        const int dim = 6;
        const double eps = 1e-5;
        using var norm = new GatedRMSNorm(dim, eps, normBeforeGate, groupSize);
        norm.to(ScalarType.Float64);
        var gen = new Generator(21);
        Reference.Set(norm.weight, TestUtil.Randn(gen, new long[] { dim }));
        using var x = TestUtil.Randn(gen, new long[] { 2, 3, dim });
        using var g = TestUtil.Randn(gen, new long[] { 2, 3, dim });
        using var y = norm.forward(x, g);
        var xs = TestUtil.Values(x); var gs = TestUtil.Values(g); var w = TestUtil.Values(norm.weight); var ys = TestUtil.Values(y);
        for (int row = 0; row < 6; row++)
            for (int start = 0; start < dim; start += groupSize)
            {
                double Gate(int i) => Reference.Silu(gs[row * dim + i]);
                double U(int i) => normBeforeGate ? xs[row * dim + i] : xs[row * dim + i] * Gate(i);
                double meanSquare = Enumerable.Range(start, groupSize).Average(i => U(i) * U(i));
                for (int i = start; i < start + groupSize; i++)
                {
                    double expected = U(i) / Math.Sqrt(meanSquare + eps) * w[i] * (normBeforeGate ? Gate(i) : 1);
                    ys[row * dim + i].Should().BeApproximately(expected, 1e-12);
                }
            }
    }

    [Fact]
    public void HalfPrecisionInputsComputeTheStatisticsInFloat32()
    {
        using var norm = new GatedRMSNorm(8);
        var gen = new Generator(22);
        using var x = randn(new long[] { 4, 8 }, generator: gen);
        using var g = randn(new long[] { 4, 8 }, generator: gen);
        using var reference = norm.forward(x, g);
        using var half = norm.forward(x.to(ScalarType.BFloat16), g.to(ScalarType.BFloat16));
        half.dtype.Should().Be(ScalarType.BFloat16);
        TestUtil.RelRms(half.to(ScalarType.Float32), reference).Should().BeLessThan(2e-2);   // bfloat16 inputs: 8 mantissa bits
    }

    [Fact]
    public void BadArgumentsAreRefusedNamingThem()
    {
        ((Action)(() => new GatedRMSNorm(6, groupSize: 4))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("groupSize");
        using var norm = new GatedRMSNorm(6);
        ((Action)(() => norm.forward(zeros(2, 6), zeros(2, 5)))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("gate");
        ((Action)(() => norm.forward(zeros(2, 5), zeros(2, 5)))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
        norm.state_dict().Keys.Should().Equal("weight");
    }
}
