using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// <see cref="MLSTMKernel.Chunkwise"/> against <see cref="MLSTMKernel.Recurrent"/>: B = 4, NH = 4, Dk = Dv = 64,
/// float32, forward only (no autograd graph), plus the chunkwise forward+backward.
/// </summary>
public class MLSTMKernelBenchmark
{
    private Tensor _q = null!, _k = null!, _v = null!, _i = null!, _f = null!;

    /// <summary>The sequence length.</summary>
    [Params(1024, 4096)]
    public int L { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(1);
        _q = randn(new long[] { 4, 4, L, 64 }, generator: g);
        _k = randn(new long[] { 4, 4, L, 64 }, generator: g);
        _v = randn(new long[] { 4, 4, L, 64 }, generator: g);
        _i = randn(new long[] { 4, 4, L }, generator: g);
        _f = randn(new long[] { 4, 4, L }, generator: g).add_(3.0);
    }

    [Benchmark(Baseline = true)]
    public void Recurrent()
    {
        using var _ = no_grad();
        var (h, s) = MLSTMKernel.Recurrent(_q, _k, _v, _i, _f);
        h.Dispose();
        s.Dispose();
    }

    [Benchmark]
    public void Chunkwise64()
    {
        using var _ = no_grad();
        var (h, s) = MLSTMKernel.Chunkwise(_q, _k, _v, _i, _f, 64);
        h.Dispose();
        s.Dispose();
    }

    [Benchmark]
    public void Chunkwise64ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var q = _q.detach().requires_grad_(true);
        var k = _k.detach().requires_grad_(true);
        var v = _v.detach().requires_grad_(true);
        var i = _i.detach().requires_grad_(true);
        var f = _f.detach().requires_grad_(true);
        var (h, s) = MLSTMKernel.Chunkwise(q, k, v, i, f, 64);
        h.sum().backward();
        s.Dispose();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _q, _k, _v, _i, _f }) t.Dispose();
    }
}
