using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Utilities;

/// <summary>The library's one truncated-normal initializer (JAX's), in its two uses.</summary>
internal static class Initializers
{
    /// <summary>The standard deviation of a standard normal truncated to [-2, 2].</summary>
    public const double TruncatedStd = 0.87962566103423978;

    /// <summary><c>erf(sqrt 2) = P(|Z| &lt; 2)</c> for a standard normal Z.</summary>
    private const double ErfSqrt2 = 0.95449973610364158;

    /// <summary>
    /// A standard normal truncated to [-2, 2], times <paramref name="scale"/>: JAX's
    /// <c>initializers.truncated_normal(stddev = scale)</c> (so the values' standard deviation is 0.88 scale). Drawn by
    /// inverse-CDF sampling, <c>z = sqrt(2) erfinv(v)</c> with <c>v ~ U(-erf(sqrt 2), erf(sqrt 2))</c>, from TorchSharp's
    /// default generator, in float64. (TorchSharp 0.107's <c>nn.init.trunc_normal_</c> swaps mean and std and omits the
    /// sqrt(2), so it is not used.)
    /// </summary>
    /// <param name="shape">The shape.</param>
    /// <param name="scale">The factor on the truncated standard normal.</param>
    public static Tensor TruncatedNormal(long[] shape, double scale)
    {
        var t = empty(shape, dtype: ScalarType.Float64).uniform_(-ErfSqrt2, ErfSqrt2);
        return t.erfinv_().mul_(Math.Sqrt(2)).clamp_(-2.0, 2.0).mul_(scale);
    }

    /// <summary>
    /// A truncated normal whose standard deviation is <paramref name="std"/>: JAX's
    /// <c>variance_scaling(..., distribution = "truncated_normal")</c> (e.g. <c>lecun_normal</c>), which divides the
    /// scale by <see cref="TruncatedStd"/>.
    /// </summary>
    /// <param name="shape">The shape.</param>
    /// <param name="std">The standard deviation of the values.</param>
    public static Tensor TruncatedNormalWithStd(long[] shape, double std) => TruncatedNormal(shape, std / TruncatedStd);
}
