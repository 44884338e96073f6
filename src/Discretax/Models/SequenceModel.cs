using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// A stack of sequence blocks applied in order, then an optional final norm, <c>[B, L, H] -> [B, L, H]</c>: the
/// shape of every model of the library (a model is its blocks). <see cref="Standard"/> builds the stack of
/// discretax's models from a mixer factory and a channel-mixer factory (the C# form of discretax's
/// <c>functools.partial</c> arguments); the named models (<see cref="DeltaNet"/>, <see cref="LRU"/>, <see cref="S4D"/>,
/// <see cref="S5"/>, <see cref="LinOSS"/>) are presets over it, and <see cref="MLSTM"/> and
/// <see cref="TransformerDeltaNet"/> use the same class with their own blocks and final norm. Streaming carries a
/// <see cref="SequenceModelState"/> with one state per block. Compose with an encoder and a head in
/// <c>torch.nn.Sequential</c>, or stream a whole network with <see cref="SequenceNetwork"/>.
/// </summary>
public class SequenceModel : SequenceModule
{
    /// <summary>The blocks, applied in order (registered as <c>blocks</c>, or the name a derived model gives).</summary>
    public readonly ModuleList<SequenceModule> blocks;

    /// <summary>The norm after the last block, or null (registered as <c>final_norm</c>, or the name a derived model gives).</summary>
    public readonly nn.Module<Tensor, Tensor>? final_norm;

    private readonly NormKind _finalNormKind;

    /// <summary>Creates a model from its blocks.</summary>
    /// <param name="inFeatures">The feature size H of every block.</param>
    /// <param name="blocks">The blocks (at least one), each <c>H -> H</c>.</param>
    /// <param name="finalNorm">A norm after the last block (<c>final_norm</c>), or null for none.</param>
    public SequenceModel(long inFeatures, IEnumerable<SequenceModule> blocks, NormKind? finalNorm = null)
        : this(nameof(SequenceModel), Check.Dim(inFeatures), blocks, finalNorm) { }

    /// <summary>Creates a named model from its blocks (for derived models).</summary>
    /// <param name="name">The module name.</param>
    /// <param name="inFeatures">The feature size H of every block.</param>
    /// <param name="blocks">The blocks (at least one), each <c>H -> H</c>.</param>
    /// <param name="finalNorm">A norm after the last block, or null for none.</param>
    /// <param name="blocksName">The <c>state_dict</c> name of the block list (the reference's: <c>blocks</c>, <c>layers</c>).</param>
    /// <param name="finalNormName">The <c>state_dict</c> name of the final norm (<c>final_norm</c>, <c>post_blocks_norm</c>, <c>norm</c>).</param>
    /// <param name="finalNormEps">The final norm's eps, or null for the kind's default (<see cref="Norms.DefaultEps"/>).</param>
    protected SequenceModel(string name, long inFeatures, IEnumerable<SequenceModule> blocks, NormKind? finalNorm = null,
        string blocksName = "blocks", string finalNormName = "final_norm", double? finalNormEps = null)
        : base(name, inFeatures)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var list = blocks.ToList();
        if (list.Count == 0) throw new ArgumentException("A model needs at least one block.", nameof(blocks));
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is null) throw new ArgumentException($"Block {i} is null.", nameof(blocks));
            if (list[i].InFeatures != inFeatures)
                throw new ArgumentException($"Block {i} takes {list[i].InFeatures} features; the model has {inFeatures}.", nameof(blocks));
        }
        this.blocks = new ModuleList<SequenceModule>(list.ToArray());
        register_module(blocksName, this.blocks);
        if (finalNorm is NormKind kind)
        {
            _finalNormKind = kind;
            final_norm = Norms.Create(kind, inFeatures, finalNormEps);
            register_module(finalNormName, final_norm);
        }
    }

    /// <summary>The number of blocks.</summary>
    public int NumBlocks => blocks.Count;

    /// <summary>
    /// The blocks of discretax's models: <paramref name="numBlocks"/> <see cref="StandardBlock"/>s, block i made of
    /// <c>mixer(H)</c> and <c>channelMixer(H)</c> (constructed in that order, so a seed gives the same parameters as
    /// constructing them by hand).
    /// </summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks (at least 1).</param>
    /// <param name="mixer">Makes a block's sequence mixer for H features.</param>
    /// <param name="channelMixer">Makes a block's channel mixer <c>H -> H</c>.</param>
    /// <param name="dropRate">The blocks' dropout probability, in [0, 1).</param>
    /// <param name="prenorm">Normalize before the mixers (true) or after the residual (false).</param>
    /// <param name="norm">The blocks' norm (discretax: batch norm, exactly <see cref="NormKind.EquinoxBatch"/>).</param>
    /// <param name="activation">The blocks' activation after the mixer (discretax: <see cref="Activation.GELUTanh"/>).</param>
    public static IReadOnlyList<SequenceModule> Standard(long hiddenDim, int numBlocks, Func<long, SequenceModule> mixer,
        Func<long, ChannelMixer> channelMixer, double dropRate = 0.1, bool prenorm = true, NormKind norm = NormKind.Batch,
        Activation activation = Activation.GELU)
    {
        Check.AtLeast(hiddenDim, 1);
        Check.AtLeast(numBlocks, 1);
        ArgumentNullException.ThrowIfNull(mixer);
        ArgumentNullException.ThrowIfNull(channelMixer);
        Check.DropRate(dropRate);
        Check.Defined(norm);
        Check.Defined(activation);
        var list = new List<SequenceModule>(numBlocks);
        for (int i = 0; i < numBlocks; i++)
            list.Add(new StandardBlock(hiddenDim, mixer(hiddenDim), channelMixer(hiddenDim), dropRate, prenorm, norm, activation));
        return list;
    }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="SequenceModelState"/>, one state per block.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var previous = (SequenceModelState?)state;
        var h = x;
        var next = returnState ? new StreamingState[blocks.Count] : null;
        for (int i = 0; i < blocks.Count; i++)
        {
            var (y, s) = RunChild(blocks[i], h, previous?.Blocks[i], returnState, lengths);
            h = y;
            if (next is not null) next[i] = s!;
        }
        if (final_norm is not null) h = _finalNormKind.Apply(final_norm, h, lengths is null ? null : SequenceLengths.Mask(lengths, h.shape[1]));
        return (h, next is null ? null : new SequenceModelState(next));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var previous = (SequenceModelState?)state;
        var h = x;
        var next = returnState ? new StreamingState[blocks.Count] : null;
        for (int i = 0; i < blocks.Count; i++)
        {
            var (y, s) = RunChildPacked(blocks[i], h, cuSeqlens, previous?.Blocks[i], returnState);
            h = y;
            if (next is not null) next[i] = s!;
        }
        if (final_norm is not null) h = _finalNormKind.Apply(final_norm, h);
        return (h, next is null ? null : new SequenceModelState(next));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state)
    {
        var s = StreamingState.Expect<SequenceModelState>(state, GetType().Name);
        s.Validate(blocks.Count, GetType().Name);
        for (int i = 0; i < blocks.Count; i++) CheckChildState(blocks[i], s.Blocks[i]);
    }
}
