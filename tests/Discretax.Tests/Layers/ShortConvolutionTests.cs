using Discretax.Layers;
using static TorchSharp.torch;

namespace Discretax.Tests.Layers;

public class ShortConvolutionTests
{
    /// <summary>y[t, c] = act(bias[c] + sum_j w[c, j] x[t - (K-1) + j, c]) with x = 0 before t = 0, by scalar loops.</summary>
    private static double[] Loop(double[] x, int l, int h, double[,] w, double[]? bias, bool silu)
    {
        int k = w.GetLength(1);
        var y = new double[l * h];
        for (int t = 0; t < l; t++)
            for (int c = 0; c < h; c++)
            {
                double s = bias?[c] ?? 0;
                for (int j = 0; j < k; j++)
                {
                    int src = t - (k - 1) + j;
                    if (src >= 0) s += w[c, j] * x[src * h + c];
                }
                y[t * h + c] = silu ? Reference.Silu(s) : s;
            }
        return y;
    }

    [Theory]
    [InlineData(4, true, false)]
    [InlineData(3, false, true)]
    [InlineData(1, true, true)]
    public void MatchesTheScalarCausalConvolution(int k, bool silu, bool useBias)
    {
        const int l = 9, h = 5;
        using var conv = new ShortConvolution(h, k, silu, useBias);
        conv.to(ScalarType.Float64);
        var w = Reference.Matrix(h, k, 1);
        var b = Reference.Vector(h, 2);
        Reference.Set(conv.weight, Reference.ToTensor(w).unsqueeze(1));
        if (useBias) Reference.Set(conv.bias!, Reference.ToTensor(b));
        var x = Enumerable.Range(0, l * h).Select(i => Math.Sin(0.37 * i)).ToArray();
        using var xt = tensor(x, new long[] { l, h }, ScalarType.Float64);
        using var y = conv.forward(xt);
        var expected = Loop(x, l, h, w, useBias ? b : null, silu);
        var actual = TestUtil.Values(y);
        for (int i = 0; i < expected.Length; i++) actual[i].Should().BeApproximately(expected[i], 1e-13);
    }

    [Fact]
    public void StreamingCarriesTheLastKernelMinusOneInputs()
    {
        using var conv = new ShortConvolution(3, kernelSize: 4);
        conv.to(ScalarType.Float64);
        var g = new Generator(5);
        using var x = TestUtil.Randn(g, new long[] { 2, 6, 3 });
        var (_, state) = conv.Stream(x.narrow(1, 0, 2));
        using (state)
        {
            // Only two inputs seen: the cache is [0, x0, x1].
            state["cache"].shape.Should().Equal(2, 3, 3);
            TestUtil.MaxAbsDiff(state["cache"].narrow(1, 0, 1), zeros(2, 1, 3, dtype: ScalarType.Float64)).Should().Be(0);
            TestUtil.MaxAbsDiff(state["cache"].narrow(1, 1, 2), x.narrow(1, 0, 2)).Should().Be(0);
        }
    }

    [Fact]
    public void InvalidOptionsThrow()
    {
        var act = () => new ShortConvolution(4, kernelSize: 0);
        act.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("kernelSize");
        var act2 = () => new ShortConvolution(0);
        act2.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("channels", "the error names the parameter the caller wrote");
    }
}
