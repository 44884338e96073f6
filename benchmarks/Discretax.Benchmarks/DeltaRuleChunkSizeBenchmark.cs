using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The chunk size and the path of <see cref="DeltaRule.Chunked"/>: C in {32, 64, 128} on the compiled CPU kernel (the
/// CPU default) and on the tensor path (what CUDA runs, here on CPU), at B = 4, NH = 4, L = 4096, Dk = Dv = 64, float32,
/// forward and forward+backward (the inputs of <see cref="DeltaRuleBenchmark"/>). The default chunk size of the kernel
/// and of the DeltaNet layers, and which path CPU runs, are chosen from this run (docs/benchmarks.md).
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

    /// <summary><c>Compiled</c>: the C# kernel (KernelPath.Auto on CPU); <c>Tensor</c>: the tensor path.</summary>
    [Params("Compiled", "Tensor")]
    public string Path { get; set; } = "";

    private KernelPath KernelPath => Path == "Tensor" ? KernelPath.Tensor : KernelPath.Auto;

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
        _ = DeltaRule.ChunkedOnPath(_inputs[0], _inputs[1], _inputs[2], _inputs[3], Chunk, null, null, KernelPath);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (o, s) = DeltaRule.ChunkedOnPath(_leaves[0], _leaves[1], _leaves[2], _leaves[3], Chunk, null, null, KernelPath);
        (o.sum() + s.sum()).backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in _inputs.Concat(_leaves)) t.Dispose();
    }
}
