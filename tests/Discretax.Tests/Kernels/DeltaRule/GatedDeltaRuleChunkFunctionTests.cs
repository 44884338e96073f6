using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// <see cref="GatedDeltaRuleChunkFunction"/>, the custom autograd function behind <see cref="GatedDeltaRule.Chunked"/>:
/// outputs, final states and the gradients of every input (q, k, v, g, beta, the initial state) against the literal
/// recurrence differentiated by autograd in float64, with upstream gradients on the output, the final state or both,
/// over lengths that are not whole chunks, shorter than a chunk and spanning several segments, chunk sizes 1, 8 and
/// 64, packed sequences, float32; what it saves; and that training steps leave no tensors behind.
/// </summary>
public class GatedDeltaRuleChunkFunctionTests
{
    private static readonly string[] Names = { "q", "k", "v", "g", "beta", "initialState" };

    /// <summary>Inputs as a Gated DeltaNet layer gives them: unit keys, beta in (0, 1), g = logsigmoid(normal + 2).</summary>
    private static Tensor[] Inputs(ulong seed, long length, long b = 2, long nh = 2, long dk = 8, long dv = 6, long states = 0)
    {
        var gen = new Generator(seed);
        var q = randn(new[] { b, nh, length, dk }, dtype: ScalarType.Float64, generator: gen);
        var kRaw = randn(new[] { b, nh, length, dk }, dtype: ScalarType.Float64, generator: gen);
        var k = kRaw / kRaw.norm(-1, keepdim: true);
        var v = randn(new[] { b, nh, length, dv }, dtype: ScalarType.Float64, generator: gen);
        var g = nn.functional.logsigmoid(randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: gen) + 2);
        var beta = randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: gen).sigmoid();
        var s0 = randn(new[] { states > 0 ? states : b, nh, dk, dv }, dtype: ScalarType.Float64, generator: gen) * 0.5;
        return new[] { q, k, v, g, beta, s0 };
    }

    /// <summary>Which outputs the loss reads.</summary>
    public enum Loss { Both, OutputOnly, StateOnly }

    /// <summary>
    /// The results and the gradients of <c>(o * wo).sum() + (S * ws).sum()</c> (or one of the two terms) with respect
    /// to every input (a null gradient, an input the loss does not reach, as zeros); <paramref name="withState"/> false
    /// runs without an initial state (its gradient is then not computed).
    /// </summary>
    private static (Tensor O, Tensor S, Tensor[] Grads) Run(Tensor[] inputs, bool withState, Loss loss,
        Func<Tensor[], Tensor?, (Tensor, Tensor)> kernel, ScalarType? dtype = null, ulong seed = 99)
    {
        var leaves = inputs.Select(t => (dtype is null ? t : t.to(dtype.Value)).detach().clone().requires_grad_()).ToArray();
        var (o, s) = kernel(leaves, withState ? leaves[5] : null);
        var gen = new Generator(seed);
        var wo = randn(o.shape, dtype: ScalarType.Float64, generator: gen).to(o.dtype);
        var ws = randn(s.shape, dtype: ScalarType.Float64, generator: gen).to(s.dtype);
        var terms = loss switch
        {
            Loss.OutputOnly => (o * wo).sum(),
            Loss.StateOnly => (s * ws).sum(),
            _ => (o * wo).sum() + (s * ws).sum(),
        };
        terms.backward();
        var grads = leaves.Take(withState ? 6 : 5).Select(t => t.grad is null ? zeros_like(t) : t.grad.to(ScalarType.Float64)).ToArray();
        return (o.detach().to(ScalarType.Float64), s.detach().to(ScalarType.Float64), grads);
    }

    private static (Tensor, Tensor) Chunked(Tensor[] x, Tensor? s0, int chunk) => GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], chunk, s0);

    private static (Tensor, Tensor) Recurrent(Tensor[] x, Tensor? s0) => GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4], s0);

    private static void Agree((Tensor O, Tensor S, Tensor[] Grads) actual, (Tensor O, Tensor S, Tensor[] Grads) reference,
        double outputTolerance, double gradTolerance, string because)
    {
        TestUtil.MaxAbsDiff(actual.O, reference.O).Should().BeLessThan(outputTolerance, $"output, {because}");
        TestUtil.MaxAbsDiff(actual.S, reference.S).Should().BeLessThan(outputTolerance, $"final state, {because}");
        actual.Grads.Length.Should().Be(reference.Grads.Length);
        for (int i = 0; i < actual.Grads.Length; i++)
        {
            actual.Grads[i].shape.Should().Equal(reference.Grads[i].shape, Names[i]);
            TestUtil.MaxAbsDiff(actual.Grads[i], reference.Grads[i]).Should().BeLessThan(gradTolerance, $"gradient wrt {Names[i]}, {because}");
        }
    }

    [Theory]
    [InlineData(5, 8, true)]       // L < C: one padded chunk
    [InlineData(37, 8, true)]      // not a whole number of chunks
    [InlineData(37, 8, false)]     // without an initial state
    [InlineData(23, 1, true)]      // chunk 1: every step its own chunk
    [InlineData(130, 64, true)]    // two whole chunks and a partial one
    [InlineData(64, 64, false)]
    public void OutputsStatesAndEveryGradientEqualTheRecurrenceInFloat64(long length, int chunk, bool withState)
    {
        using var scope = NewDisposeScope();
        var x = Inputs(1000 + (ulong)(length * 10 + chunk), length);
        var actual = Run(x, withState, Loss.Both, (t, s0) => Chunked(t, s0, chunk));
        var reference = Run(x, withState, Loss.Both, Recurrent);
        foreach (var gr in reference.Grads) gr.abs().max().item<double>().Should().BeGreaterThan(1e-3, "the gradients are not trivially zero");
        // float64, exact algebra in a different order: outputs 1e-10, gradients (longer sums) 1e-8.
        Agree(actual, reference, 1e-10, 1e-8, $"L = {length}, C = {chunk}");
    }

    /// <summary>
    /// The tensor path (the one CUDA runs; on CPU the compiled kernel is the default and every other test here runs it)
    /// on the same cases, and both paths at head size 64 with chunk 64 (every vector tile of the compiled kernel full).
    /// </summary>
    [Theory]
    [InlineData(37, 8, true, 8L, false)]
    [InlineData(23, 1, true, 8L, false)]
    [InlineData(130, 64, true, 8L, false)]
    [InlineData(64, 64, false, 8L, false)]
    [InlineData(150, 64, true, 64L, false)]
    [InlineData(150, 64, true, 64L, true)]
    public void BothPathsEqualTheRecurrenceInFloat64(long length, int chunk, bool withState, long d, bool compiled)
    {
        using var scope = NewDisposeScope();
        var x = Inputs(1000 + (ulong)(length * 10 + chunk), length, b: 1, dk: d, dv: d);
        var path = compiled ? KernelPath.Auto : KernelPath.Tensor;
        var actual = Run(x, withState, Loss.Both, (t, s0) => GatedDeltaRule.ChunkedOnPath(t[0], t[1], t[2], t[3], t[4], chunk, s0, path));
        var reference = Run(x, withState, Loss.Both, Recurrent);
        Agree(actual, reference, 1e-10, 1e-8, $"L = {length}, C = {chunk}, D = {d}, compiled = {compiled}");
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
        var x = Inputs(2000 + (ulong)chunk, 45);
        var actual = Run(x, true, loss, (t, s0) => Chunked(t, s0, chunk));
        var reference = Run(x, true, loss, Recurrent);
        Agree(actual, reference, 1e-10, 1e-8, $"{loss}, C = {chunk}");
        if (loss == Loss.StateOnly)
            actual.Grads[0].abs().max().item<double>().Should().Be(0, "q reaches only the output");
    }

    [Fact]
    public void ASequenceOverSeveralSegmentsEqualsTheRecurrence()
    {
        // 2100 steps with chunks of 8: segments of 1024 steps, so three segments carry the state (forward) and its
        // gradient (backward) across. One small head keeps the float64 recurrence fast.
        using var scope = NewDisposeScope();
        var x = Inputs(3000, 2100, b: 1, nh: 1, dk: 4, dv: 4);
        var actual = Run(x, true, Loss.Both, (t, s0) => Chunked(t, s0, 8));
        var reference = Run(x, true, Loss.Both, Recurrent);
        Agree(actual, reference, 1e-10, 1e-8, "L = 2100, C = 8");
    }

    [Fact]
    public void ExtremeDecaysKeepFiniteExactGradients()
    {
        // g = -inf (forget), g = -30 (underflow within a chunk) and g = 0 runs mixed, in chunks of 8 and 64.
        using var scope = NewDisposeScope();
        var x = Inputs(4000, 70);
        var g = x[3].clone();
        foreach (var t in new long[] { 3, 8, 9, 40 }) g[TensorIndex.Colon, TensorIndex.Colon, t] = double.NegativeInfinity;
        g.narrow(2, 16, 8).fill_(-30.0);
        g.narrow(2, 48, 10).fill_(0.0);
        x[3] = g;
        var reference = Run(x, true, Loss.Both, Recurrent);
        foreach (var chunk in new[] { 8, 64 })
        {
            var actual = Run(x, true, Loss.Both, (t, s0) => Chunked(t, s0, chunk));
            foreach (var gr in actual.Grads) gr.isfinite().all().item<bool>().Should().BeTrue();
            Agree(actual, reference, 1e-10, 1e-8, $"extreme decays, C = {chunk}");
        }
    }

    [Theory]
    [InlineData(100, 16)]
    [InlineData(200, 64)]
    public void Float32IsWithinItsRoundingOfTheFloat64Recurrence(long length, int chunk)
    {
        using var scope = NewDisposeScope();
        var x = Inputs(5000 + (ulong)length, length, dk: 16, dv: 16);
        var actual = Run(x, true, Loss.Both, (t, s0) => Chunked(t, s0, chunk), ScalarType.Float32);
        var reference = Run(x, true, Loss.Both, Recurrent);
        // float32 rounding through a few hundred steps of products: relative RMS 1e-5 for the results, 1e-4 for the
        // gradients (longer sums).
        TestUtil.RelRms(actual.O, reference.O).Should().BeLessThan(1e-5);
        TestUtil.RelRms(actual.S, reference.S).Should().BeLessThan(1e-5);
        for (int i = 0; i < 6; i++)
            TestUtil.RelRms(actual.Grads[i], reference.Grads[i]).Should().BeLessThan(1e-4, $"gradient wrt {Names[i]}");
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(4, false)]
    [InlineData(64, true)]
    public void PackedSequencesGiveTheGradientsOfEachSequenceAlone(int chunk, bool withState)
    {
        // Sequences [0, 6), [6, 13), [13, 30) in one row: through the function with the state reset at every sequence's
        // first chunk, against the packed recurrence (the same loop reset at every boundary) in float64.
        using var scope = NewDisposeScope();
        var x = Inputs(6000 + (ulong)chunk, 30, b: 1, states: 3);
        var cu = tensor(new long[] { 0, 6, 13, 30 });
        var actual = Run(x, withState, Loss.Both, (t, s0) => GatedDeltaRule.Chunked(t[0], t[1], t[2], t[3], t[4], chunk, s0, cu));
        var reference = Run(x, withState, Loss.Both, (t, s0) => GatedDeltaRule.Recurrent(t[0], t[1], t[2], t[3], t[4], s0, cu));
        Agree(actual, reference, 1e-10, 1e-8, $"packed, C = {chunk}");
    }

    [Fact]
    public void PackedSequencesOverSeveralSegmentsGiveTheRecurrencesGradients()
    {
        // 1500 + 700 steps in chunks of 8: a sequence boundary inside the second segment of 1024 steps.
        using var scope = NewDisposeScope();
        var x = Inputs(6100, 2200, b: 1, nh: 1, dk: 4, dv: 4, states: 2);
        var cu = tensor(new long[] { 0, 1500, 2200 });
        var actual = Run(x, true, Loss.Both, (t, s0) => GatedDeltaRule.Chunked(t[0], t[1], t[2], t[3], t[4], 8, s0, cu));
        var reference = Run(x, true, Loss.Both, (t, s0) => GatedDeltaRule.Recurrent(t[0], t[1], t[2], t[3], t[4], s0, cu));
        Agree(actual, reference, 1e-10, 1e-8, "packed over segments");
    }

    [Fact]
    public void OnlyTheInputsAndTheChunkEnteringStatesAreSaved()
    {
        // L = 4096, C = 64: the function saves q, k, v, g, beta and one Dk x Dv state per chunk, exactly, which is far
        // below a single C x C matrix per chunk (L C = 262144 elements per head) that an autograd graph would keep.
        using var scope = NewDisposeScope();
        const long L = 4096, C = 64, Dk = 8, Dv = 8;
        var x = Inputs(7000, L, b: 1, nh: 1, dk: Dk, dv: Dv).Select(t => t.requires_grad_()).ToArray();
        var (o, _) = GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], (int)C, x[5]);
        long expected = 2 * L * Dk + L * Dv + 2 * L + L / C * Dk * Dv;
        GatedDeltaRuleChunkFunction.LastSavedElements.Should().Be(expected);
        expected.Should().BeLessThan(L * C);
        o.sum().backward();
        x[0].grad.Should().NotBeNull();
    }

    [Fact]
    public void WithoutGradientsNothingIsSaved()
    {
        using var scope = NewDisposeScope();
        var x = Inputs(7100, 100, b: 1, nh: 1);
        GatedDeltaRuleChunkFunction.LastSavedElements = -1;
        GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], 16, x[5]);
        using (no_grad())
        {
            var leaves = x.Select(t => t.clone().requires_grad_()).ToArray();
            GatedDeltaRule.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 16, leaves[5]);
        }
        GatedDeltaRuleChunkFunction.LastSavedElements.Should().Be(-1, "the forward ran alone both times");
    }
}

/// <summary>
/// Training steps through <see cref="GatedDeltaRuleChunkFunction"/> without a dispose scope (as the shared
/// <c>AutogradMemoryTests</c> check the other functions): the live tensor wrappers of this thread must not grow.
/// </summary>
[Collection(nameof(TensorCounterCollection))]
public class GatedDeltaRuleChunkFunctionMemoryTests
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
        var g = new Generator(4343);
        var leaves = new[]
        {
            randn(new long[] { 1, 2, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20, 4 }, dtype: ScalarType.Float64, generator: g) * 0.5,
            randn(new long[] { 1, 2, 20, 3 }, dtype: ScalarType.Float64, generator: g),
            -rand(new long[] { 1, 2, 20 }, dtype: ScalarType.Float64, generator: g),
            rand(new long[] { 1, 2, 20 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { packed ? 2 : 1, 2, 4, 3 }, dtype: ScalarType.Float64, generator: g),
        }.Select(t => t.requires_grad_(true)).ToArray();
        var cu = packed ? tensor(new long[] { 0, 9, 20 }) : null;

        void Step(int i)
        {
            var (o, s) = GatedDeltaRule.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 8, leaves[5], cu);
            // Alternately both outputs and the output alone (the final state's incoming gradient undefined).
            var loss = i % 2 == 0 ? o.sum() + s.sum() : o.sum();
            loss.backward();
            loss.Dispose();
            o.Dispose();
            s.Dispose();
        }

        for (int i = 0; i < 6; i++) Step(i);   // warm-up (lazy statics, the first parked gradients)
        long before = Live();
        const int steps = 300;
        for (int i = 0; i < steps; i++) Step(i);
        long growth = Live() - before;
        // Bound: 0 per step; a constant handful may wait for the next call (the last backward's gradients).
        growth.Should().BeLessThan(20, $"{growth} live tensor wrappers more after {steps} steps");
        foreach (var t in leaves) t.Dispose();
        cu?.Dispose();
    }
}
