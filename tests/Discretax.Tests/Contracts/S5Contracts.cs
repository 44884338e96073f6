using Discretax.Kernels;
using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class S5SequenceMixerContract() : SequenceModuleContract(8, h => new S5SequenceMixer(h, stateDim: 8));

public sealed class S5SequenceMixerBilinearContract() : SequenceModuleContract(8,
    h => new S5SequenceMixer(h, stateDim: 8, ssmBlocks: 2, conjSym: false, discretization: Discretization.Bilinear));

public sealed class S5ModelContract() : SequenceModuleContract(8, h => new S5(h, numBlocks: 2, stateDim: 6));
