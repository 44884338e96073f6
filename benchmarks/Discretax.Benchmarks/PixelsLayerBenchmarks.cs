using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using Discretax.Layers;
using Discretax.SequenceMixers;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The per-layer costs of one training step of the sample's pixels layout: activations <c>[64, 784, 64]</c>
/// (batch 64, 784 steps, hidden 64), float32, forward and backward. Each class compares the library's layer
/// (the measured one) with the formulation it replaced (the baseline, written out here), in one run.
/// </summary>
public abstract class PixelsLayerBenchmark
{
    /// <summary>Batch, steps and features of the sample's pixels layout at its default size.</summary>
    protected const long Batch = 64, Steps = 784, Features = 64;

    /// <summary>The input activation, requiring a gradient.</summary>
    protected Tensor X = null!;

    [GlobalSetup]
    public virtual void Setup()
    {
        X = randn(new[] { Batch, Steps, Features }, generator: new Generator(1)).requires_grad_();
    }

    /// <summary>Forward, then backward of the mean square of the output.</summary>
    /// <param name="f">The layer.</param>
    protected void Step(Func<Tensor, Tensor> f)
    {
        using var scope = NewDisposeScope();
        f(X).square().mean().backward();
        X.grad?.zero_();
    }

    [GlobalCleanup]
    public virtual void Cleanup() => X.Dispose();
}

/// <summary>Dropout p = 0.1 in train mode: libtorch's (a serial <c>bernoulli_</c> mask) against <see cref="FastDropout"/>.</summary>
public class DropoutBenchmark : PixelsLayerBenchmark
{
    private readonly TorchSharp.Modules.Dropout _torch = nn.Dropout(0.1);
    private readonly FastDropout _fast = new(0.1);

    [Benchmark(Baseline = true)]
    public void TorchDropout() => Step(_torch.forward);

    [Benchmark]
    public void FastDropoutLayer() => Step(_fast.forward);
}

/// <summary>
/// The blocks' batch norm (momentum 0.01, no affine), train mode: <c>BatchNorm1d</c> on the transposed
/// <c>[B, H, L]</c> view against the same module on <c>[B L, H]</c> rows (what the blocks now do).
/// </summary>
public class BatchNormLayoutBenchmark : PixelsLayerBenchmark
{
    private readonly TorchSharp.Modules.BatchNorm1d _norm = nn.BatchNorm1d(Features, momentum: 0.01, affine: false);

    [Benchmark(Baseline = true)]
    public void TransposedChannels() => Step(x => _norm.forward(x.transpose(1, 2)).transpose(1, 2));

    [Benchmark]
    public void Rows() => Step(x => _norm.forward(x.reshape(-1, Features)).reshape(x.shape));
}

/// <summary>
/// Causal FFT convolution with a full-length kernel <c>[64, 784]</c> (the S4D mixer's core): autograd through
/// libtorch's <c>rfft</c>/<c>irfft</c> against <see cref="FftConvolution.Causal"/> and its custom backward.
/// </summary>
public class FftConvolutionBackwardBenchmark : PixelsLayerBenchmark
{
    private Tensor _kernel = null!;

    public override void Setup()
    {
        base.Setup();
        _kernel = (randn(new[] { Features, Steps }, generator: new Generator(2)) * 0.05).requires_grad_();
    }

    [Benchmark(Baseline = true)]
    public void AutogradThroughFft() => Step(u =>
    {
        long n = FftConvolution.NextFastSize(2 * Steps - 1);
        var uf = fft.rfft(u, n, dim: 1);
        var kf = fft.rfft(_kernel, n, dim: 1).t();
        return fft.irfft(uf * kf, n, dim: 1).narrow(1, 0, Steps);
    });

    [Benchmark]
    public void CustomBackward() => Step(u => FftConvolution.Causal(u, _kernel));

    public override void Cleanup()
    {
        _kernel.Dispose();
        base.Cleanup();
    }
}

/// <summary>
/// The LRU mixer (N = 64 complex states): the former formulation (<c>complex(uB_re, uB_im)</c>, then
/// <c>Re(h) C_re - Im(h) C_im</c> on strided views) against <see cref="LRUSequenceMixer"/>'s one GEMM each way over
/// interleaved (re, im) pairs. Same parameters, same scan.
/// </summary>
public class LRUMixerFormulationBenchmark : PixelsLayerBenchmark
{
    private readonly LRUSequenceMixer _mixer = new(Features, 64);

    [Benchmark(Baseline = true)]
    public void SplitRealImaginary() => Step(u =>
    {
        var m = _mixer;
        var g = m.gamma_log.exp().unsqueeze(1);
        var bu = complex(u.matmul((m.B_re * g).t()), u.matmul((m.B_im * g).t()));
        var h = LinearScan.Scan(m.Lambda(), bu).Output;
        return h.real.matmul(m.C_re.t()) - h.imag.matmul(m.C_im.t()) + u * m.D;
    });

    [Benchmark]
    public void InterleavedPairs() => Step(_mixer.forward);
}
