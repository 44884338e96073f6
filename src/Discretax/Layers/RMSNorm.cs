using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// Root-mean-square layer normalization (Zhang and Sennrich 2019, arXiv 1910.07467) over the last dimension:
/// <c>y = x / sqrt(mean(x^2) + eps) * weight</c>. The norm computes in the dtype of its weight (the input's dtype
/// without one; docs/architecture.md, "Dtypes"), with the statistics in float32 at least, also for float16/bfloat16;
/// the output has the input's dtype.
/// </summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>The per-feature gain <c>[dim]</c> (absent when <c>elementwiseAffine</c> is false).</summary>
    public Parameter? weight;

    /// <summary>Creates the norm.</summary>
    /// <param name="dim">The size of the normalized (last) dimension.</param>
    /// <param name="eps">Added to the mean square; must be positive.</param>
    /// <param name="elementwiseAffine">Whether to learn a per-feature gain (initialized to 1).</param>
    public RMSNorm(long dim, double eps = 1e-6, bool elementwiseAffine = true) : base(nameof(RMSNorm))
    {
        Check.AtLeast(dim, 1);
        Check.PositiveFinite(eps);
        Dim = dim;
        Eps = eps;
        if (elementwiseAffine) weight = nn.Parameter(ones(dim));
        RegisterComponents();
    }

    /// <summary>The size of the normalized dimension.</summary>
    public long Dim { get; }

    /// <summary>The epsilon added to the mean square.</summary>
    public double Eps { get; }

    /// <summary>Normalizes the last dimension.</summary>
    /// <param name="x">Input <c>[..., dim]</c>, real floating point, no empty dimension.</param>
    /// <returns>Output <c>[..., dim]</c>, same dtype as <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.PerPosition(x, Dim);
        return Precision.Compute(this, x, xc =>
        {
            var y = Normalize(Widen(xc), Eps);
            if (weight is not null) y = y * weight.to(y.dtype);
            return y.to(xc.dtype);
        });
    }

    /// <summary><paramref name="x"/> in the dtype of a norm's statistics: float32 for float16/bfloat16, else its own.</summary>
    internal static Tensor Widen(Tensor x) => Precision.As(x, Precision.StateDType(x.dtype));

    /// <summary><c>x / sqrt(mean(x^2) + eps)</c> over the last dimension, in <paramref name="x"/>'s dtype.</summary>
    internal static Tensor Normalize(Tensor x, double eps) =>
        x * x.square().mean(new long[] { -1 }, keepdim: true).add(eps).rsqrt();
}
