using Discretax.Kernels;
using FluentAssertions;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// The custom autograd function of <see cref="DeltaRule.Chunked"/> (hand-written recomputing backward) on both of its
/// implementations, the compiled CPU kernel and the tensor path, against the literal recurrence
/// (<see cref="DeltaRule.Recurrent"/>) differentiated by autograd in float64: outputs, final states and the gradient of
/// every input (q, k, v, beta, initial state) under random upstream gradients on the output and the final state.
/// </summary>
public class DeltaRuleChunkFunctionTests
{
    /// <summary>true: the compiled CPU kernel (the default on CPU); false: the tensor path (the one CUDA runs).</summary>
    public static IEnumerable<object[]> Paths() => new[] { new object[] { true }, new object[] { false } };

    private static KernelPath PathOf(bool compiled) => compiled ? KernelPath.Auto : KernelPath.Tensor;

    private sealed record Case(Tensor Q, Tensor K, Tensor V, Tensor Beta, Tensor S0);

    private static Case Inputs(ulong seed, long b, long nh, long l, long dk, long dv, ScalarType dtype = ScalarType.Float64)
    {
        var g = new Generator(seed);
        var q = randn(new[] { b, nh, l, dk }, dtype: ScalarType.Float64, generator: g);
        var kRaw = randn(new[] { b, nh, l, dk }, dtype: ScalarType.Float64, generator: g);
        var k = kRaw / kRaw.norm(-1, keepdim: true);
        var v = randn(new[] { b, nh, l, dv }, dtype: ScalarType.Float64, generator: g);
        var beta = randn(new[] { b, nh, l }, dtype: ScalarType.Float64, generator: g).sigmoid();
        var s0 = randn(new[] { b, nh, dk, dv }, dtype: ScalarType.Float64, generator: g) * 0.5;
        return new Case(q.to(dtype), k.to(dtype), v.to(dtype), beta.to(dtype), s0.to(dtype));
    }

    /// <summary>Output, final state and the five input gradients of loss = (o go).sum() + (s gs).sum().</summary>
    private static Tensor[] Run(Case x, Tensor? go, Tensor? gs, bool withState, Func<Tensor, Tensor, Tensor, Tensor, Tensor?, (Tensor, Tensor)> kernel)
    {
        var leaves = new[] { x.Q, x.K, x.V, x.Beta, x.S0 }.Select(t => t.detach().clone().requires_grad_()).ToArray();
        var (o, s) = kernel(leaves[0], leaves[1], leaves[2], leaves[3], withState ? leaves[4] : null);
        Tensor loss = zeros(1, dtype: o.dtype);
        if (go is not null) loss = loss + (o * go.to(o.dtype)).sum();
        if (gs is not null) loss = loss + (s * gs.to(s.dtype)).sum();
        loss.backward();
        var grads = leaves.Select(t => t.grad ?? zeros_like(t)).ToArray();
        return new[] { o.detach(), s.detach() }.Concat(grads).ToArray();
    }

    private static readonly string[] Names = { "output", "final state", "dq", "dk", "dv", "dbeta", "ds0" };

    private static void ShouldMatch(Tensor[] actual, Tensor[] reference, double tolerance, bool withState)
    {
        for (int i = 0; i < actual.Length; i++)
        {
            if (i == 6 && !withState) continue;
            TestUtil.RelRms(actual[i], reference[i]).Should().BeLessThan(tolerance, Names[i]);
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Matches_the_differentiated_recurrence_in_float64(bool compiled)
    {
        // Lengths that are and are not multiples of the chunk, shorter than it, several chunks; odd head sizes (vector tails).
        foreach (var (l, chunk, dk, dv) in new (long, int, long, long)[] { (37, 8, 8, 6), (32, 8, 8, 8), (5, 8, 4, 3), (70, 16, 20, 12), (9, 1, 3, 5) })
        {
            var x = Inputs(11, 2, 2, l, dk, dv);
            var g = new Generator(12);
            var go = randn(new[] { 2L, 2, l, dv }, dtype: ScalarType.Float64, generator: g);
            var gs = randn(new[] { 2L, 2, dk, dv }, dtype: ScalarType.Float64, generator: g);
            foreach (var withState in new[] { true, false })
            {
                var reference = Run(x, go, gs, withState, (q, k, v, b, s0) => DeltaRule.Recurrent(q, k, v, b, s0));
                var actual = Run(x, go, gs, withState, (q, k, v, b, s0) => DeltaRule.ChunkedOnPath(q, k, v, b, chunk, s0, null, PathOf(compiled)));
                // float64 throughout: differences are rounding of differently ordered sums (observed ~1e-15).
                ShouldMatch(actual, reference, 1e-11, withState);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Output_only_and_state_only_losses_match(bool compiled)
    {
        var x = Inputs(21, 1, 3, 45, 8, 8);
        var g = new Generator(22);
        var go = randn(new[] { 1L, 3, 45, 8 }, dtype: ScalarType.Float64, generator: g);
        var gs = randn(new[] { 1L, 3, 8, 8 }, dtype: ScalarType.Float64, generator: g);
        foreach (var (o, s) in new[] { (go, (Tensor?)null), (null, gs) })
        {
            var reference = Run(x, o, s, true, (q, k, v, b, s0) => DeltaRule.Recurrent(q, k, v, b, s0));
            var actual = Run(x, o, s, true, (q, k, v, b, s0) => DeltaRule.ChunkedOnPath(q, k, v, b, 16, s0, null, PathOf(compiled)));
            for (int i = 0; i < actual.Length; i++)
            {
                // A gradient that is exactly zero in the reference (e.g. dq for a state-only loss) must be zero here.
                if (reference[i].abs().max().item<double>() == 0) actual[i].abs().max().item<double>().Should().BeLessThan(1e-14, Names[i]);
                else TestUtil.RelRms(actual[i], reference[i]).Should().BeLessThan(1e-11, Names[i]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Several_segments_and_chunk_64_match(bool compiled)
    {
        // 2100 steps with chunk 64: the tensor path runs three segments of 1024 steps (the state and its gradient
        // carried across), the compiled path one pass; small heads keep the recurrence's autograd graph cheap.
        var x = Inputs(31, 1, 1, 2100, 4, 4);
        var g = new Generator(32);
        var go = randn(new[] { 1L, 1, 2100, 4 }, dtype: ScalarType.Float64, generator: g);
        var gs = randn(new[] { 1L, 1, 4, 4 }, dtype: ScalarType.Float64, generator: g);
        var reference = Run(x, go, gs, true, (q, k, v, b, s0) => DeltaRule.Recurrent(q, k, v, b, s0));
        var actual = Run(x, go, gs, true, (q, k, v, b, s0) => DeltaRule.ChunkedOnPath(q, k, v, b, 64, s0, null, PathOf(compiled)));
        ShouldMatch(actual, reference, 1e-10, true);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Float32_matches_float64_at_head_size_64(bool compiled)
    {
        // The shapes of the benchmarks (Dk = Dv = 64, chunk 64; 150 steps: two full chunks and a padded one).
        var x64 = Inputs(41, 1, 2, 150, 64, 64);
        var x32 = new Case(x64.Q.to(ScalarType.Float32), x64.K.to(ScalarType.Float32), x64.V.to(ScalarType.Float32),
            x64.Beta.to(ScalarType.Float32), x64.S0.to(ScalarType.Float32));
        var g = new Generator(42);
        var go = randn(new[] { 1L, 2, 150, 64 }, dtype: ScalarType.Float64, generator: g);
        var gs = randn(new[] { 1L, 2, 64, 64 }, dtype: ScalarType.Float64, generator: g);
        var reference = Run(x64, go, gs, true, (q, k, v, b, s0) => DeltaRule.Recurrent(q, k, v, b, s0));
        var actual = Run(x32, go, gs, true, (q, k, v, b, s0) => DeltaRule.ChunkedOnPath(q, k, v, b, 64, s0, null, PathOf(compiled)));
        foreach (var t in actual) t.dtype.Should().Be(ScalarType.Float32);
        // float32 rounding over 64-long sums and a unit-triangular inverse: relative RMS ~1e-6 observed; bound 1e-4.
        ShouldMatch(actual, reference, 1e-4, true);
    }

    [Fact]
    public void Compiled_and_tensor_paths_agree_in_float32()
    {
        var x = Inputs(51, 2, 2, 200, 32, 16, ScalarType.Float32);
        var g = new Generator(52);
        var go = randn(new[] { 2L, 2, 200, 16 }, generator: g);
        var gs = randn(new[] { 2L, 2, 32, 16 }, generator: g);
        var compiled = Run(x, go, gs, true, (q, k, v, b, s0) => DeltaRule.ChunkedOnPath(q, k, v, b, 32, s0, null, KernelPath.Auto));
        var tensor = Run(x, go, gs, true, (q, k, v, b, s0) => DeltaRule.ChunkedOnPath(q, k, v, b, 32, s0, null, KernelPath.Tensor));
        // Same math, different summation order in float32: ~1e-7 observed; bound 1e-5.
        ShouldMatch(compiled, tensor, 1e-5, true);
    }

    [Fact]
    public void Saves_only_inputs_and_chunk_entering_states()
    {
        // Saved memory of forward+backward is O(L D + (L / C) Dk Dv): the autograd graph holds the function alone, whose
        // saved tensors are the four inputs and one state per chunk. Measured as the function's saved elements.
        var x = Inputs(61, 1, 2, 512, 16, 16, ScalarType.Float32);
        var leaves = new[] { x.Q, x.K, x.V, x.Beta }.Select(t => t.detach().clone().requires_grad_()).ToArray();
        var (o, s) = DeltaRule.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], 64);
        o.requires_grad.Should().BeTrue();
        long inputs = 2 * 512 * (16 + 16 + 16 + 1), states = 2 * (512 / 64) * 16 * 16;
        DeltaRuleChunkFunction.LastSavedElements.Should().Be(inputs + states);
        (o.sum() + s.sum()).backward();
        leaves.All(t => t.grad is not null).Should().BeTrue();
    }
}

/// <summary>A training loop through the delta rule's function WITHOUT a dispose scope does not grow the live tensors (see AutogradMemoryTests).</summary>
[Collection(nameof(TensorCounterCollection))]
public class DeltaRuleChunkFunctionMemoryTests
{
    private static long Live()
    {
        var s = DisposeScopeManager.Statistics;
        return s.ThreadTotalLiveCount + s.CreatedOutsideScopeCount - s.DisposedOutsideScopeCount;
    }

    /// <summary>
    /// 200 optimizer-free training steps (forward, backward on the output and the final state or on the output alone,
    /// gradient reset) of L = 20 with chunk 8 (a padded last chunk) and an initial state that requires grad, on both paths:
    /// after a warm-up the live tensor wrappers do not grow (bound: fewer than steps / 2; a constant handful may wait for
    /// the next call), so neither do the native buffers they own.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TrainingLoopDoesNotGrowTheLiveTensors(bool compiled)
    {
        var g = new Generator(93);
        var leaves = new[]
        {
            randn(new long[] { 1, 2, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20, 3 }, dtype: ScalarType.Float64, generator: g),
            rand(new long[] { 1, 2, 20 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 4, 3 }, dtype: ScalarType.Float64, generator: g),
        }.Select(t => t.requires_grad_(true)).ToArray();
        var path = compiled ? KernelPath.Auto : KernelPath.Tensor;
        int step = 0;

        void Step()
        {
            var (o, s) = DeltaRule.ChunkedOnPath(leaves[0], leaves[1], leaves[2], leaves[3], 8, leaves[4], null, path);
            var a = o.sum();
            var b = s.sum();
            var loss = step++ % 2 == 0 ? a + b : a * 1.0;   // alternately both outputs and the output alone
            loss.backward();
            foreach (var t in new[] { loss, a, b, o, s }) t.Dispose();
            foreach (var t in leaves)
            {
                t.grad?.Dispose();
                t.grad = null;
            }
        }

        for (int i = 0; i < 5; i++) Step();
        long before = Live();
        const int steps = 200;
        for (int i = 0; i < steps; i++) Step();
        long growth = Live() - before;
        growth.Should().BeLessThan(steps / 2, $"{growth} live tensor wrappers more after {steps} steps");
        foreach (var t in leaves) t.Dispose();
    }
}
