using static TorchSharp.torch;

namespace Discretax.Heads;

/// <summary>
/// Regression head, as discretax's <c>RegressionHead</c>: with <c>reduce</c>, the mean over time, then a linear
/// map with bias: <c>[B, L, H] -> [B, outFeatures]</c> (unbatched <c>[L, H] -> [outFeatures]</c>); without
/// it, one output per step, <c>[B, L, outFeatures]</c>.
/// </summary>
public sealed class RegressionHead : SequenceHead
{
    /// <summary>Creates the head.</summary>
    /// <param name="inFeatures">The model's feature size H.</param>
    /// <param name="outFeatures">The number of outputs.</param>
    /// <param name="reduce">Mean over time before the linear map.</param>
    public RegressionHead(long inFeatures, long outFeatures, bool reduce = true)
        : base(nameof(RegressionHead), inFeatures, outFeatures, reduce)
    {
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override Tensor Output(Tensor logits) => logits;
}
