using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// Does the 5-smooth FFT size pay? <see cref="FftConvolution.Causal"/> (n = NextFastSize(2L - 1)) against the
/// same convolution with n = 2L, at B = 8, H = 128, float32, for lengths where 2L has a large prime factor
/// (4099 and 1031 are prime) and one where both sizes coincide (4096).
/// </summary>
public class FftSizeBenchmark
{
    private Tensor _u = null!, _k = null!;

    /// <summary>Sequence length.</summary>
    [Params(1031, 4096, 4099)]
    public long L { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(2);
        _u = randn(new[] { 8L, L, 128L }, generator: g);
        _k = randn(new[] { 128L, L }, generator: g);
    }

    /// <summary>The library path: n = NextFastSize(2L - 1).</summary>
    [Benchmark(Baseline = true)]
    public void FastSize()
    {
        using var scope = NewDisposeScope();
        FftConvolution.Causal(_u, _k);
    }

    /// <summary>The same convolution with n = 2L, as the S4/S4D reference pads.</summary>
    [Benchmark]
    public void TwiceL()
    {
        using var scope = NewDisposeScope();
        long n = 2 * L;
        var y = fft.irfft(fft.rfft(_u, n, dim: 1) * fft.rfft(_k, n, dim: 1).t(), n, dim: 1).narrow(1, 0, L).contiguous();
    }

    /// <summary>Fast size, FFT along the last dimension of a contiguous [B, H, L] copy.</summary>
    [Benchmark]
    public void FastSizeChannelsFirst()
    {
        using var scope = NewDisposeScope();
        long n = FftConvolution.NextFastSize(2 * L - 1);
        var uf = fft.rfft(_u.transpose(1, 2).contiguous(), n, dim: -1);
        var y = fft.irfft(uf * fft.rfft(_k, n, dim: -1), n, dim: -1).narrow(-1, 0, L).transpose(1, 2).contiguous();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _u.Dispose();
        _k.Dispose();
    }
}
