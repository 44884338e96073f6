using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>
/// discretax's standard block: a sequence mixer and a channel mixer around one residual connection.
/// <code>
/// skip = x
/// if prenorm: x = norm(x)
/// x = sequence_mixer(x)
/// x = dropout(act(x))          (act: GELU by default; discretax's jax.nn.gelu is Activation.GELUTanh)
/// x = channel_mixer(x)
/// x = dropout(x)
/// x = skip + x
/// if !prenorm: x = norm(x)
/// </code>
/// Shapes: <c>[B, L, H] -> [B, L, H]</c> (or unbatched <c>[L, H]</c>). Streaming carries the sequence mixer's state in a <see cref="BlockState"/>.
/// </summary>
public sealed class StandardBlock : SequenceModule
{
    /// <summary>The normalization (BatchNorm1d, EquinoxBatchNorm, LayerNorm or RMSNorm over H).</summary>
    public nn.Module<Tensor, Tensor> norm;

    /// <summary>The sequence mixer.</summary>
    public SequenceModule sequence_mixer;

    /// <summary>The channel mixer.</summary>
    public ChannelMixer channel_mixer;

    /// <summary>The dropout applied after the activation and after the channel mixer.</summary>
    public FastDropout drop;

    /// <summary>Creates the block.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    /// <param name="sequenceMixer">A sequence module <c>[B, L, H] -> [B, L, H]</c> (any <see cref="SequenceModule"/>, e.g. a mixer or a <see cref="ShortConvolution"/>).</param>
    /// <param name="channelMixer">A channel mixer <c>H -> H</c>.</param>
    /// <param name="dropRate">Dropout probability in [0, 1).</param>
    /// <param name="prenorm">Normalize before the mixers (true) or after the residual (false).</param>
    /// <param name="norm">The normalization kind.</param>
    /// <param name="activation">The activation after the sequence mixer.</param>
    /// <remarks>discretax's block exactly: <c>norm: NormKind.EquinoxBatch, activation: Activation.GELUTanh</c>.</remarks>
    public StandardBlock(long inFeatures, SequenceModule sequenceMixer, ChannelMixer channelMixer,
        double dropRate = 0.1, bool prenorm = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(StandardBlock), Check.Dim(inFeatures))
    {
        ArgumentNullException.ThrowIfNull(sequenceMixer);
        ArgumentNullException.ThrowIfNull(channelMixer);
        if (sequenceMixer.InFeatures != inFeatures)
            throw new ArgumentException($"The sequence mixer takes {sequenceMixer.InFeatures} features; the block has {inFeatures}.", nameof(sequenceMixer));
        if (channelMixer.InFeatures != inFeatures || channelMixer.OutFeatures != inFeatures)
            throw new ArgumentException($"The channel mixer must map {inFeatures} -> {inFeatures} features; it maps {channelMixer.InFeatures} -> {channelMixer.OutFeatures}.", nameof(channelMixer));
        Check.DropRate(dropRate);
        Check.Defined(norm);
        Check.Defined(activation);
        Prenorm = prenorm;
        Activation = activation;
        Norm = norm;
        this.norm = Norms.Create(norm, inFeatures);
        sequence_mixer = sequenceMixer;
        channel_mixer = channelMixer;
        drop = new FastDropout(dropRate);
        RegisterComponents();
    }

    /// <summary>Whether the norm comes before the mixers.</summary>
    public bool Prenorm { get; }

    /// <summary>The normalization kind.</summary>
    public NormKind Norm { get; }

    /// <summary>The activation after the sequence mixer.</summary>
    public Activation Activation { get; }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="BlockState"/> holding the sequence mixer's state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var valid = lengths is null ? null : SequenceLengths.Mask(lengths, x.shape[1]);
        var h = Prenorm ? ApplyNorm(x, valid) : x;
        var (mixed, mixerState) = RunChild(sequence_mixer, h, ((BlockState?)state)?.Mixer, returnState, lengths);
        return (Finish(x, mixed, valid), mixerState is null ? null : new BlockState(mixerState));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var h = Prenorm ? ApplyNorm(x, null) : x;
        var (mixed, mixerState) = RunChildPacked(sequence_mixer, h, cuSeqlens, ((BlockState?)state)?.Mixer, returnState);
        return (Finish(x, mixed, null), mixerState is null ? null : new BlockState(mixerState));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(sequence_mixer, StreamingState.Expect<BlockState>(state, nameof(StandardBlock)).Mixer);

    private Tensor Finish(Tensor skip, Tensor mixed, Tensor? valid)
    {
        var h = drop.forward(Activation.Apply(mixed));
        h = drop.forward(channel_mixer.forward(h));
        var y = skip + h;
        return Prenorm ? y : ApplyNorm(y, valid);
    }

    private Tensor ApplyNorm(Tensor x, Tensor? valid) => Norm.Apply(norm, x, valid);
}
