using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// The xLSTM-7B architecture's block stack: NX-AI xlstm's <c>xlstm_large</c> <c>xLSTMLargeBlockStack</c>
/// (<c>xlstm/xlstm_large/model.py</c>, the <c>backbone</c> of <c>xLSTMLarge</c>; Beck et al. 2025, "xLSTM 7B: A
/// Recurrent LLM for Fast and Efficient Inference", https://arxiv.org/abs/2503.13427), <c>[B, L, E] -> [B, L, E]</c>:
/// <code>
/// for each block: x = x + mlstm_layer(norm_mlstm(x));  x = x + ffn(norm_ffn(x))     (XLSTMLargeBlock)
/// x = out_norm(x)                                                                    (RMS norm, with AddOutNorm)
/// </code>
/// <see cref="CreateCausalLM"/> puts it into a <see cref="CausalLM"/> (embedding, no extra norm, <c>lm_head</c>, the
/// logit soft cap): the whole <c>xLSTMLarge</c>, with logits, losses and streaming generation. The names inside are
/// the reference's (<c>blocks.{i}.norm_mlstm</c>, <c>blocks.{i}.mlstm_layer.q</c>, ..., <c>out_norm</c>); the
/// <see cref="CausalLM"/> around it adds <c>embeddings.</c>, <c>model.</c> and <c>lm_head.</c>, which
/// <see cref="Interop.XLSTMCheckpoint.LargeName"/> maps to the reference's <c>embedding.</c>, <c>backbone.</c>,
/// <c>lm_head.</c> (or transformers' <c>backbone.embeddings.</c>). Streaming carries one <see cref="MLSTMState"/> per block.
/// </summary>
public sealed class XLSTMLarge : SequenceModel
{
    /// <summary>The RMS norm after the blocks (<see cref="XLSTMLargeConfig.AddOutNorm"/>), or null.</summary>
    public readonly RMSNorm? out_norm;

    /// <summary>Creates the block stack of <paramref name="config"/>.</summary>
    /// <param name="config">The configuration (<see cref="XLSTMLargeConfig.UseBias"/> must be false).</param>
    public XLSTMLarge(XLSTMLargeConfig config)
        : base(nameof(XLSTMLarge), Check.Dim((config ?? throw new ArgumentNullException(nameof(config))).EmbeddingDim),
            Build(config))
    {
        Config = config;
        if (config.AddOutNorm)
        {
            out_norm = new RMSNorm(config.EmbeddingDim, config.NormEps);
            register_module("out_norm", out_norm);
        }
    }

    /// <summary>The configuration.</summary>
    public XLSTMLargeConfig Config { get; }

    /// <summary>
    /// The whole xLSTM-7B model (<c>xLSTMLarge</c>) as a <see cref="CausalLM"/>: embedding <c>[V, E]</c>, this block
    /// stack, no further norm, <c>lm_head</c> (or the embedding when <see cref="XLSTMLargeConfig.TieWordEmbeddings"/>)
    /// and the logit soft cap <see cref="XLSTMLargeConfig.OutputLogitSoftCap"/>. The embedding and <c>lm_head</c> are
    /// drawn from <c>N(0, 2 / (5 E))</c> (transformers' small init).
    /// </summary>
    /// <param name="config">The configuration.</param>
    public static CausalLM CreateCausalLM(XLSTMLargeConfig config)
    {
        var lm = new CausalLM(config.VocabSize, new XLSTMLarge(config), norm: null, tieWeights: config.TieWordEmbeddings,
            logitSoftCap: config.OutputLogitSoftCap);
        double std = MLSTMCell.SmallStd(config.EmbeddingDim);
        using (no_grad())
        {
            lm.embeddings.weight!.normal_(0.0, std);
            lm.lm_head?.weight!.normal_(0.0, std);
        }
        return lm;
    }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="SequenceModelState"/>, one <see cref="BlockState"/> per block.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var (h, s) = base.Run(x, state, returnState, lengths);
        return (out_norm is null ? h : out_norm.forward(h), s);
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (h, s) = base.RunPacked(x, cuSeqlens, state, returnState)!.Value;
        return (out_norm is null ? h : out_norm.forward(h), s);
    }

    private static IEnumerable<SequenceModule> Build(XLSTMLargeConfig config)
    {
        if (config.UseBias)
            throw new ArgumentException("use_bias = true is not supported (the norms of this library have no bias); the released xLSTM-7B has use_bias = false.", nameof(config));
        Check.AtLeast(config.NumBlocks, 1, "config.NumBlocks");
        Check.AtLeast(config.VocabSize, 1, "config.VocabSize");
        Check.AtLeast(config.FfnRoundUpToMultipleOf, 1, "config.FfnRoundUpToMultipleOf");
        Check.PositiveFinite(config.FfnProjFactor, "config.FfnProjFactor");
        if (config.OutputLogitSoftCap is double cap) Check.PositiveFinite(cap, "config.OutputLogitSoftCap");
        long e = config.EmbeddingDim, ffnDim = config.FfnDim;
        var blocks = new List<SequenceModule>(config.NumBlocks);
        for (int i = 0; i < config.NumBlocks; i++)
        {
            var layer = new XLSTMLargeSequenceMixer(e, config.NumHeads, config.QKDimFactor, config.VDimFactor,
                config.GateSoftCap, config.NormEps, config.WeightMode, config.ChunkSize, config.Eps, config.NumBlocks);
            var ffn = new GatedFeedForward(e, ffnDim, Activation.SiLU, fused: config.WeightMode == XLSTMWeightMode.Fused,
                numBlocks: config.NumBlocks);
            // transformers' init of the feed-forward's proj_down: Wang's with the middle size as dim.
            using (no_grad()) ffn.proj_down.weight!.normal_(0.0, 2.0 / config.NumBlocks / Math.Sqrt(ffnDim));
            blocks.Add(new XLSTMLargeBlock(layer, ffn, config.NormEps));
        }
        return blocks;
    }
}
