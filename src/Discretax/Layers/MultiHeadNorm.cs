using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// Per-head normalization of a multi-head output (xLSTM's <c>MultiHeadLayerNorm</c> / xlstm-jax's
/// <c>MultiHeadNormLayer</c>): each head's <c>headDim</c> features are normalized on their own, then scaled by a
/// learned gain (no bias). Layer norm: <c>y = (x - mean(x)) / sqrt(var(x) + eps) * weight</c> (biased variance);
/// RMS norm: <c>y = x / sqrt(mean(x^2) + eps) * weight</c>; the statistics run over the last dimension of
/// <c>[..., numHeads, headDim]</c>, in float32 at least. The norm computes in the dtype of its weight
/// (docs/architecture.md, "Dtypes"); the output has the input's dtype.
/// </summary>
public sealed class MultiHeadNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>The gain <c>[numHeads * headDim]</c> (head-major, initialized to 1).</summary>
    public Parameter weight;

    /// <summary>Creates the norm.</summary>
    /// <param name="numHeads">The number of heads NH.</param>
    /// <param name="headDim">The features per head D.</param>
    /// <param name="useRms">RMS normalization (true) or layer normalization (false).</param>
    /// <param name="eps">Added to the variance (or mean square); must be positive.</param>
    public MultiHeadNorm(long numHeads, long headDim, bool useRms = false, double eps = 1e-6) : base(nameof(MultiHeadNorm))
    {
        Check.AtLeast(numHeads, 1);
        Check.AtLeast(headDim, 1);
        Check.PositiveFinite(eps);
        NumHeads = numHeads;
        HeadDim = headDim;
        UseRms = useRms;
        Eps = eps;
        weight = nn.Parameter(ones(numHeads * headDim));
        RegisterComponents();
    }

    /// <summary>The number of heads.</summary>
    public long NumHeads { get; }

    /// <summary>The features per head.</summary>
    public long HeadDim { get; }

    /// <summary>Whether this is an RMS norm (else a layer norm).</summary>
    public bool UseRms { get; }

    /// <summary>The epsilon.</summary>
    public double Eps { get; }

    /// <summary>Normalizes every head.</summary>
    /// <param name="x">Input <c>[..., numHeads, headDim]</c>, real floating point, no empty dimension.</param>
    /// <returns>Output <c>[..., numHeads, headDim]</c> in <paramref name="x"/>'s dtype.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.PerPosition(x, HeadDim);
        if (x.dim() < 2 || x.shape[^2] != NumHeads)
            throw new ArgumentException($"Expected a tensor [..., {NumHeads}, {HeadDim}]; got shape {Check.Shape(x)}.", nameof(x));
        return Precision.Compute(this, x, xc =>
        {
            var wide = RMSNorm.Widen(xc);
            var y = RMSNorm.Normalize(UseRms ? wide : wide - wide.mean(new long[] { -1 }, keepdim: true), Eps);
            y = y * weight.to(y.dtype).view(NumHeads, HeadDim);
            return y.to(xc.dtype);
        });
    }
}
