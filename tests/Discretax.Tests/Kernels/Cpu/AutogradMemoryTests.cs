using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>Tests that read the thread's global tensor counters: never run in parallel with others.</summary>
[CollectionDefinition(nameof(TensorCounterCollection), DisableParallelization = true)]
public sealed class TensorCounterCollection
{
}

/// <summary>
/// Forward+backward of every custom autograd function of the kernels, many times WITHOUT a dispose scope: the number
/// of live tensor wrappers created on this thread must not grow (a growth means gradient buffers, saved tensors or
/// grad_output temporaries are left to the garbage collector, which held DeltaNet training at 1.35-1.57 GB RSS).
/// </summary>
[Collection(nameof(TensorCounterCollection))]
public class AutogradMemoryTests
{
    /// <summary>Live wrappers created on this thread: inside scopes and outside, minus those disposed (the finalizer thread's disposals do not count here).</summary>
    private static long Live()
    {
        var s = DisposeScopeManager.Statistics;
        return s.ThreadTotalLiveCount + s.CreatedOutsideScopeCount - s.DisposedOutsideScopeCount;
    }

    public static IEnumerable<object[]> Functions()
    {
        yield return new object[] { "LinearScanFunction" };
        yield return new object[] { "BlockScan2x2Function" };
        yield return new object[] { "UnitLowerInverse" };
        yield return new object[] { "FftConvolutionFunction" };
    }

    [Theory]
    [MemberData(nameof(Functions))]
    public void ForwardBackwardWithoutAScopeDoesNotGrowTheLiveTensors(string function)
    {
        var g = new Generator(4242);
        Tensor[] leaves;
        Func<Tensor[], Tensor[]> run;   // returns what the step produced (all disposed by the step)
        switch (function)
        {
            case "LinearScanFunction":
                leaves = new[] { (rand(new long[] { 16 }, dtype: ScalarType.Float64, generator: g) * 0.9).requires_grad_(true),
                    randn(new long[] { 2, 20, 16 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true),
                    randn(new long[] { 2, 16 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true) };
                run = t => { var (o, f) = LinearScan.Scan(t[0], t[1], t[2]); return new[] { o, f }; };
                break;
            case "BlockScan2x2Function":
                leaves = new[] { (rand(new long[] { 8, 2, 2 }, dtype: ScalarType.Float64, generator: g) * 0.5).requires_grad_(true),
                    randn(new long[] { 2, 20, 8, 2 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true),
                    randn(new long[] { 2, 8, 2 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true) };
                run = t => { var (o, f) = BlockScan2x2.Scan(t[0], t[1], t[2]); return new[] { o, f }; };
                break;
            case "UnitLowerInverse":
                leaves = new[] { (randn(new long[] { 3, 8, 8 }, dtype: ScalarType.Float64, generator: g) * 0.3).requires_grad_(true) };
                run = t => new[] { UnitLowerInverse.Invert(t[0]) };
                break;
            default:
                leaves = new[] { randn(new long[] { 2, 32, 4 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true),
                    randn(new long[] { 4, 32 }, dtype: ScalarType.Float64, generator: g).requires_grad_(true) };
                run = t => new[] { FftConvolution.Causal(t[0], t[1]) };
                break;
        }

        void Step()
        {
            var produced = run(leaves);
            var loss = produced[0].sum();
            loss.backward();
            loss.Dispose();
            foreach (var t in produced) t.Dispose();
        }

        for (int i = 0; i < 5; i++) Step();   // warm-up (lazy statics, first parked gradients)
        long before = Live();
        const int steps = 50;
        for (int i = 0; i < steps; i++) Step();
        long growth = Live() - before;
        // Bound: 0 per step. A constant handful may wait for the next call (the last backward's gradients).
        growth.Should().BeLessThan(steps / 2, $"{function}: {growth} live tensor wrappers more after {steps} steps");
        foreach (var t in leaves) t.Dispose();
    }
}
