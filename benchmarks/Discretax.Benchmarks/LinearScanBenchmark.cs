using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// <see cref="LinearScan"/> on CPU, complex64, <c>B = 8, N = 64</c>, a time-invariant <c>a [N]</c> (as in LRU and S5):
/// the compiled kernel (<c>Scan</c>), the literal loop (<c>Recurrent</c>) and the chunked parallel tensor form
/// (<c>Parallel</c>, the CUDA path), forward and forward+backward (gradients of a and b), against a plain copy of
/// <c>b</c>, which moves the same bytes as a perfect scan (read b, write h).
/// Run: <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*LinearScan*'</c>.
/// </summary>
[WarmupCount(1), IterationCount(5)]
public class LinearScanBenchmark
{
    private const int Batch = 8, State = 64;
    private Tensor _a = null!, _b = null!, _g = null!;

    [Params(1024, 4096, 16384)]
    public int L { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(1);
        using var r = rand(new long[] { State }, generator: g) * 0.5 + 0.49;
        using var phase = rand(new long[] { State }, generator: g) * 6.283;
        _a = torch.complex(r * phase.cos(), r * phase.sin()).requires_grad_(true);
        _b = randn(new long[] { Batch, L, State }, dtype: ScalarType.ComplexFloat32, generator: g).requires_grad_(true);
        _g = randn(new long[] { Batch, L, State }, dtype: ScalarType.ComplexFloat32, generator: g);
    }

    [Benchmark(Baseline = true)]
    public void CopyOfB()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _b.clone();
    }

    [Benchmark]
    public void ScanForward()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        LinearScan.Scan(_a, _b);
    }

    [Benchmark]
    public void RecurrentForward()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        LinearScan.Recurrent(_a, _b);
    }

    [Benchmark]
    public void ParallelForward()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        LinearScan.Parallel(_a, _b);
    }

    [Benchmark]
    public void ScanForwardBackward() => ForwardBackward(() => LinearScan.Scan(_a, _b).Output);

    [Benchmark]
    public void RecurrentForwardBackward() => ForwardBackward(() => LinearScan.Recurrent(_a, _b).Output);

    [Benchmark]
    public void ParallelForwardBackward() => ForwardBackward(() => LinearScan.Parallel(_a, _b).Output);

    private void ForwardBackward(Func<Tensor> forward)
    {
        using var scope = NewDisposeScope();
        var h = forward();
        torch.autograd.grad(new[] { h }, new[] { _a, _b }, new[] { _g });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _g.Dispose();
    }
}
