using Discretax.Interop;
using Discretax.Models;
using Discretax.Streaming;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// Every model of the library goes through safetensors and back: <see cref="Checkpoint.Save"/>, then a strict
/// <see cref="Checkpoint.Load"/> into a freshly initialized model of the same configuration, gives the same
/// outputs bit for bit (parameters, batch-norm statistics and the integer batch counter included).
/// </summary>
public class ModelRoundTripTests
{
    private static readonly Dictionary<string, Func<SequenceModule>> Models = new()
    {
        ["DeltaNet"] = () => new DeltaNet(8, numBlocks: 2, numHeads: 2, chunkSize: 4),
        ["LRU"] = () => new LRU(8, numBlocks: 2, stateDim: 8),
        ["S4D"] = () => new S4D(8, numBlocks: 2, stateDim: 8),
        ["S5"] = () => new S5(8, numBlocks: 2, stateDim: 8),
        ["LinOSS"] = () => new LinOSS(8, numBlocks: 2, stateDim: 8),
        ["MLSTM"] = () => new MLSTM(8, numBlocks: 2, numHeads: 2, chunkSize: 4),
        ["TransformerDeltaNet"] = () => new TransformerDeltaNet(8, chunkSize: 4, numLayers: 2, numHeads: 2),
    };

    public static TheoryData<string> Names => new(Models.Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void SaveThenLoadIntoAFreshModelGivesIdenticalOutputs(string name)
    {
        using var scope = NewDisposeScope();
        var x = randn([2, 6, 8], generator: new Generator(31));
        var model = Models[name]();
        model.train();
        model.forward(x);                                   // batch-norm statistics away from their initial values
        model.eval();
        string dir = TempDir();
        string path = Path.Combine(dir, "model.safetensors");
        Checkpoint.Save(model, path);

        var fresh = Models[name]();
        using (var read = SafeTensors.Read(path))
            Checkpoint.Load(fresh, read).Loaded.Should().HaveCount(model.state_dict().Count);
        fresh.eval();
        Same(fresh.forward(x), model.forward(x)).Should().BeTrue();
        Directory.Delete(dir, true);
    }

    [Fact]
    public void ATiedLanguageModelSavesBothNamesAndLoadsBack()
    {
        using var scope = NewDisposeScope();
        var lm = new CausalLM(11, new LRU(8, numBlocks: 1, stateDim: 8), tieWeights: true);
        lm.eval();
        string dir = TempDir();
        string path = Path.Combine(dir, "lm.safetensors");
        Checkpoint.Save(lm, path);
        var fresh = new CausalLM(11, new LRU(8, numBlocks: 1, stateDim: 8), tieWeights: true);
        fresh.eval();
        using (var read = SafeTensors.Read(path)) Checkpoint.Load(fresh, read);
        var ids = randint(0, 11, [2, 5], ScalarType.Int64, generator: new Generator(32));
        Same(fresh.forward(ids), lm.forward(ids)).Should().BeTrue();
        Directory.Delete(dir, true);
    }
}
