using BenchmarkDotNet.Attributes;
using Discretax.Models;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// Training throughput of the models: one forward+backward of <c>Model(hiddenDim: 128, numBlocks: 4)</c> at
/// <c>B = 16, L = 1024</c>, float32, train mode. Tokens per second = 16 * 1024 / mean time.
/// Run: <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*ModelThroughput*'</c>.
/// </summary>
[WarmupCount(1), IterationCount(3)]
public class ModelThroughputBenchmark
{
    private const int Batch = 16, Length = 1024, Hidden = 128, Blocks = 4;

    /// <summary>The models, by name (each issue adds its model here).</summary>
    public static readonly IReadOnlyDictionary<string, Func<SequenceModule>> Models = new Dictionary<string, Func<SequenceModule>>
    {
        ["LRU"] = () => new LRU(Hidden, Blocks),
        ["DeltaNet"] = () => new DeltaNet(Hidden, Blocks),
        ["S5"] = () => new S5(Hidden, Blocks),
        ["S4D"] = () => new S4D(Hidden, Blocks),
        ["MLSTM"] = () => new MLSTM(Hidden, Blocks, dropRate: 0.1),   // dropout 0.1: the default until issue 14, as measured
        ["LinOSS"] = () => new LinOSS(Hidden, Blocks),
    };

    private SequenceModule _model = null!;
    private Tensor _x = null!, _w = null!;

    [ParamsSource(nameof(Names))]
    public string Model { get; set; } = "";

    public static IEnumerable<string> Names => Models.Keys;

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(1);
        _model = Models[Model]();
        _model.train();
        var g = new Generator(2);
        _x = randn(new long[] { Batch, Length, Hidden }, generator: g);
        _w = randn(new long[] { Batch, Length, Hidden }, generator: g);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        _model.zero_grad();
        var loss = (_model.forward(_x) * _w).mean();
        loss.backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        _x.Dispose();
        _w.Dispose();
    }
}
