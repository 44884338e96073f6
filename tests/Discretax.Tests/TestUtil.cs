using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests;

/// <summary>Helpers shared by the tests: seeded tensors (never the global seed) and error metrics.</summary>
public static class TestUtil
{
    /// <summary>Standard normal float64 (or <paramref name="dtype"/>) values from an explicit generator.</summary>
    public static Tensor Randn(Generator g, long[] shape, ScalarType dtype = ScalarType.Float64) =>
        randn(shape, dtype: dtype, generator: g);

    /// <summary>RMS(a - b) / RMS(b): the float32 error metric of the tests.</summary>
    public static double RelRms(Tensor actual, Tensor reference)
    {
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var r = reference.to(ScalarType.Float64);
        double num = (a - r).square().mean().sqrt().item<double>();
        double den = r.square().mean().sqrt().item<double>();
        return num / Math.Max(den, 1e-300);
    }

    /// <summary>max |a - b|.</summary>
    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
    }

    /// <summary>The values of a tensor as a flat double array.</summary>
    public static double[] Values(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return d.data<double>().ToArray();
    }

    /// <summary>
    /// A float32 input gives a float32 output, and its bfloat16 rounding a bfloat16 output within relative RMS
    /// <paramref name="tolerance"/> of the float32 output of that same rounded input (so only the computation's
    /// precision, not the input's rounding, is measured).
    /// </summary>
    public static void KeepsFloat32AndBFloat16Dtypes(nn.Module<Tensor, Tensor> module, Tensor x, double tolerance)
    {
        using var scope = NewDisposeScope();
        x.dtype.Should().Be(ScalarType.Float32);
        module.forward(x).dtype.Should().Be(ScalarType.Float32);
        var xh = x.to(ScalarType.BFloat16);
        var yh = module.forward(xh);
        yh.dtype.Should().Be(ScalarType.BFloat16);
        RelRms(yh, module.forward(xh.to(ScalarType.Float32))).Should().BeLessThan(tolerance);
    }
}
