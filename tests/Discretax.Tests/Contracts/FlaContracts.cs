using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class FlaDeltaNetSequenceMixerContract() : SequenceModuleContract(8,
    h => new FlaDeltaNetSequenceMixer(h, numHeads: 2, chunkSize: 4),
    (h, c) => new FlaDeltaNetSequenceMixer(h, numHeads: 2, chunkSize: c));

public sealed class FlaDeltaNetSequenceMixerOptionsContract() : SequenceModuleContract(8,
    h => new FlaDeltaNetSequenceMixer(h, numHeads: 2, expandK: 0.5, expandV: 1.5, useBeta: false, useGate: true, useShortConv: false,
        allowNegativeEigenvalues: true, qkActivation: FlaQKActivation.Identity, chunkSize: 3),
    (h, c) => new FlaDeltaNetSequenceMixer(h, numHeads: 2, expandK: 0.5, expandV: 1.5, useBeta: false, useGate: true, useShortConv: false,
        allowNegativeEigenvalues: true, qkActivation: FlaQKActivation.Identity, chunkSize: c));

public sealed class FlaDeltaNetSequenceMixerEluSumContract() : SequenceModuleContract(8,
    h => new FlaDeltaNetSequenceMixer(h, numHeads: 2, qkActivation: FlaQKActivation.Elu, qkNorm: FlaQKNorm.Sum, convBias: true, chunkSize: 5));

public sealed class FlaBlockContract() : SequenceModuleContract(8,
    h => new FlaBlock(h, new FlaDeltaNetSequenceMixer(h, numHeads: 2, chunkSize: 4), new GatedMLP(h, intermediateSize: 12)));

public sealed class FlaBlockGatedDeltaNetContract() : SequenceModuleContract(8,
    h => new FlaBlock(h, new GatedDeltaNetSequenceMixer(h, numHeads: 2, headDim: 4, numVHeads: 4, expandV: 1, chunkSize: 3),
        new GatedMLP(h, hiddenRatio: 2), normEps: 1e-5));

public sealed class Mamba2BlockContract() : SequenceModuleContract(8,
    h => new Mamba2Block(h, new Mamba2SequenceMixer(h, stateSize: 4, headDim: 4, chunkSize: 4)),
    (h, c) => new Mamba2Block(h, new Mamba2SequenceMixer(h, stateSize: 4, headDim: 4, chunkSize: c)));

public sealed class Mamba2BlockOptionsContract() : SequenceModuleContract(8,
    h => new Mamba2Block(h, new Mamba2SequenceMixer(h, stateSize: 3, headDim: 2, numGroups: 2, useBias: true, useConvBias: false,
        normBeforeGate: true, chunkSize: 3), normEps: 1e-3, residualInFp32: false));
