using Discretax.Blocks;
using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class DeltaNetSequenceMixerContract() : SequenceModuleContract(8, h => new DeltaNetSequenceMixer(h, numHeads: 2, chunkSize: 4),
    (h, c) => new DeltaNetSequenceMixer(h, numHeads: 2, chunkSize: c));

public sealed class DeltaNetSequenceMixerAllOptionsContract() : SequenceModuleContract(8, h => AllOptions(h, 3), AllOptions)
{
    private static DeltaNetSequenceMixer AllOptions(long h, int chunkSize) => new(h, numHeads: 2, chunkSize: chunkSize,
        useBias: true, betaPerHead: true, useShortConv: true, scaleQuery: true, useOutputNorm: true, useOutputGate: true, allowNegativeEigenvalues: true);
}

public sealed class DeltaNetModelContract() : SequenceModuleContract(8, h => new DeltaNet(h, numBlocks: 2, numHeads: 2, chunkSize: 5),
    (h, c) => new DeltaNet(h, numBlocks: 2, numHeads: 2, chunkSize: c));

public sealed class DeltaNetModelFlaOptionsContract() : SequenceModuleContract(8, h => new DeltaNet(h, numBlocks: 2, numHeads: 2, chunkSize: 5,
    useShortConv: true, useOutputNorm: true, useOutputGate: true));

public sealed class TransformerBlockContract() : SequenceModuleContract(8, h => new TransformerBlock(h, chunkSize: 4, ffHiddenDim: 16, numHeads: 2));

public sealed class TransformerDeltaNetContract() : SequenceModuleContract(8, h => new TransformerDeltaNet(h, chunkSize: 3, numLayers: 2),
    (h, c) => new TransformerDeltaNet(h, chunkSize: c, numLayers: 2));

public sealed class GatedDeltaNetSequenceMixerContract() : SequenceModuleContract(8,
    h => new GatedDeltaNetSequenceMixer(h, numHeads: 2, headDim: 4, chunkSize: 4),
    (h, c) => new GatedDeltaNetSequenceMixer(h, numHeads: 2, headDim: 4, chunkSize: c));

public sealed class GatedDeltaNetSequenceMixerOptionsContract() : SequenceModuleContract(8,
    h => new GatedDeltaNetSequenceMixer(h, numHeads: 1, headDim: 4, numVHeads: 2, expandV: 1.5, useGate: false, useShortConv: false,
        allowNegativeEigenvalues: true, chunkSize: 3));

public sealed class GatedDeltaNetModelContract() : SequenceModuleContract(8, h => new GatedDeltaNet(h, numBlocks: 2, chunkSize: 5),
    (h, c) => new GatedDeltaNet(h, numBlocks: 2, chunkSize: c));

public sealed class Mamba2SequenceMixerContract() : SequenceModuleContract(8,
    h => new Mamba2SequenceMixer(h, stateSize: 4, headDim: 4, chunkSize: 4),
    (h, c) => new Mamba2SequenceMixer(h, stateSize: 4, headDim: 4, chunkSize: c));

public sealed class Mamba2SequenceMixerGroupsContract() : SequenceModuleContract(8,
    h => new Mamba2SequenceMixer(h, stateSize: 3, headDim: 2, numGroups: 2, dHasHeadDim: true, dtLimit: (0.01, 0.2), chunkSize: 3));

public sealed class Mamba2ModelContract() : SequenceModuleContract(8, h => new Mamba2(h, numBlocks: 2, stateSize: 4, headDim: 4, chunkSize: 5),
    (h, c) => new Mamba2(h, numBlocks: 2, stateSize: 4, headDim: 4, chunkSize: c));
