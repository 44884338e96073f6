using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class MLSTMSequenceMixerContract() : SequenceModuleContract(8, h => new MLSTMSequenceMixer(h, chunkSize: 4),
    (h, c) => new MLSTMSequenceMixer(h, chunkSize: c));

public sealed class MLSTMSequenceMixerOptionsContract() : SequenceModuleContract(8, h => new MLSTMSequenceMixer(h, numHeads: 2,
    conv1dKernelSize: 3, bias: true, qkDimFactor: 0.5, vDimFactor: 2.0, normType: MLSTMNormType.RMSNorm,
    gateInput: MLSTMGateInput.XMlstmConvAct, gateSoftCap: 15.0, initDistribution: MLSTMInitDistribution.TruncatedNormal,
    outputInitFn: MLSTMOutputInit.Small, chunkSize: 3));

public sealed class MLSTMV1SequenceMixerContract() : SequenceModuleContract(8, h => new MLSTMV1SequenceMixer(h, chunkSize: 4),
    (h, c) => new MLSTMV1SequenceMixer(h, chunkSize: c));

public sealed class MLSTMV1SequenceMixerOptionsContract() : SequenceModuleContract(8, h => new MLSTMV1SequenceMixer(h, numHeads: 2,
    bias: true, qkDimFactor: 0.5, vDimFactor: 1.5, normType: MLSTMNormType.RMSNorm, gateSoftCap: 15.0,
    initDistribution: MLSTMInitDistribution.Uniform, outputInitFn: MLSTMOutputInit.Small, chunkSize: 3));

public sealed class MLSTMBlockWithGLUContract() : SequenceModuleContract(8, h => new MLSTMBlock(h, new MLSTMSequenceMixer(h, chunkSize: 4), new GLU(h)));

public sealed class MLSTMV1BlockContract() : SequenceModuleContract(8, h => new MLSTMBlock(h, new MLSTMV1SequenceMixer(h, chunkSize: 4)));

public sealed class MLSTMModelContract() : SequenceModuleContract(8, h => new MLSTM(h, numBlocks: 2, chunkSize: 4),
    (h, c) => new MLSTM(h, numBlocks: 2, chunkSize: c));

public sealed class MLSTMV1ModelContract() : SequenceModuleContract(8, h => new MLSTM(h, numBlocks: 2, chunkSize: 4, layerType: MLSTMLayerType.MLSTMV1));

public sealed class MLSTMPostnormGluModelContract() : SequenceModuleContract(8, h => new MLSTM(h, numBlocks: 2, chunkSize: 5,
    prenorm: false, useGlu: true, norm: NormKind.Rms));

/// <summary>NX-AI xlstm's PyTorch mLSTMLayer configuration: a fresh start from m_0 = -inf, outnorm eps 1e-5.</summary>
public sealed class TorchMLSTMLayerContract() : SequenceModuleContract(8, h => Discretax.Interop.XLSTMCheckpoint.CreateTorchMLSTMLayer(h, chunkSize: 4),
    (h, c) => Discretax.Interop.XLSTMCheckpoint.CreateTorchMLSTMLayer(h, chunkSize: c));

/// <summary>xlstm-jax's block: norm eps 1e-6, post norms, gated GELU feed-forward.</summary>
public sealed class MLSTMBlockXlstmJaxContract() : SequenceModuleContract(8, h => new MLSTMBlock(h, new MLSTMSequenceMixer(h, chunkSize: 4),
    new GatedFeedForward(h, GatedFeedForward.UpProjDim(h, 1.3)), dropRate: 0.1, norm: NormKind.Rms, normEps: 1e-6, addPostNorm: true));

public sealed class MLSTMXlstmJaxModelContract() : SequenceModuleContract(8, h => new MLSTM(h, numBlocks: 2, chunkSize: 4, normEps: 1e-6,
    addPostNorm: true, gatedFeedForward: true, outputInitFn: MLSTMOutputInit.Wang2),
    (h, c) => new MLSTM(h, numBlocks: 2, chunkSize: c, normEps: 1e-6, addPostNorm: true, gatedFeedForward: true));

public sealed class XLSTMLargeSequenceMixerContract() : SequenceModuleContract(8, h => new XLSTMLargeSequenceMixer(h, numHeads: 2, chunkSize: 4),
    (h, c) => new XLSTMLargeSequenceMixer(h, numHeads: 2, chunkSize: c));

public sealed class XLSTMLargeFusedSequenceMixerContract() : SequenceModuleContract(8, h => new XLSTMLargeSequenceMixer(h, numHeads: 2,
    qkDimFactor: 1.0, vDimFactor: 0.5, gateSoftCap: null, weightMode: XLSTMWeightMode.Fused, chunkSize: 3));

public sealed class XLSTMLargeBlockContract() : SequenceModuleContract(8, h => new XLSTMLargeBlock(new XLSTMLargeSequenceMixer(h, numHeads: 2, chunkSize: 4),
    new GatedFeedForward(h, 16, Activation.SiLU)));

public sealed class XLSTMLargeModelContract() : SequenceModuleContract(8, h => new XLSTMLarge(XLSTMLargeTestConfig.Tiny(h, 4)),
    (h, c) => new XLSTMLarge(XLSTMLargeTestConfig.Tiny(h, c)));

public sealed class XLSTMLargeFusedModelContract() : SequenceModuleContract(8, h => new XLSTMLarge(XLSTMLargeTestConfig.Tiny(h, 5) with
    { WeightMode = XLSTMWeightMode.Fused, AddOutNorm = false, GateSoftCap = null }));

internal static class XLSTMLargeTestConfig
{
    /// <summary>A tiny xLSTM-7B configuration: 2 heads, 2 blocks, vocabulary 16, feed-forward rounded to 8.</summary>
    public static XLSTMLargeConfig Tiny(long h, int chunkSize) => new()
    {
        EmbeddingDim = h, NumHeads = 2, NumBlocks = 2, VocabSize = 16, ChunkSize = chunkSize, FfnRoundUpToMultipleOf = 8,
    };
}
