using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class DiagonalDiscretizationTests
{
    /// <summary>
    /// ZOH at dt |lambda| = 1e-6 in float32: dB = dt expm1(z)/z with z = dt lambda, against the series
    /// dt (1 + z/2 + z^2/6) in float64 (truncation error |z|^3/24 ~ 4e-20). Tolerance: relative 1e-6 (float32 rounding
    /// of a few operations is ~1e-7; the cancelling form (exp(z) - 1)/lambda is off by up to ~6e-2 here).
    /// </summary>
    [Theory]
    [InlineData(-1.0, 0.0)]
    [InlineData(-0.5, 3.0)]
    [InlineData(-2.0, -40.0)]
    public void ZohInputFactorKeepsFullAccuracyForTinySteps(double re, double im)
    {
        using var scope = NewDisposeScope();
        double mag = Math.Sqrt(re * re + im * im);
        double dt = 1e-6 / mag;
        var aRe = tensor(new[] { (float)re });
        var aIm = tensor(new[] { (float)im });
        var dtT = tensor(new[] { (float)dt });
        var (logDA, dB) = DiagonalDiscretization.Discretize(aRe, aIm, dtT, Discretization.Zoh);
        dB.dtype.Should().Be(ScalarType.ComplexFloat32);

        // Reference from the float32-rounded inputs, in float64 complex arithmetic.
        var lam = new System.Numerics.Complex((float)re, (float)im);
        var z = lam * (double)(float)dt;
        var expected = (double)(float)dt * (1 + z / 2 + z * z / 6);
        var actual = new System.Numerics.Complex(dB.real.item<float>(), dB.imag.item<float>());
        ((actual - expected).Magnitude / expected.Magnitude).Should().BeLessThan(1e-6);

        // The same function stands behind SsmKernels.Discretize (log dt passed in).
        var (_, dB2) = SsmKernels.Discretize(dtT.log(), aRe.unsqueeze(1), aIm.unsqueeze(1));
        var viaKernel = new System.Numerics.Complex(dB2.real.item<float>(), dB2.imag.item<float>());
        ((viaKernel - expected).Magnitude / expected.Magnitude).Should().BeLessThan(1e-6);
        logDA.real.item<float>().Should().BeApproximately((float)(re * dt), 1e-12f);
    }
}
