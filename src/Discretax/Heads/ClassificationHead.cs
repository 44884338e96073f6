using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Heads;

/// <summary>
/// Classification head, as discretax's <c>ClassificationHead</c>: with <c>reduce</c>, the mean over time, then a
/// linear map with bias and <c>log_softmax</c>: <c>[B, L, H] -> [B, C]</c> log-probabilities (unbatched
/// <c>[L, H] -> [C]</c>); without it, one prediction per step, <c>[B, L, C]</c>. Train with
/// <c>nll_loss</c> on the output.
/// </summary>
public sealed class ClassificationHead : nn.Module<Tensor, Tensor>
{
    /// <summary>The linear map <c>inFeatures -> outFeatures</c> (with bias).</summary>
    public Linear linear;

    /// <summary>Creates the head.</summary>
    /// <param name="inFeatures">The model's feature size H.</param>
    /// <param name="outFeatures">The number of classes C.</param>
    /// <param name="reduce">Mean over time before the linear map (one prediction per sequence).</param>
    public ClassificationHead(long inFeatures, long outFeatures, bool reduce = true) : base(nameof(ClassificationHead))
    {
        Check.AtLeast(inFeatures, 1);
        Check.AtLeast(outFeatures, 1);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Reduce = reduce;
        linear = nn.Linear(inFeatures, outFeatures, hasBias: true);
        RegisterComponents();
    }

    /// <summary>The model's feature size H.</summary>
    public long InFeatures { get; }

    /// <summary>The number of classes.</summary>
    public long OutFeatures { get; }

    /// <summary>Whether the head averages over time.</summary>
    public bool Reduce { get; }

    /// <summary>Computes log-probabilities.</summary>
    /// <param name="x">Model output <c>[B, L, H]</c> or <c>[L, H]</c>.</param>
    /// <returns><c>[B, C]</c> (or <c>[C]</c>) with <c>reduce</c>, otherwise <c>[B, L, C]</c> (or <c>[L, C]</c>).</returns>
    public override Tensor forward(Tensor x)
    {
        var (batched, unbatched) = Check.Sequence(x, InFeatures);
        using var scope = NewDisposeScope();
        var h = Reduce ? batched.mean(new long[] { 1 }) : batched;
        var y = nn.functional.log_softmax(linear.forward(h), -1);
        if (unbatched) y = y.squeeze(0);
        return y.MoveToOuterDisposeScope();
    }
}
