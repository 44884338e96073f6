using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class LRUSequenceMixerContract() : SequenceModuleContract(8, h => new LRUSequenceMixer(h, stateDim: 6, rMin: 0.5, rMax: 0.99));

public sealed class LRUModelContract() : SequenceModuleContract(8, h => new LRU(h, numBlocks: 2, stateDim: 6));
