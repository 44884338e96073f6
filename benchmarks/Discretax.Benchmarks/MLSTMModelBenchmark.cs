using BenchmarkDotNet.Attributes;
using Discretax.Models;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// Training throughput of <c>MLSTM(hiddenDim: 128, numBlocks: 4)</c> (default options: 4 heads, projFactor 2, chunk 64):
/// one forward+backward of a float32 batch B = 16, L = 1024 in train mode. Tokens per second = B * L / mean time.
/// On a loaded 2-core CPU one pass takes tens of seconds, and the in-process toolchain stops a benchmark that runs
/// longer than its 5-minute budget; there, run it with <c>--fast</c> (one measured pass) or read the per-iteration lines.
/// </summary>
public class MLSTMModelBenchmark
{
    private const int B = 16, L = 1024, H = 128;
    private MLSTM _model = null!;
    private Tensor _x = null!, _w = null!;

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(1);
        _model = new MLSTM(H, numBlocks: 4, dropRate: 0.1);   // the figures of docs/benchmarks.md were measured with dropout 0.1 (the default until issue 14)
        _model.train();
        _x = randn(new long[] { B, L, H }, generator: g);
        _w = randn(new long[] { B, L, H }, generator: g);
    }

    /// <summary>Forward and backward of <c>sum(model(x) * w)</c>; gradients are cleared before each pass.</summary>
    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        _model.zero_grad();
        var y = _model.forward(_x);
        (y * _w).sum().backward();
    }

    /// <summary>Forward only, without autograd.</summary>
    [Benchmark]
    public void ForwardNoGrad()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _model.forward(_x);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        _x.Dispose();
        _w.Dispose();
    }
}
