using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// S4D forward, B = 8, H = 128, N = 64 (32 conjugate-pair modes), float32: the convolution path (kernel by
/// <see cref="SsmKernels.S4DKernel"/>, then <see cref="FftConvolution.Causal"/>) against the same system run as
/// the recurrence <c>x_t = dA x_{t-1} + dB u_t</c>, <c>y_t = 2 Re(C x_t)</c> through a plain loop of tensor ops.
/// </summary>
public class FftConvolutionBenchmark
{
    private const long Batch = 8, Channels = 128, StateDim = 64;
    private Tensor _u = null!, _logDt = null!, _aReal = null!, _aImag = null!, _cReal = null!, _cImag = null!;

    /// <summary>Sequence length.</summary>
    [Params(1024, 4096)]
    public long L { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var g = new Generator(1);
        _u = randn(new[] { Batch, L, Channels }, generator: g);
        var (logAReal, aImag) = SsmKernels.S4DLinInit(Channels, StateDim);
        _aReal = (-logAReal.exp()).requires_grad_();
        _aImag = aImag.requires_grad_();
        _logDt = (rand(new[] { Channels }, generator: g) * (Math.Log(0.1) - Math.Log(0.001)) + Math.Log(0.001)).requires_grad_();
        _cReal = randn(new[] { Channels, StateDim / 2 }, generator: g).requires_grad_();
        _cImag = randn(new[] { Channels, StateDim / 2 }, generator: g).requires_grad_();
    }

    private Tensor FftPath() =>
        FftConvolution.Causal(_u, SsmKernels.S4DKernel(_logDt, _aReal, _aImag, _cReal, _cImag, L));

    /// <summary>Kernel + FFT convolution, no autograd.</summary>
    [Benchmark(Baseline = true)]
    public void FftForward()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        FftPath();
    }

    /// <summary>Kernel + FFT convolution, forward and backward to all parameters.</summary>
    [Benchmark]
    public void FftForwardBackward()
    {
        using var scope = NewDisposeScope();
        FftPath().sum().backward();
        foreach (var p in new[] { _logDt, _aReal, _aImag, _cReal, _cImag }) p.grad?.zero_();
    }

    /// <summary>The recurrence over the whole sequence through a loop of tensor ops, no autograd.</summary>
    [Benchmark]
    public void RecurrenceForward()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (dA, dB) = SsmKernels.Discretize(_logDt, _aReal, _aImag);     // [H, N/2] complex64
        var c2 = complex(_cReal, _cImag) * 2.0;
        var x = zeros(new[] { Batch, Channels, StateDim / 2 }, dtype: ScalarType.ComplexFloat32);
        var ys = new Tensor[L];
        for (long t = 0; t < L; t++)
        {
            using var inner = NewDisposeScope();
            var ut = _u.select(1, t).unsqueeze(-1);                        // [B, H, 1]
            var next = dA * x + dB * ut;
            ys[t] = (c2 * next).sum(-1).real.MoveToOuterDisposeScope();    // [B, H]
            x = next.MoveToOuterDisposeScope();
        }
        stack(ys, 1);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _u, _logDt, _aReal, _aImag, _cReal, _cImag }) t.Dispose();
    }
}
