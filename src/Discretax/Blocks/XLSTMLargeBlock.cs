using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>
/// The block of the xLSTM-7B architecture: NX-AI xlstm's <c>xlstm_large</c> <c>mLSTMBlock</c>
/// (<c>xlstm/xlstm_large/model.py</c>), with its parameter names:
/// <code>
/// x = x + mlstm_layer(norm_mlstm(x))          norm_mlstm, norm_ffn: RMS norms with weight, eps normEps
/// x = x + ffn(norm_ffn(x))                    ffn: SwiGLU, proj_down(silu(proj_up_gate(x)) * proj_up(x))
/// </code>
/// Shapes: <c>[B, L, E] -> [B, L, E]</c> (or unbatched <c>[L, E]</c>). Streaming carries the layer's
/// <see cref="MLSTMState"/> in a <see cref="BlockState"/>.
/// </summary>
public sealed class XLSTMLargeBlock : SequenceModule
{
    /// <summary>The RMS norm before the mLSTM layer.</summary>
    public RMSNorm norm_mlstm;

    /// <summary>The mLSTM layer.</summary>
    public XLSTMLargeSequenceMixer mlstm_layer;

    /// <summary>The RMS norm before the feed-forward.</summary>
    public RMSNorm norm_ffn;

    /// <summary>The feed-forward (<see cref="GatedFeedForward"/> with SiLU; fused as <c>proj_up_gate_z</c> in
    /// <see cref="XLSTMWeightMode.Fused"/>).</summary>
    public GatedFeedForward ffn;

    /// <summary>Creates the block.</summary>
    /// <param name="mlstmLayer">The mLSTM layer; its <see cref="SequenceModule.InFeatures"/> is the block's size E.</param>
    /// <param name="ffn">The feed-forward <c>E -> E</c>.</param>
    /// <param name="normEps">The eps of the two RMS norms (xlstm_large's <c>norm_eps</c>, 1e-6).</param>
    public XLSTMLargeBlock(XLSTMLargeSequenceMixer mlstmLayer, GatedFeedForward ffn, double normEps = 1e-6)
        : base(nameof(XLSTMLargeBlock), (mlstmLayer ?? throw new ArgumentNullException(nameof(mlstmLayer))).InFeatures)
    {
        ArgumentNullException.ThrowIfNull(ffn);
        if (ffn.InFeatures != InFeatures || ffn.OutFeatures != InFeatures)
            throw new ArgumentException($"The feed-forward must map {InFeatures} -> {InFeatures} features; it maps {ffn.InFeatures} -> {ffn.OutFeatures}.", nameof(ffn));
        Check.PositiveFinite(normEps);
        norm_mlstm = new RMSNorm(InFeatures, normEps);
        mlstm_layer = mlstmLayer;
        norm_ffn = new RMSNorm(InFeatures, normEps);
        this.ffn = ffn;
        RegisterComponents();
    }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="BlockState"/> holding the layer's <see cref="MLSTMState"/>.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var (mixed, mixerState) = RunChild(mlstm_layer, norm_mlstm.forward(x), ((BlockState?)state)?.Mixer, returnState, lengths);
        return (FeedForward(x + mixed), mixerState is null ? null : new BlockState(mixerState));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (mixed, mixerState) = RunChildPacked(mlstm_layer, norm_mlstm.forward(x), cuSeqlens, ((BlockState?)state)?.Mixer, returnState);
        return (FeedForward(x + mixed), mixerState is null ? null : new BlockState(mixerState));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(mlstm_layer, StreamingState.Expect<BlockState>(state, nameof(XLSTMLargeBlock)).Mixer);

    private Tensor FeedForward(Tensor h) => h + ffn.forward(norm_ffn.forward(h));
}
