using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Heads;

/// <summary>
/// Classification head, as discretax's <c>ClassificationHead</c>: with <c>reduce</c>, the mean over time, then a
/// linear map with bias and <c>log_softmax</c>: <c>[B, L, H] -> [B, C]</c> log-probabilities (unbatched
/// <c>[L, H] -> [C]</c>); without it, one prediction per step, <c>[B, L, C]</c>. Train with
/// <c>nll_loss</c> on the output.
/// </summary>
public sealed class ClassificationHead : SequenceHead
{
    /// <summary>Creates the head.</summary>
    /// <param name="inFeatures">The model's feature size H.</param>
    /// <param name="outFeatures">The number of classes C.</param>
    /// <param name="reduce">Mean over time before the linear map (one prediction per sequence).</param>
    public ClassificationHead(long inFeatures, long outFeatures, bool reduce = true)
        : base(nameof(ClassificationHead), inFeatures, outFeatures, reduce)
    {
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override Tensor Output(Tensor logits) => nn.functional.log_softmax(logits, -1);
}
