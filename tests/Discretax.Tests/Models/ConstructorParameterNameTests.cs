using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Models;
using Discretax.SequenceMixers;

namespace Discretax.Tests.Models;

/// <summary>A constructor's error names the parameter the caller wrote, not a base class's.</summary>
public class ConstructorParameterNameTests
{
    public static TheoryData<string, Func<object>> Cases() => new()
    {
        { "hiddenDim", () => new DeltaNet(0) },
        { "hiddenDim", () => new LRU(0) },
        { "hiddenDim", () => new S5(0) },
        { "hiddenDim", () => new S4D(0) },
        { "hiddenDim", () => new LinOSS(0) },
        { "hiddenDim", () => new MLSTM(0) },
        { "dModel", () => new TransformerDeltaNet(0, chunkSize: 4, numLayers: 1) },
        { "numLayers", () => new TransformerDeltaNet(8, chunkSize: 4, numLayers: 0) },
        { "numBlocks", () => new DeltaNet(8, numBlocks: 0) },
        { "numBlocks", () => new LRU(8, numBlocks: 0) },
        { "dropRate", () => new S4D(8, dropRate: 1.0) },
        { "dropRate", () => new LRU(8, dropRate: -0.1) },
        { "channels", () => new ShortConvolution(0) },
        { "kernelSize", () => new ShortConvolution(4, kernelSize: 0) },
        { "inFeatures", () => new DeltaNetSequenceMixer(0) },
        { "convSize", () => new DeltaNetSequenceMixer(8, numHeads: 2, useShortConv: true, convSize: 0) },
        { "inFeatures", () => new LRUSequenceMixer(0) },
        { "inFeatures", () => new S5SequenceMixer(0) },
        { "inFeatures", () => new S4DSequenceMixer(0) },
        { "inFeatures", () => new LinOSSSequenceMixer(0) },
        { "inFeatures", () => new IdentitySequenceMixer(0) },
        { "inFeatures", () => new StandardBlock(0, new IdentitySequenceMixer(1), new GLU(1)) },
        { "dModel", () => new TransformerBlock(0, chunkSize: 4, ffHiddenDim: 8) },
        { "inFeatures", () => new SequenceModel(0, new[] { new StandardBlock(1, new IdentitySequenceMixer(1), new GLU(1)) }) },
        { "norm", () => new StandardBlock(4, new IdentitySequenceMixer(4), new GLU(4), norm: (NormKind)9) },
        { "norm", () => new MLSTMBlock(4, new IdentitySequenceMixer(4), norm: (NormKind)9) },
        { "hiddenSize", () => new GatedMLP(0) },
        { "hiddenRatio", () => new GatedMLP(8, hiddenRatio: 0) },
        { "intermediateSize", () => new GatedMLP(8, intermediateSize: 0) },
        { "hiddenSize", () => new FlaBlock(0, new IdentitySequenceMixer(1), new GatedMLP(1)) },
        { "mlp", () => new FlaBlock(4, new IdentitySequenceMixer(4), new GatedMLP(3)) },
        { "normEps", () => new FlaBlock(4, new IdentitySequenceMixer(4), new GatedMLP(4), normEps: 0) },
        { "hiddenSize", () => new FlaModel(8, 0, new[] { new IdentitySequenceMixer(1) }) },
        { "vocabSize", () => new FlaModel(0, 4, new[] { new IdentitySequenceMixer(4) }) },
        { "paddingIdx", () => new FlaModel(8, 4, new[] { new IdentitySequenceMixer(4) }, paddingIdx: 8) },
        { "layers", () => new FlaModel(8, 4, new[] { new IdentitySequenceMixer(5) }) },
        { "normName", () => new FlaModel(8, 4, new[] { new IdentitySequenceMixer(4) }, normName: "norm.f") },
        { "hiddenSize", () => new Mamba2Block(0, new IdentitySequenceMixer(1)) },
        { "mixer", () => new Mamba2Block(4, new IdentitySequenceMixer(5)) },
        { "normEps", () => new Mamba2Block(4, new IdentitySequenceMixer(4), normEps: 0) },
        { "chunkSize", () => new Mamba2ForCausalLM(new Mamba2Config { HiddenSize = 8, HeadDim = 4, StateSize = 2, NumHiddenLayers = 1, VocabSize = 4 }, chunkSize: 0) },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheErrorNamesTheCallersParameter(string expected, Func<object> construct)
    {
        construct.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(expected);
    }
}
