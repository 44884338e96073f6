using Discretax.Blocks;
using Discretax.ChannelMixers;
using MnistClassifier.Data;

namespace MnistClassifier.Models;

/// <summary>
/// Everything needed to rebuild a classifier before loading its weights; saved beside every checkpoint.
/// </summary>
/// <param name="Model">The <see cref="ModelCatalog"/> name.</param>
/// <param name="Layout">The sequence layout the model was trained on.</param>
/// <param name="Hidden">The hidden size H.</param>
/// <param name="Blocks">The number of blocks.</param>
/// <param name="DropRate">The dropout probability.</param>
/// <param name="InputFeatures">The features per step F (28 for rows, 1 for pixels).</param>
/// <param name="SequenceLength">The sequence length L (28 or 784).</param>
/// <param name="Classes">The number of classes.</param>
/// <param name="Block">The standard blocks' norm and activation: <c>library</c> (PyTorch's batch norm, exact GELU) or
/// <c>discretax</c> (discretax's exactly: equinox's EMA batch norm, tanh GELU); see <see cref="BlockStyles"/>.</param>
public sealed record NetworkSpec(string Model, SequenceLayout Layout, int Hidden, int Blocks, double DropRate,
    int InputFeatures, int SequenceLength, int Classes = 10, string Block = BlockStyles.Library)
{
    /// <summary>The blocks' norm for <see cref="Block"/>.</summary>
    public NormKind Norm => Block == BlockStyles.Discretax ? NormKind.EquinoxBatch : NormKind.Batch;

    /// <summary>The blocks' activation after the mixer for <see cref="Block"/>.</summary>
    public Activation Activation => Block == BlockStyles.Discretax ? Activation.GELUTanh : Activation.GELU;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public void Validate()
    {
        ModelCatalog.Get(Model);
        if (!Enum.IsDefined(Layout)) throw new ArgumentOutOfRangeException(nameof(Layout), Layout, "Unknown layout.");
        if (Hidden < 1) throw new ArgumentOutOfRangeException(nameof(Hidden), Hidden, $"Expected a hidden size of at least 1; got {Hidden}.");
        if (Blocks < 1) throw new ArgumentOutOfRangeException(nameof(Blocks), Blocks, $"Expected at least 1 block; got {Blocks}.");
        if (!(DropRate >= 0 && DropRate < 1)) throw new ArgumentOutOfRangeException(nameof(DropRate), DropRate, $"Expected a dropout rate in [0, 1); got {DropRate}.");
        if (InputFeatures < 1) throw new ArgumentOutOfRangeException(nameof(InputFeatures), InputFeatures, $"Expected at least 1 input feature; got {InputFeatures}.");
        if (SequenceLength < 1) throw new ArgumentOutOfRangeException(nameof(SequenceLength), SequenceLength, $"Expected a sequence length of at least 1; got {SequenceLength}.");
        if (Classes < 2) throw new ArgumentOutOfRangeException(nameof(Classes), Classes, $"Expected at least 2 classes; got {Classes}.");
        if (!BlockStyles.All.Contains(Block))
            throw new ArgumentOutOfRangeException(nameof(Block), Block, $"Expected a block style of {string.Join(", ", BlockStyles.All)}; got {Block}.");
        if (Block != BlockStyles.Library && !ModelCatalog.Get(Model).StandardBlocks)
            throw new ArgumentOutOfRangeException(nameof(Block), Block, $"{Model} is not built from standard blocks; only --block {BlockStyles.Library} applies to it.");
    }

    /// <summary>One line for the user, e.g. <c>conv-baseline, rows (28 x 28), hidden 64, 2 blocks, dropout 0.1</c>.</summary>
    public string Describe() =>
        $"{Model}, {Layout.ToString().ToLowerInvariant()} ({SequenceLength} steps x {InputFeatures}), hidden {Hidden}, {Display.Words.Count(Blocks, "block")}, dropout {DropRate.ToString(System.Globalization.CultureInfo.InvariantCulture)}"
        + (Block == BlockStyles.Library ? "" : $", {Block} blocks");
}

/// <summary>The values of <c>--block</c>.</summary>
public static class BlockStyles
{
    /// <summary>The library's defaults: PyTorch's batch norm (training batches normalized with their own statistics), exact GELU.</summary>
    public const string Library = "library";

    /// <summary>discretax's block exactly: equinox's EMA batch norm (<see cref="NormKind.EquinoxBatch"/>), tanh GELU (<see cref="Activation.GELUTanh"/>).</summary>
    public const string Discretax = "discretax";

    /// <summary>Every value.</summary>
    public static readonly string[] All = { Library, Discretax };
}
