using BenchmarkDotNet.Attributes;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The <see cref="S4DSequenceMixer"/> (B = 8, H = 128, N = 64, float32, S4D-Lin, ZOH, no D) over a whole sequence:
/// its FFT forward (<c>forward</c>: kernel + FFT convolution) against its recurrence (<c>Stream</c> from no state:
/// <c>LinearScan.Scan</c> over time chunks of 256 steps), each without and with the backward pass to all parameters.
/// The recurrence's backward keeps <c>[B, L, H, N/2]</c> complex tensors for autograd (about 1 GB per copy at
/// L = 4096), so it runs up to L = 4096 only (<see cref="S4DMixerRecurrenceBackwardBenchmark"/>).
/// </summary>
[WarmupCount(1), IterationCount(3)]   // single invocations take seconds; keep the run under half an hour
public class S4DMixerBenchmark
{
    internal const long Batch = 8, Channels = 128, StateDim = 64;
    private S4DSequenceMixer _mixer = null!;
    private Tensor _u = null!;

    /// <summary>Sequence length.</summary>
    [Params(1024, 4096, 16384)]
    public long L { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _mixer = new S4DSequenceMixer(Channels, StateDim);
        _u = randn(new[] { Batch, L, Channels }, generator: new Generator(1));
    }

    /// <summary>FFT forward, no autograd.</summary>
    [Benchmark(Baseline = true)]
    public void FftForward()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        _mixer.forward(_u);
    }

    /// <summary>FFT forward and backward to every parameter.</summary>
    [Benchmark]
    public void FftForwardBackward()
    {
        using var scope = NewDisposeScope();
        _mixer.forward(_u).sum().backward();
        _mixer.zero_grad();
    }

    /// <summary>The recurrence over the whole sequence (one streamed piece), no autograd.</summary>
    [Benchmark]
    public void RecurrenceForward()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (y, state) = _mixer.Stream(_u);
        state.Dispose();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _u.Dispose();
        _mixer.Dispose();
    }
}
