using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// <see cref="BlockScan2x2"/> on CPU, float32, <c>B = 8, L = 4096, N = 64</c> 2x2 channels (as a LinOSS mixer with 32
/// oscillators, real and imaginary parts) and a time-invariant <c>M [N, 2, 2]</c>: the compiled kernel (<c>Scan</c>),
/// the literal loop (<c>Recurrent</c>) and the chunked parallel tensor form (<c>Parallel</c>, the CUDA path), forward
/// and forward+backward (gradients of M and F), against a plain copy of <c>F</c>.
/// Run: <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*BlockScan2x2*'</c>.
/// </summary>
public class BlockScan2x2Benchmark
{
    private const int Batch = 8, Length = 4096, State = 64;
    private Tensor _m = null!, _f = null!, _g = null!;

    /// <summary>Creates the inputs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(1);
        using var th = rand(new long[] { State }, generator: g) * 6.283;
        using var r = rand(new long[] { State }, generator: g) * 0.5 + 0.49;
        using var rot = stack(new[] { stack(new[] { th.cos(), -th.sin() }, -1), stack(new[] { th.sin(), th.cos() }, -1) }, -2);
        _m = (r.unsqueeze(-1).unsqueeze(-1) * rot).detach().requires_grad_(true);
        _f = randn(new long[] { Batch, Length, State, 2 }, generator: g).requires_grad_(true);
        _g = randn(new long[] { Batch, Length, State, 2 }, generator: g);
    }

    /// <summary>A copy of F: the bytes a perfect scan moves.</summary>
    [Benchmark(Baseline = true)]
    public void CopyOfF()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        _f.clone();
    }

    /// <summary>The compiled CPU kernel.</summary>
    [Benchmark]
    public void ScanForward()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        BlockScan2x2.Scan(_m, _f);
    }

    /// <summary>The literal loop.</summary>
    [Benchmark]
    public void RecurrentForward()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        BlockScan2x2.Recurrent(_m, _f);
    }

    /// <summary>The chunked parallel tensor form.</summary>
    [Benchmark]
    public void ParallelForward()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        BlockScan2x2.Parallel(_m, _f);
    }

    /// <summary>Kernel with its C# backward.</summary>
    [Benchmark]
    public void ScanForwardBackward() => ForwardBackward(() => BlockScan2x2.Scan(_m, _f).Output);

    /// <summary>Loop with autograd.</summary>
    [Benchmark]
    public void RecurrentForwardBackward() => ForwardBackward(() => BlockScan2x2.Recurrent(_m, _f).Output);

    /// <summary>Parallel form with autograd.</summary>
    [Benchmark]
    public void ParallelForwardBackward() => ForwardBackward(() => BlockScan2x2.Parallel(_m, _f).Output);

    private void ForwardBackward(Func<Tensor> forward)
    {
        using var scope = NewDisposeScope();
        var h = forward();
        torch.autograd.grad(new[] { h }, new[] { _m, _f }, new[] { _g });
    }

    /// <summary>Frees the inputs.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _m.Dispose();
        _f.Dispose();
        _g.Dispose();
    }
}
