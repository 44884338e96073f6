using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class LRUSequenceMixerContract() : SequenceModuleContract(8, h => new LRUSequenceMixer(h, stateDim: 6, rMin: 0.5, rMax: 0.99));

public sealed class LRUModelContract() : SequenceModuleContract(8, h => new LRU(h, numBlocks: 2, stateDim: 6));

/// <summary>discretax's block exactly: equinox's EMA batch norm and the tanh GELU.</summary>
public sealed class LRUDiscretaxExactModelContract() : SequenceModuleContract(8, h => new LRU(h, numBlocks: 2, stateDim: 6,
    norm: Discretax.Blocks.NormKind.EquinoxBatch, activation: Discretax.ChannelMixers.Activation.GELUTanh));
