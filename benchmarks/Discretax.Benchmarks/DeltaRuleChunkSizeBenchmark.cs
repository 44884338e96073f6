using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The chunk size of <see cref="DeltaRule.Chunked"/>: C in {32, 64, 128} at B = 4, NH = 4, L = 4096, Dk = Dv = 64,
/// float32, forward and forward+backward (the inputs of <see cref="DeltaRuleBenchmark"/>). The default chunk size of
/// the kernel and of the DeltaNet layers is chosen from this run (docs/benchmarks.md).
/// Run: <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*DeltaRuleChunkSize*'</c>.
/// </summary>
[WarmupCount(1)]
[IterationCount(3)]
public class DeltaRuleChunkSizeBenchmark
{
    private const long B = 4, NH = 4, L = 4096, D = 64;
    private Tensor[] _inputs = Array.Empty<Tensor>(), _leaves = Array.Empty<Tensor>();

    /// <summary>The chunk size C.</summary>
    [Params(32, 64, 128)]
    public int Chunk { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(7);
        var q = randn(new[] { B, NH, L, D }, generator: g);
        var k = randn(new[] { B, NH, L, D }, generator: g);
        var v = randn(new[] { B, NH, L, D }, generator: g);
        var beta = rand(new[] { B, NH, L }, generator: g);
        _inputs = new[] { q, k / k.norm(-1, keepdim: true), v, beta };
        _leaves = _inputs.Select(t => t.detach().clone().requires_grad_()).ToArray();
    }

    [Benchmark]
    public void Forward()
    {
        using var scope = NewDisposeScope();
        _ = DeltaRule.Chunked(_inputs[0], _inputs[1], _inputs[2], _inputs[3], Chunk);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (o, s) = DeltaRule.Chunked(_leaves[0], _leaves[1], _leaves[2], _leaves[3], Chunk);
        (o.sum() + s.sum()).backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in _inputs.Concat(_leaves)) t.Dispose();
    }
}
