using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The one place where a complex diagonal system <c>x' = A x + u</c> is discretized with step <c>dt</c> (used by
/// <see cref="SsmKernels.Discretize"/>, <see cref="SsmKernels.S4DKernel"/> and the S5 mixer).
/// </summary>
internal static class DiagonalDiscretization
{
    /// <summary>
    /// <c>(log dA, dB)</c> of <c>x_t = dA x_{t-1} + dB u_t</c>, complex, broadcast over the shapes of the inputs.
    /// ZOH: <c>log dA = dt A</c> exactly and <c>dB = (exp(dt A) - 1) / A</c> with the numerator formed without
    /// cancellation (<c>Re = expm1(xr) cos(xi) - 2 sin^2(xi/2)</c>, <c>Im = exp(xr) sin(xi)</c>, <c>x = dt A</c>), so it
    /// keeps full relative accuracy when <c>|dt A|</c> is tiny (where <c>exp(dt A) - 1</c> loses every digit).
    /// Bilinear: <c>log dA = log(1 + dt A/2) - log(1 - dt A/2)</c>, <c>dB = dt / (1 - dt A/2)</c>.
    /// </summary>
    /// <param name="aReal">Real parts of A (real tensor).</param>
    /// <param name="aImag">Imaginary parts of A, aReal's shape and dtype.</param>
    /// <param name="dt">Step sizes, real, broadcastable to aReal.</param>
    /// <param name="discretization">Zero-order hold or bilinear.</param>
    internal static (Tensor LogDA, Tensor DB) Discretize(Tensor aReal, Tensor aImag, Tensor dt, Discretization discretization)
    {
        var a = complex(aReal, aImag);
        if (discretization == Discretization.Zoh)
        {
            var xr = aReal * dt;
            var xi = aImag * dt;
            var logDA = complex(xr, xi);                             // dt A
            var half = (xi * 0.5).sin();
            var em1 = complex(xr.expm1() * xi.cos() - half * half * 2.0, xr.exp() * xi.sin());
            return (logDA, em1 / a);
        }
        var halfDtA = a * (dt * 0.5);                                // dt A / 2
        var denominator = 1.0 - halfDtA;                             // 1 - dt A/2
        var numerator = halfDtA + 1.0;                               // 1 + dt A/2
        return (numerator.log() - denominator.log(), dt / denominator);
    }
}
