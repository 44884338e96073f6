using BenchmarkDotNet.Attributes;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// Companion of <see cref="S4DMixerBenchmark"/> (same sizes): the mixer's recurrence (<c>Stream</c>) forward and
/// backward to every parameter, for the lengths whose autograd graph fits in memory, with the FFT forward as the
/// baseline of the run.
/// </summary>
[WarmupCount(1), IterationCount(3)]   // single invocations take seconds; keep the run under half an hour
public class S4DMixerRecurrenceBackwardBenchmark
{
    private S4DSequenceMixer _mixer = null!;
    private Tensor _u = null!;

    /// <summary>Sequence length.</summary>
    [Params(1024, 4096)]
    public long L { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _mixer = new S4DSequenceMixer(S4DMixerBenchmark.Channels, S4DMixerBenchmark.StateDim);
        _u = randn(new[] { S4DMixerBenchmark.Batch, L, S4DMixerBenchmark.Channels }, generator: new Generator(1));
    }

    /// <summary>FFT forward and backward (the baseline of this run).</summary>
    [Benchmark(Baseline = true)]
    public void FftForwardBackward()
    {
        using var scope = NewDisposeScope();
        _mixer.forward(_u).sum().backward();
        _mixer.zero_grad();
    }

    /// <summary>The recurrence over the whole sequence, forward and backward to every parameter.</summary>
    [Benchmark]
    public void RecurrenceForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (y, state) = _mixer.Stream(_u);
        y.sum().backward();
        state.Dispose();
        _mixer.zero_grad();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _u.Dispose();
        _mixer.Dispose();
    }
}
