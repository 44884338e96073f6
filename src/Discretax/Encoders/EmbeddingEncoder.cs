using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Encoders;

/// <summary>
/// An embedding table for integer ids, <c>[B, L] -> [B, L, outFeatures]</c> (or unbatched <c>[L]</c>), as
/// discretax's <c>EmbeddingEncoder</c>.
/// </summary>
public sealed class EmbeddingEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>The table <c>[numClasses, outFeatures]</c>.</summary>
    public Embedding embedding;

    /// <summary>Creates the encoder.</summary>
    /// <param name="numClasses">The number of distinct ids (ids lie in <c>[0, numClasses)</c>).</param>
    /// <param name="outFeatures">Output features per step.</param>
    public EmbeddingEncoder(long numClasses, long outFeatures) : base(nameof(EmbeddingEncoder))
    {
        Check.AtLeast(numClasses, 1);
        Check.AtLeast(outFeatures, 1);
        NumClasses = numClasses;
        OutFeatures = outFeatures;
        embedding = nn.Embedding(numClasses, outFeatures);
        RegisterComponents();
    }

    /// <summary>The number of distinct ids.</summary>
    public long NumClasses { get; }

    /// <summary>Output features per step.</summary>
    public long OutFeatures { get; }

    /// <summary>Looks up every id.</summary>
    /// <param name="ids">Integer ids <c>[B, L]</c> or <c>[L]</c>, B and L at least 1, each in <c>[0, numClasses)</c>.</param>
    /// <returns><c>[B, L, outFeatures]</c> or <c>[L, outFeatures]</c>, in the embedding's dtype.</returns>
    public override Tensor forward(Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.dim() != 1 && ids.dim() != 2)
            throw new ArgumentException($"Expected ids [B, L] or [L]; got shape {Check.Shape(ids)}.", nameof(ids));
        if (ids.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
            throw new ArgumentException($"Expected integer ids; got {ids.dtype}.", nameof(ids));
        if (ids.shape[^1] < 1)
            throw new ArgumentException($"Expected a sequence of length at least 1; got shape {Check.Shape(ids)}.", nameof(ids));
        if (ids.shape[0] < 1)
            throw new ArgumentException($"Expected a batch of at least 1 sequence; got shape {Check.Shape(ids)}.", nameof(ids));
        Check.SameDevice(embedding.weight!, ids, "the embedding");
        using var scope = NewDisposeScope();
        var wide = ids.to(ScalarType.Int64);
        long min = wide.min().item<long>(), max = wide.max().item<long>();
        if (min < 0 || max >= NumClasses)
            throw new ArgumentOutOfRangeException(nameof(ids), $"Expected ids in [0, {NumClasses}); got values from {min} to {max}.");
        return embedding.forward(wide).MoveToOuterDisposeScope();
    }
}
