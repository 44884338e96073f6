using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>
/// The Transformer-style DeltaNet block of the PyTorch DeltaNet package, made causal:
/// <code>
/// x = x + attention(norm1(x))     attention: DeltaNet with q, k, v projections, each followed by a short
///                                 causal depthwise convolution and SiLU; L2-normalized q and k; sigmoid beta
/// x = x + ffn(norm2(x))           ffn: SwiGLU of width ffHiddenDim
/// </code>
/// with RMSNorm pre-norms. <c>[B, L, dModel] -> [B, L, dModel]</c>; streams the attention's state.
/// </summary>
public sealed class TransformerBlock : SequenceModule
{
    /// <summary>The pre-norm of the attention.</summary>
    public RMSNorm norm1;

    /// <summary>The DeltaNet attention.</summary>
    public DeltaNetSequenceMixer attention;

    /// <summary>The pre-norm of the feed-forward.</summary>
    public RMSNorm norm2;

    /// <summary>The SwiGLU feed-forward.</summary>
    public SwiGLU ffn;

    /// <summary>Creates the block.</summary>
    /// <param name="dModel">The feature size.</param>
    /// <param name="chunkSize">The chunk size of the delta-rule kernel.</param>
    /// <param name="ffHiddenDim">The SwiGLU intermediate width.</param>
    /// <param name="numHeads">Attention heads (<paramref name="dModel"/> must be divisible by it).</param>
    public TransformerBlock(long dModel, int chunkSize, long ffHiddenDim, int numHeads = 1)
        : base(nameof(TransformerBlock), Check.Dim(dModel))
    {
        Check.AtLeast(ffHiddenDim, 1);
        norm1 = new RMSNorm(dModel);
        attention = new DeltaNetSequenceMixer(dModel, numHeads, chunkSize: chunkSize, useShortConv: true);
        norm2 = new RMSNorm(dModel);
        ffn = new SwiGLU(dModel, intermediateDim: ffHiddenDim);
        RegisterComponents();
    }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="BlockState"/> holding the attention's <see cref="DeltaNetState"/>.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var (a, s) = RunChild(attention, norm1.forward(x), ((BlockState?)state)?.Mixer, returnState, lengths);
        var h = x + a;
        var y = h + ffn.forward(norm2.forward(h));
        return (y, s is null ? null : new BlockState(s));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (a, s) = RunChildPacked(attention, norm1.forward(x), cuSeqlens, ((BlockState?)state)?.Mixer, returnState);
        var h = x + a;
        return (h + ffn.forward(norm2.forward(h)), s is null ? null : new BlockState(s));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(attention, StreamingState.Expect<BlockState>(state, nameof(TransformerBlock)).Mixer);
}
