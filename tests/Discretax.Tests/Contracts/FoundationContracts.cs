using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Contracts;

public sealed class StandardBlockWithIdentityMixerContract() : SequenceModuleContract(8, h => new StandardBlock(h, new IdentitySequenceMixer(h), new GLU(h)));

public sealed class StandardBlockWithConvolutionContract() : SequenceModuleContract(8, h => new StandardBlock(h, new ShortConvolution(h), new GLU(h)));

public sealed class PostnormLayerNormBlockContract() : SequenceModuleContract(8, h => new StandardBlock(h, new ShortConvolution(h, kernelSize: 3, useBias: true), new SwiGLU(h), prenorm: false, norm: NormKind.Layer));

public sealed class RmsNormBlockContract() : SequenceModuleContract(8, h => new StandardBlock(h, new ShortConvolution(h, useSilu: false), new MLPChannelMixer(h, useBias: true), norm: NormKind.Rms));

public sealed class ShortConvolutionContract() : SequenceModuleContract(6, h => new ShortConvolution(h, useBias: true));

public sealed class StackedModelContract() : SequenceModuleContract(8, h => new SequenceModel(h, new[]
{
    new StandardBlock(h, new ShortConvolution(h), new GLU(h)),
    new StandardBlock(h, new ShortConvolution(h, kernelSize: 2), new GLU(h)),
}));
