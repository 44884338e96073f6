using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>
/// The xLSTM block (xlstm-jax / NX-AI xlstm <c>xLSTMBlock</c>): a sequence mixer (usually a
/// <see cref="SequenceMixers.MLSTMSequenceMixer"/> or <see cref="SequenceMixers.MLSTMV1SequenceMixer"/>, which have their
/// own up- and down-projections) in a residual
/// branch, and optionally a channel mixer in a second residual branch.
/// <code>
/// prenorm:   x = x + xlstm(xlstm_norm(x));           if ffn: x = x + dropout(ffn(ffn_norm(x)))
/// postnorm:  x = xlstm_norm(x + xlstm(x));           if ffn: x = ffn_norm(x + dropout(ffn(x)))
/// </code>
/// With <c>addPostNorm</c> (xlstm-jax's <c>add_post_norm</c>, after Gemma-2) each branch's output is normalized before
/// the residual sum: <c>xlstm(.)</c> becomes <c>xlstm_post_norm(xlstm(.))</c> and <c>dropout(ffn(.))</c> becomes
/// <c>ffn_post_norm(dropout(ffn(.)))</c>.
/// Unlike <see cref="StandardBlock"/> there is no activation and no dropout around the sequence mixer (the mLSTM
/// layer applies its own output dropout). The default norm is NX-AI xlstm's: layer norm with a gain and no bias, eps
/// 1e-5 (xlstm-jax's blocks: <c>normEps = 1e-6</c>).
/// Shapes: <c>[B, L, H] -> [B, L, H]</c> (or unbatched <c>[L, H]</c>). Streaming carries the mixer's state in a <see cref="BlockState"/>.
/// </summary>
public sealed class MLSTMBlock : SequenceModule
{
    /// <summary>The norm of the sequence-mixer branch.</summary>
    public nn.Module<Tensor, Tensor> xlstm_norm;

    /// <summary>The sequence mixer (the xLSTM layer).</summary>
    public SequenceModule xlstm;

    /// <summary>The norm of the channel-mixer branch (present with a channel mixer).</summary>
    public nn.Module<Tensor, Tensor>? ffn_norm;

    /// <summary>The channel mixer, or null for none (the xLSTM default).</summary>
    public ChannelMixer? ffn;

    /// <summary>With <c>addPostNorm</c>: the norm of the sequence mixer's output, else null.</summary>
    public nn.Module<Tensor, Tensor>? xlstm_post_norm;

    /// <summary>With <c>addPostNorm</c> and a channel mixer: the norm of the channel mixer's output, else null.</summary>
    public nn.Module<Tensor, Tensor>? ffn_post_norm;

    /// <summary>The dropout on the channel mixer's output.</summary>
    public FastDropout drop;

    /// <summary>Creates the block.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    /// <param name="xlstm">The sequence mixer <c>[B, L, H] -> [B, L, H]</c>.</param>
    /// <param name="ffn">An optional channel mixer <c>H -> H</c> (e.g. <see cref="GLU"/>).</param>
    /// <param name="dropRate">Dropout probability on the channel mixer's output, in [0, 1).</param>
    /// <param name="prenorm">Normalize the input of each branch (true) or the sum after it (false).</param>
    /// <param name="norm">The norm kind: <see cref="NormKind.XLSTMLayer"/> (default: layer norm with a gain and no bias,
    /// as xLSTM), <see cref="NormKind.Layer"/> (gain and bias), <see cref="NormKind.Rms"/> or <see cref="NormKind.Batch"/>.</param>
    /// <param name="normEps">The eps of every norm of the block, or null for the kind's default
    /// (<see cref="Norms.DefaultEps"/>; xlstm-jax's blocks use 1e-6).</param>
    /// <param name="addPostNorm">Normalize each branch's output before the residual sum (xlstm-jax's <c>add_post_norm</c>).</param>
    public MLSTMBlock(long inFeatures, SequenceModule xlstm, ChannelMixer? ffn = null, double dropRate = 0.0,
        bool prenorm = true, NormKind norm = NormKind.XLSTMLayer, double? normEps = null, bool addPostNorm = false)
        : base(nameof(MLSTMBlock), Check.Dim(inFeatures))
    {
        ArgumentNullException.ThrowIfNull(xlstm);
        if (xlstm.InFeatures != inFeatures)
            throw new ArgumentException($"The sequence mixer takes {xlstm.InFeatures} features; the block has {inFeatures}.", nameof(xlstm));
        if (ffn is not null && (ffn.InFeatures != inFeatures || ffn.OutFeatures != inFeatures))
            throw new ArgumentException($"The channel mixer must map {inFeatures} -> {inFeatures} features; it maps {ffn.InFeatures} -> {ffn.OutFeatures}.", nameof(ffn));
        Check.DropRate(dropRate);
        Check.Defined(norm);
        if (normEps is double e) Check.PositiveFinite(e, nameof(normEps));
        Prenorm = prenorm;
        Norm = norm;
        NormEps = normEps ?? Norms.DefaultEps(norm);
        AddPostNorm = addPostNorm;
        xlstm_norm = Norms.Create(norm, inFeatures, NormEps);
        this.xlstm = xlstm;
        if (addPostNorm) xlstm_post_norm = Norms.Create(norm, inFeatures, NormEps);
        if (ffn is not null)
        {
            ffn_norm = Norms.Create(norm, inFeatures, NormEps);
            this.ffn = ffn;
            if (addPostNorm) ffn_post_norm = Norms.Create(norm, inFeatures, NormEps);
        }
        drop = new FastDropout(dropRate);
        RegisterComponents();
    }

    /// <summary>Whether each branch normalizes its input (else the sum is normalized).</summary>
    public bool Prenorm { get; }

    /// <summary>The norm kind.</summary>
    public NormKind Norm { get; }

    /// <summary>The eps of the block's norms.</summary>
    public double NormEps { get; }

    /// <summary>Whether each branch's output is normalized before the residual sum.</summary>
    public bool AddPostNorm { get; }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="BlockState"/> holding the sequence mixer's state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var valid = lengths is null ? null : SequenceLengths.Mask(lengths, x.shape[1]);
        var (mixed, mixerState) = RunChild(xlstm, Prenorm ? ApplyNorm(xlstm_norm, x, valid) : x, ((BlockState?)state)?.Mixer, returnState, lengths);
        if (xlstm_post_norm is not null) mixed = ApplyNorm(xlstm_post_norm, mixed, valid);
        var h = Prenorm ? x + mixed : ApplyNorm(xlstm_norm, x + mixed, valid);
        return (FeedForward(h, valid), mixerState is null ? null : new BlockState(mixerState));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (mixed, mixerState) = RunChildPacked(xlstm, Prenorm ? ApplyNorm(xlstm_norm, x, null) : x, cuSeqlens, ((BlockState?)state)?.Mixer, returnState);
        if (xlstm_post_norm is not null) mixed = ApplyNorm(xlstm_post_norm, mixed, null);
        var h = Prenorm ? x + mixed : ApplyNorm(xlstm_norm, x + mixed, null);
        return (FeedForward(h, null), mixerState is null ? null : new BlockState(mixerState));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(xlstm, StreamingState.Expect<BlockState>(state, nameof(MLSTMBlock)).Mixer);

    private Tensor FeedForward(Tensor h, Tensor? valid)
    {
        if (ffn is null) return h;
        var branch = drop.forward(ffn.forward(Prenorm ? ApplyNorm(ffn_norm!, h, valid) : h));
        if (ffn_post_norm is not null) branch = ApplyNorm(ffn_post_norm, branch, valid);
        return Prenorm ? h + branch : ApplyNorm(ffn_norm!, h + branch, valid);
    }

    private Tensor ApplyNorm(nn.Module<Tensor, Tensor> n, Tensor x, Tensor? valid) => Norm.Apply(n, x, valid);
}
