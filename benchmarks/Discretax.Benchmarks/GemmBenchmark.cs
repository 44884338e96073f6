using BenchmarkDotNet.Attributes;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>The reference rate: an fp32 1024x1024x1024 matmul (2 * 1024^3 FLOPs).</summary>
public class GemmBenchmark
{
    private Tensor _a = null!, _b = null!;

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(1);
        _a = randn(1024, 1024, generator: g);
        _b = randn(1024, 1024, generator: g);
    }

    [Benchmark]
    public void Matmul1024()
    {
        using var c = _a.matmul(_b);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
    }
}
