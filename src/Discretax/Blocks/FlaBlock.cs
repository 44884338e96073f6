using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>
/// The block of flash-linear-attention's language models (<c>DeltaNetBlock</c>, <c>GatedDeltaNetBlock</c>, ... in
/// <c>fla/models/*/modeling_*.py</c>), with fla's names:
/// <code>
/// h = x + attn(attn_norm(x))       attn_norm: RMSNorm over H with eps normEps; attn: the sequence mixer
/// y = h + mlp(mlp_norm(h))         mlp_norm: RMSNorm over H; mlp: a channel mixer (fla's GatedMLP)
/// </code>
/// No dropout, no activation between the parts. <c>[B, L, H] -> [B, L, H]</c>; streams the mixer's state in a
/// <see cref="BlockState"/>. (fla's fused residual norm, <c>mlp_norm(h, residual, prenorm=True)</c>, is this sum and
/// norm in one kernel.)
/// </summary>
public sealed class FlaBlock : SequenceModule
{
    /// <summary>The RMSNorm before the mixer (gain <c>attn_norm.weight [H]</c>).</summary>
    public RMSNorm attn_norm;

    /// <summary>The sequence mixer (fla's <c>attn</c>).</summary>
    public SequenceModule attn;

    /// <summary>The RMSNorm before the feed-forward (gain <c>mlp_norm.weight [H]</c>).</summary>
    public RMSNorm mlp_norm;

    /// <summary>The feed-forward (fla's <c>mlp</c>).</summary>
    public ChannelMixer mlp;

    /// <summary>Creates the block.</summary>
    /// <param name="hiddenSize">The feature size H.</param>
    /// <param name="attn">The sequence mixer <c>H -> H</c>.</param>
    /// <param name="mlp">The channel mixer <c>H -> H</c>.</param>
    /// <param name="normEps">The epsilon of both norms (fla's <c>norm_eps</c>, 1e-6 by default in fla's configs).</param>
    public FlaBlock(long hiddenSize, SequenceModule attn, ChannelMixer mlp, double normEps = 1e-6)
        : base(nameof(FlaBlock), Check.Dim(hiddenSize))
    {
        ArgumentNullException.ThrowIfNull(attn);
        ArgumentNullException.ThrowIfNull(mlp);
        if (attn.InFeatures != hiddenSize)
            throw new ArgumentException($"The sequence mixer takes {attn.InFeatures} features; the block has {hiddenSize}.", nameof(attn));
        if (mlp.InFeatures != hiddenSize || mlp.OutFeatures != hiddenSize)
            throw new ArgumentException($"The channel mixer must map {hiddenSize} -> {hiddenSize} features; it maps {mlp.InFeatures} -> {mlp.OutFeatures}.", nameof(mlp));
        Check.PositiveFinite(normEps);
        attn_norm = new RMSNorm(hiddenSize, normEps);
        this.attn = attn;
        mlp_norm = new RMSNorm(hiddenSize, normEps);
        this.mlp = mlp;
        RegisterComponents();
    }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="BlockState"/> holding the mixer's state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var (a, s) = RunChild(attn, attn_norm.forward(x), ((BlockState?)state)?.Mixer, returnState, lengths);
        return (FeedForward(x + a), s is null ? null : new BlockState(s));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (a, s) = RunChildPacked(attn, attn_norm.forward(x), cuSeqlens, ((BlockState?)state)?.Mixer, returnState);
        return (FeedForward(x + a), s is null ? null : new BlockState(s));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(attn, StreamingState.Expect<BlockState>(state, nameof(FlaBlock)).Mixer);

    private Tensor FeedForward(Tensor h) => h + mlp.forward(mlp_norm.forward(h));
}
