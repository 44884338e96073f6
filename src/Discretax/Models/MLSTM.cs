using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// The mLSTM model: a stack of xLSTM blocks (<see cref="MLSTMBlock"/>) around an mLSTM layer
/// (<see cref="MLSTMSequenceMixer"/>, or <see cref="MLSTMV1SequenceMixer"/> with <see cref="MLSTMLayerType.MLSTMV1"/>),
/// as xlstm-jax's / NX-AI xlstm's <c>xLSTMBlockStack</c> of mLSTM blocks
/// (Beck et al. 2024, https://arxiv.org/abs/2405.04517):
/// <code>
/// for each block: x = x + mLSTMLayer(LayerNorm(x))         (prenorm; optional feed-forward branch x = x + dropout(ffn(LayerNorm(x))))
/// x = post_blocks_norm(x)                                  (prenorm with addPostBlocksNorm, as xLSTM)
/// </code>
/// The feed-forward is a <see cref="GLU"/> (<c>useGlu</c>) or xlstm-jax's gated GELU feed-forward
/// (<see cref="GatedFeedForward"/>, <c>gatedFeedForward</c>, middle size <c>64 ceil(ffnProjFactor H / 64)</c>).
/// xlstm-jax's blocks: <c>normEps: 1e-6</c> (its norm layers and its final norm), optionally <c>addPostNorm</c> and
/// <c>gatedFeedForward</c>; NX-AI xlstm's PyTorch <c>xLSTMBlockStack</c>: the defaults (eps 1e-5). Dropout is 0 by
/// default, as in both references (<c>dropout = 0.0</c>).
/// Shapes: <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c> (or unbatched). The layer has its own up- and
/// down-projections, so by default there is no channel mixer. Streaming carries one state per block.
/// <c>state_dict</c>: <c>blocks.{i}.xlstm_norm</c>, <c>blocks.{i}.xlstm.*</c> (the layer's names), <c>blocks.{i}.ffn_norm</c>,
/// <c>blocks.{i}.ffn.*</c> and <c>post_blocks_norm.weight</c>.
/// </summary>
public sealed class MLSTM : SequenceModel
{
    /// <summary>The layer norm after the last block (<c>post_blocks_norm</c>, xLSTM's name), or null without it.</summary>
    public nn.Module<Tensor, Tensor>? post_blocks_norm => final_norm;

    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H of every block.</param>
    /// <param name="numBlocks">The number of blocks (at least 1).</param>
    /// <param name="numHeads">The mLSTM heads per layer.</param>
    /// <param name="projFactor">The layer's up-projection factor (<see cref="MLSTMLayerType.MLSTM"/> only).</param>
    /// <param name="chunkSize">The kernel's chunk length.</param>
    /// <param name="dropRate">Dropout on each layer's output (the layer's <c>dropout</c>) and on the channel mixer's output
    /// (default 0, as the references' <c>dropout</c>).</param>
    /// <param name="prenorm">Pre-norm residual blocks (true, as xLSTM) or post-norm.</param>
    /// <param name="useGlu">Add a <see cref="GLU"/> channel mixer branch to every block.</param>
    /// <param name="norm">The block norm (default <see cref="NormKind.XLSTMLayer"/>: layer norm with a gain only, as xLSTM).</param>
    /// <param name="addPostBlocksNorm">With prenorm, a layer norm (gain only) after the last block, as xLSTM's
    /// <c>add_post_blocks_norm</c> (default true); ignored with post-norm.</param>
    /// <param name="conv1dKernelSize">The layer's convolution kernel size (<see cref="MLSTMLayerType.MLSTM"/> only).</param>
    /// <param name="qkvProjBlocksize">The layer's head-wise projection block size (<see cref="MLSTMLayerType.MLSTM"/> only).</param>
    /// <param name="layerType">Which layer every block has: <see cref="MLSTMSequenceMixer"/> (<see cref="MLSTMLayerType.MLSTM"/>)
    /// or <see cref="MLSTMV1SequenceMixer"/> (<see cref="MLSTMLayerType.MLSTMV1"/>, which has no up-projection, convolution
    /// or gate-input option: <paramref name="projFactor"/>, <paramref name="conv1dKernelSize"/>,
    /// <paramref name="qkvProjBlocksize"/> and <paramref name="gateInput"/> are then unused).</param>
    /// <param name="normType">The layer's multi-head norm.</param>
    /// <param name="gateInput">The layer's gate input (<see cref="MLSTMLayerType.MLSTM"/> only).</param>
    /// <param name="gateSoftCap">The layer's gate soft cap (null for none).</param>
    /// <param name="normEps">The eps of the block norms and of <c>post_blocks_norm</c>, or null for the kind's default
    /// (1e-5; xlstm-jax: 1e-6).</param>
    /// <param name="addPostNorm">Normalize each branch's output before the residual sum (xlstm-jax's <c>add_post_norm</c>).</param>
    /// <param name="gatedFeedForward">Add xlstm-jax's gated GELU feed-forward branch (<see cref="GatedFeedForward"/>,
    /// tanh GELU) to every block; not together with <paramref name="useGlu"/>.</param>
    /// <param name="ffnProjFactor">The gated feed-forward's up-projection factor (xlstm-jax's default 1.3; the middle
    /// size is rounded up to a multiple of 64).</param>
    /// <param name="outputInitFn">The init of the layers' <c>proj_down</c> and of the gated feed-forward's.</param>
    public MLSTM(long hiddenDim, int numBlocks = 4, int numHeads = 4, double projFactor = 2.0, int chunkSize = 64,
        double dropRate = 0.0, bool prenorm = true, bool useGlu = false, NormKind norm = NormKind.XLSTMLayer,
        bool addPostBlocksNorm = true, int conv1dKernelSize = 4, int qkvProjBlocksize = 4,
        MLSTMLayerType layerType = MLSTMLayerType.MLSTM, MLSTMNormType normType = MLSTMNormType.LayerNorm,
        MLSTMGateInput gateInput = MLSTMGateInput.Qkv, double? gateSoftCap = null, double? normEps = null,
        bool addPostNorm = false, bool gatedFeedForward = false, double ffnProjFactor = 1.3,
        MLSTMOutputInit outputInitFn = MLSTMOutputInit.Wang)
        : base(nameof(MLSTM), Check.Dim(hiddenDim), Build(hiddenDim, numBlocks, numHeads, projFactor, chunkSize, dropRate, prenorm,
            useGlu, norm, conv1dKernelSize, qkvProjBlocksize, layerType, normType, gateInput, gateSoftCap, normEps, addPostNorm,
            gatedFeedForward, ffnProjFactor, outputInitFn),
            prenorm && addPostBlocksNorm ? NormKind.XLSTMLayer : null, finalNormName: "post_blocks_norm", finalNormEps: normEps)
    {
    }

    private static IEnumerable<SequenceModule> Build(long hiddenDim, int numBlocks, int numHeads, double projFactor,
        int chunkSize, double dropRate, bool prenorm, bool useGlu, NormKind norm, int conv1dKernelSize, int qkvProjBlocksize,
        MLSTMLayerType layerType, MLSTMNormType normType, MLSTMGateInput gateInput, double? gateSoftCap, double? normEps,
        bool addPostNorm, bool gatedFeedForward, double ffnProjFactor, MLSTMOutputInit outputInitFn)
    {
        Check.AtLeast(hiddenDim, 1);
        Check.AtLeast(numBlocks, 1);
        Check.DropRate(dropRate);
        Check.Defined(layerType);
        Check.Defined(norm);
        Check.Defined(outputInitFn);
        if (normEps is double e) Check.PositiveFinite(e, nameof(normEps));
        Check.PositiveFinite(ffnProjFactor);
        if (useGlu && gatedFeedForward)
            throw new ArgumentException("Expected at most one feed-forward branch; got useGlu and gatedFeedForward both true.", nameof(gatedFeedForward));
        var blocks = new List<SequenceModule>(numBlocks);
        for (int i = 0; i < numBlocks; i++)
        {
            SequenceMixer layer = layerType == MLSTMLayerType.MLSTM
                ? new MLSTMSequenceMixer(hiddenDim, numHeads: numHeads, projFactor: projFactor,
                    conv1dKernelSize: conv1dKernelSize, qkvProjBlocksize: qkvProjBlocksize, dropout: dropRate,
                    normType: normType, gateInput: gateInput, gateSoftCap: gateSoftCap, outputInitFn: outputInitFn,
                    chunkSize: chunkSize, numBlocks: numBlocks)
                : new MLSTMV1SequenceMixer(hiddenDim, numHeads: numHeads, dropout: dropRate, normType: normType,
                    gateSoftCap: gateSoftCap, outputInitFn: outputInitFn, chunkSize: chunkSize, numBlocks: numBlocks);
            ChannelMixer? ffn = useGlu ? new GLU(hiddenDim)
                : gatedFeedForward ? new GatedFeedForward(hiddenDim, GatedFeedForward.UpProjDim(hiddenDim, ffnProjFactor),
                    outputInitFn: outputInitFn, numBlocks: numBlocks)
                : null;
            blocks.Add(new MLSTMBlock(hiddenDim, layer, ffn, dropRate, prenorm, norm, normEps, addPostNorm));
        }
        return blocks;
    }
}
