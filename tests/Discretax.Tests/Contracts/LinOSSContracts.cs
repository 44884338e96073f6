using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class LinOSSSequenceMixerContract() : SequenceModuleContract(8, h => new LinOSSSequenceMixer(h, stateDim: 6));

public sealed class LinOSSImUndampedSequenceMixerContract() : SequenceModuleContract(8, h => new LinOSSSequenceMixer(h, stateDim: 5, LinOSSDiscretization.IM, damping: false));

public sealed class LinOSSModelContract() : SequenceModuleContract(8, h => new LinOSS(h, numBlocks: 2, stateDim: 6));
