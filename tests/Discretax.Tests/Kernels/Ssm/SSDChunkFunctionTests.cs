using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// <see cref="SSDChunkFunction"/>, the custom autograd function behind <see cref="SSD.Chunked"/>: outputs, final states
/// and the gradients of every input (x, a, b, c, the initial state) against the literal recurrence differentiated by
/// autograd in float64, with upstream gradients on the output, the final state or both, over lengths that are not whole
/// chunks, shorter than a chunk and spanning several segments, chunk sizes 1, 8 and 64, groups 1, 2 and NH, packed
/// sequences, decay extremes, float32; what it saves; and that training steps leave no tensors behind.
/// </summary>
public class SSDChunkFunctionTests
{
    private static readonly string[] Names = { "x", "a", "b", "c", "initialState" };

    /// <summary>Inputs as a Mamba2 layer gives them: a = -softplus(normal) / 2, b and c of scale 1/2.</summary>
    private static Tensor[] Inputs(ulong seed, long length, long groups = 2, long bsz = 2, long nh = 4, long p = 5,
        long n = 6, long states = 0)
    {
        var gen = new Generator(seed);
        var x = randn(new[] { bsz, nh, length, p }, dtype: ScalarType.Float64, generator: gen);
        var a = -nn.functional.softplus(randn(new[] { bsz, nh, length }, dtype: ScalarType.Float64, generator: gen)) * 0.5;
        var b = randn(new[] { bsz, groups, length, n }, dtype: ScalarType.Float64, generator: gen) * 0.5;
        var c = randn(new[] { bsz, groups, length, n }, dtype: ScalarType.Float64, generator: gen) * 0.5;
        var s0 = randn(new[] { states > 0 ? states : bsz, nh, p, n }, dtype: ScalarType.Float64, generator: gen) * 0.5;
        return new[] { x, a, b, c, s0 };
    }

    /// <summary>Which outputs the loss reads.</summary>
    public enum Loss { Both, OutputOnly, StateOnly }

    /// <summary>
    /// The results and the gradients of <c>(y * wy).sum() + (S * ws).sum()</c> (or one of the two terms) with respect
    /// to every input (a null gradient as zeros); <paramref name="withState"/> false runs without an initial state.
    /// </summary>
    private static (Tensor Y, Tensor S, Tensor[] Grads) Run(Tensor[] inputs, bool withState, Loss loss,
        Func<Tensor[], Tensor?, (Tensor, Tensor)> kernel, ScalarType? dtype = null, ulong seed = 98)
    {
        var leaves = inputs.Select(t => (dtype is null ? t : t.to(dtype.Value)).detach().clone().requires_grad_()).ToArray();
        var (y, s) = kernel(leaves, withState ? leaves[4] : null);
        var gen = new Generator(seed);
        var wy = randn(y.shape, dtype: ScalarType.Float64, generator: gen).to(y.dtype);
        var ws = randn(s.shape, dtype: ScalarType.Float64, generator: gen).to(s.dtype);
        var terms = loss switch
        {
            Loss.OutputOnly => (y * wy).sum(),
            Loss.StateOnly => (s * ws).sum(),
            _ => (y * wy).sum() + (s * ws).sum(),
        };
        terms.backward();
        var grads = leaves.Take(withState ? 5 : 4).Select(t => t.grad is null ? zeros_like(t) : t.grad.to(ScalarType.Float64)).ToArray();
        return (y.detach().to(ScalarType.Float64), s.detach().to(ScalarType.Float64), grads);
    }

    private static (Tensor, Tensor) Chunked(Tensor[] t, Tensor? s0, int chunk) => SSD.Chunked(t[0], t[1], t[2], t[3], chunk, s0);

    private static (Tensor, Tensor) Recurrent(Tensor[] t, Tensor? s0) => SSD.Recurrent(t[0], t[1], t[2], t[3], s0);

    private static void Agree((Tensor Y, Tensor S, Tensor[] Grads) actual, (Tensor Y, Tensor S, Tensor[] Grads) reference,
        double outputTolerance, double gradTolerance, string because)
    {
        TestUtil.MaxAbsDiff(actual.Y, reference.Y).Should().BeLessThan(outputTolerance, $"output, {because}");
        TestUtil.MaxAbsDiff(actual.S, reference.S).Should().BeLessThan(outputTolerance, $"final state, {because}");
        actual.Grads.Length.Should().Be(reference.Grads.Length);
        for (int i = 0; i < actual.Grads.Length; i++)
        {
            actual.Grads[i].shape.Should().Equal(reference.Grads[i].shape, Names[i]);
            TestUtil.MaxAbsDiff(actual.Grads[i], reference.Grads[i]).Should().BeLessThan(gradTolerance, $"gradient wrt {Names[i]}, {because}");
        }
    }

    [Theory]
    [InlineData(5, 8, 2, true)]       // L < C: one chunk of L steps
    [InlineData(37, 8, 2, true)]      // not a whole number of chunks
    [InlineData(37, 8, 1, false)]     // one group for all heads, no initial state
    [InlineData(23, 1, 4, true)]      // chunk 1; a group per head
    [InlineData(150, 64, 2, true)]    // two whole chunks and a partial one
    [InlineData(128, 64, 4, false)]
    public void OutputsStatesAndEveryGradientEqualTheRecurrenceInFloat64(long length, int chunk, long groups, bool withState)
    {
        using var scope = NewDisposeScope();
        var x = Inputs(1100 + (ulong)(length * 10 + chunk + groups), length, groups);
        var actual = Run(x, withState, Loss.Both, (t, s0) => Chunked(t, s0, chunk));
        var reference = Run(x, withState, Loss.Both, Recurrent);
        foreach (var gr in reference.Grads) gr.abs().max().item<double>().Should().BeGreaterThan(1e-3, "the gradients are not trivially zero");
        // float64, exact algebra in a different order: outputs 1e-10, gradients (longer sums) 1e-9.
        Agree(actual, reference, 1e-10, 1e-9, $"L = {length}, C = {chunk}, G = {groups}");
    }

    /// <summary>
    /// The tensor path (the one CUDA runs; on CPU the compiled kernel is the default and every other test here runs it)
    /// on the same kind of cases, and both paths at P = N = 64 with chunk 64 (every vector tile of the compiled kernel full).
    /// </summary>
    [Theory]
    [InlineData(37, 8, 2, true, 5L, 3L, false)]
    [InlineData(23, 1, 4, true, 5L, 3L, false)]
    [InlineData(150, 64, 2, true, 5L, 3L, false)]
    [InlineData(37, 8, 1, false, 5L, 3L, false)]
    [InlineData(150, 64, 2, true, 64L, 64L, false)]
    [InlineData(150, 64, 2, true, 64L, 64L, true)]
    [InlineData(150, 64, 1, true, 64L, 64L, true)]
    public void BothPathsEqualTheRecurrenceInFloat64(long length, int chunk, long groups, bool withState, long p, long n, bool compiled)
    {
        using var scope = NewDisposeScope();
        var x = Inputs(1100 + (ulong)(length * 10 + chunk + groups), length, groups, bsz: 1, p: p, n: n);
        var path = compiled ? KernelPath.Auto : KernelPath.Tensor;
        var actual = Run(x, withState, Loss.Both, (t, s0) => SSD.ChunkedOnPath(t[0], t[1], t[2], t[3], chunk, s0, path));
        var reference = Run(x, withState, Loss.Both, Recurrent);
        Agree(actual, reference, 1e-10, 1e-9, $"L = {length}, C = {chunk}, G = {groups}, P = {p}, N = {n}, compiled = {compiled}");
    }

    [Theory]
    [InlineData(Loss.OutputOnly, 8)]
    [InlineData(Loss.StateOnly, 8)]
    [InlineData(Loss.OutputOnly, 64)]
    [InlineData(Loss.StateOnly, 1)]
    public void ALossOnOneOutputOnlyGivesTheRecurrencesGradients(Loss loss, int chunk)
    {
        // The other output's incoming gradient is undefined: it counts as zero.
        using var scope = NewDisposeScope();
        var x = Inputs(2100 + (ulong)chunk, 45);
        var actual = Run(x, true, loss, (t, s0) => Chunked(t, s0, chunk));
        var reference = Run(x, true, loss, Recurrent);
        Agree(actual, reference, 1e-10, 1e-9, $"{loss}, C = {chunk}");
        if (loss == Loss.StateOnly)
            actual.Grads[3].abs().max().item<double>().Should().Be(0, "c reaches only the output");
    }

    [Fact]
    public void ASequenceOverSeveralSegmentsEqualsTheRecurrence()
    {
        // 2100 steps with chunks of 8: segments of 1024 steps, so three segments carry the state and its gradient.
        using var scope = NewDisposeScope();
        var x = Inputs(3100, 2100, groups: 1, bsz: 1, nh: 2, p: 3, n: 4);
        var actual = Run(x, true, Loss.Both, (t, s0) => Chunked(t, s0, 8));
        var reference = Run(x, true, Loss.Both, Recurrent);
        Agree(actual, reference, 1e-10, 1e-9, "L = 2100, C = 8");
    }

    [Fact]
    public void ExtremeDecaysKeepFiniteExactGradients()
    {
        // a = -20 (underflow within a chunk), a = -3000 at a chunk start and a = 0 runs mixed, in chunks of 8 and 64.
        using var scope = NewDisposeScope();
        var x = Inputs(4100, 70);
        var a = x[1].clone();
        a.narrow(2, 16, 8).fill_(-20.0);
        a.narrow(2, 48, 10).fill_(0.0);
        a[TensorIndex.Colon, TensorIndex.Colon, 32] = -3000.0;
        x[1] = a;
        var reference = Run(x, true, Loss.Both, Recurrent);
        foreach (var chunk in new[] { 8, 64 })
        {
            var actual = Run(x, true, Loss.Both, (t, s0) => Chunked(t, s0, chunk));
            foreach (var gr in actual.Grads) gr.isfinite().all().item<bool>().Should().BeTrue();
            Agree(actual, reference, 1e-10, 1e-9, $"extreme decays, C = {chunk}");
        }
    }

    [Theory]
    [InlineData(100, 16)]
    [InlineData(200, 64)]
    public void Float32IsWithinItsRoundingOfTheFloat64Recurrence(long length, int chunk)
    {
        using var scope = NewDisposeScope();
        var x = Inputs(5100 + (ulong)length, length, p: 16, n: 16);
        var actual = Run(x, true, Loss.Both, (t, s0) => Chunked(t, s0, chunk), ScalarType.Float32);
        var reference = Run(x, true, Loss.Both, Recurrent);
        // float32 rounding through a few hundred steps: relative RMS 1e-5 for the results, 1e-4 for the gradients.
        TestUtil.RelRms(actual.Y, reference.Y).Should().BeLessThan(1e-5);
        TestUtil.RelRms(actual.S, reference.S).Should().BeLessThan(1e-5);
        for (int i = 0; i < 5; i++)
            TestUtil.RelRms(actual.Grads[i], reference.Grads[i]).Should().BeLessThan(1e-4, $"gradient wrt {Names[i]}");
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(4, false)]
    [InlineData(64, true)]
    public void PackedSequencesGiveTheGradientsOfEachSequenceAlone(int chunk, bool withState)
    {
        // Sequences [0, 6), [6, 13), [13, 30) in one row, against the packed recurrence (reset at every boundary).
        using var scope = NewDisposeScope();
        var x = Inputs(6100 + (ulong)chunk, 30, bsz: 1, states: 3);
        var cu = tensor(new long[] { 0, 6, 13, 30 });
        var actual = Run(x, withState, Loss.Both, (t, s0) => SSD.Chunked(t[0], t[1], t[2], t[3], chunk, s0, cu));
        var reference = Run(x, withState, Loss.Both, (t, s0) => SSD.Recurrent(t[0], t[1], t[2], t[3], s0, cu));
        Agree(actual, reference, 1e-10, 1e-9, $"packed, C = {chunk}");
    }

    [Fact]
    public void PackedSequencesOverSeveralSegmentsGiveTheRecurrencesGradients()
    {
        // 1500 + 700 steps in chunks of 8: a sequence boundary inside the second segment of 1024 steps.
        using var scope = NewDisposeScope();
        var x = Inputs(6200, 2200, groups: 1, bsz: 1, nh: 2, p: 3, n: 4, states: 2);
        var cu = tensor(new long[] { 0, 1500, 2200 });
        var actual = Run(x, true, Loss.Both, (t, s0) => SSD.Chunked(t[0], t[1], t[2], t[3], 8, s0, cu));
        var reference = Run(x, true, Loss.Both, (t, s0) => SSD.Recurrent(t[0], t[1], t[2], t[3], s0, cu));
        Agree(actual, reference, 1e-10, 1e-9, "packed over segments");
    }

    [Fact]
    public void OnlyTheInputsAndTheChunkEnteringStatesAreSaved()
    {
        // L = 4096, C = 64, one head: x, a, b, c and one P x N state per chunk, exactly; far below a single C x C
        // matrix per chunk (L C = 262144 elements) that an autograd graph would keep.
        using var scope = NewDisposeScope();
        const long L = 4096, C = 64, P = 8, N = 8;
        var x = Inputs(7100, L, groups: 1, bsz: 1, nh: 1, p: P, n: N).Select(t => t.requires_grad_()).ToArray();
        var (y, _) = SSD.Chunked(x[0], x[1], x[2], x[3], (int)C, x[4]);
        long expected = L * P + L + 2 * L * N + L / C * P * N;
        SSDChunkFunction.LastSavedElements.Should().Be(expected);
        expected.Should().BeLessThan(L * C);
        y.sum().backward();
        x[0].grad.Should().NotBeNull();
    }

    [Fact]
    public void WithoutGradientsNothingIsSaved()
    {
        using var scope = NewDisposeScope();
        var x = Inputs(7200, 100, bsz: 1);
        SSDChunkFunction.LastSavedElements = -1;
        SSD.Chunked(x[0], x[1], x[2], x[3], 16, x[4]);
        using (no_grad())
        {
            var leaves = x.Select(t => t.clone().requires_grad_()).ToArray();
            SSD.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], 16, leaves[4]);
        }
        SSDChunkFunction.LastSavedElements.Should().Be(-1, "the forward ran alone both times");
    }
}

/// <summary>
/// Training steps through <see cref="SSDChunkFunction"/> without a dispose scope (as the shared
/// <c>AutogradMemoryTests</c> check the other functions): the live tensor wrappers of this thread must not grow.
/// </summary>
[Collection(nameof(TensorCounterCollection))]
public class SSDChunkFunctionMemoryTests
{
    private static long Live()
    {
        var s = DisposeScopeManager.Statistics;
        return s.ThreadTotalLiveCount + s.CreatedOutsideScopeCount - s.DisposedOutsideScopeCount;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TrainingStepsWithoutAScopeDoNotGrowTheLiveTensors(bool packed)
    {
        var g = new Generator(4444);
        var leaves = new[]
        {
            randn(new long[] { 1, 2, 20, 3 }, dtype: ScalarType.Float64, generator: g),
            -rand(new long[] { 1, 2, 20 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 1, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 1, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { packed ? 2 : 1, 2, 3, 4 }, dtype: ScalarType.Float64, generator: g),
        }.Select(t => t.requires_grad_(true)).ToArray();
        var cu = packed ? tensor(new long[] { 0, 9, 20 }) : null;

        void Step(int i)
        {
            var (y, s) = SSD.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], 8, leaves[4], cu);
            // Alternately both outputs and the output alone (the final state's incoming gradient undefined).
            var loss = i % 2 == 0 ? y.sum() + s.sum() : y.sum();
            loss.backward();
            loss.Dispose();
            y.Dispose();
            s.Dispose();
        }

        for (int i = 0; i < 6; i++) Step(i);   // warm-up (lazy statics, the first parked gradients)
        long before = Live();
        const int steps = 200;
        for (int i = 0; i < steps; i++) Step(i);
        long growth = Live() - before;
        // Bound: 0 per step; a constant handful may wait for the next call (the last backward's gradients).
        growth.Should().BeLessThan(20, $"{growth} live tensor wrappers more after {steps} steps");
        foreach (var t in leaves) t.Dispose();
        cu?.Dispose();
    }
}
