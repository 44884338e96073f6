using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// <see cref="MLSTMKernel.Chunked"/> (chunk 64) against <see cref="MLSTMKernel.Recurrent"/>: B = 4, NH = 4,
/// Dk = Dv = 64, float32, forward (no autograd graph) and forward+backward (all five inputs require grad).
/// The recurrent form is measured up to L = 4096 (its backward keeps one copy of C per step).
/// Run: <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*MLSTMKernel*'</c>.
/// </summary>
[WarmupCount(1)]
[IterationCount(3)]
public class MLSTMKernelBenchmark
{
    private Tensor _q = null!, _k = null!, _v = null!, _i = null!, _f = null!;
    private bool _chunkwise;

    /// <summary>The form and the sequence length, e.g. <c>Chunked-4096</c>.</summary>
    [ParamsSource(nameof(Cases))]
    public string Case { get; set; } = "";

    /// <summary>The measured cases.</summary>
    public static IEnumerable<string> Cases() => new[]
    {
        "Chunked-1024", "Chunked-4096", "Chunked-16384", "Recurrent-1024", "Recurrent-4096",
    };

    [GlobalSetup]
    public void Setup()
    {
        var parts = Case.Split('-');
        _chunkwise = parts[0] == "Chunked";
        long l = long.Parse(parts[1]);
        var g = new Generator(1);
        _q = randn(new long[] { 4, 4, l, 64 }, generator: g);
        _k = randn(new long[] { 4, 4, l, 64 }, generator: g);
        _v = randn(new long[] { 4, 4, l, 64 }, generator: g);
        _i = randn(new long[] { 4, 4, l }, generator: g);
        _f = randn(new long[] { 4, 4, l }, generator: g).add_(3.0);
    }

    private (Tensor, MLSTMKernelState) Run(Tensor q, Tensor k, Tensor v, Tensor i, Tensor f) =>
        _chunkwise ? MLSTMKernel.Chunked(q, k, v, i, f, 64) : MLSTMKernel.Recurrent(q, k, v, i, f);

    [Benchmark]
    public void Forward()
    {
        using var _ = no_grad();
        var (h, s) = Run(_q, _k, _v, _i, _f);
        h.Dispose();
        s.Dispose();
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var q = _q.detach().requires_grad_(true);
        var k = _k.detach().requires_grad_(true);
        var v = _v.detach().requires_grad_(true);
        var i = _i.detach().requires_grad_(true);
        var f = _f.detach().requires_grad_(true);
        var (h, s) = Run(q, k, v, i, f);
        h.sum().backward();
        s.Dispose();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _q, _k, _v, _i, _f }) t.Dispose();
    }
}
