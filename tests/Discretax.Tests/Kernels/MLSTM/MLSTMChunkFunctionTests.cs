using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels.MLSTM;

/// <summary>
/// The custom autograd function behind <see cref="MLSTMKernel.Chunked"/> (MLSTMChunkFunction): its hand-written
/// backward against autograd through the literal recurrence (<see cref="MLSTMKernel.Recurrent"/>) in float64, for
/// every input (q, k, v, both gates, the initial C, n, m) and both outputs (the output and the final state, m included).
/// </summary>
public class MLSTMChunkFunctionTests
{
    private static readonly string[] Names = { "q", "k", "v", "i", "f", "C0", "n0", "m0" };

    private enum Loss { Both, OutputOnly, StateOnly }

    /// <summary>Leaves q, k, v, i, f and (C0, n0, m0) drawn from one seed; f offset by +2 (gate scale 1) as the kernel tests.</summary>
    private static Tensor[] Draw(ulong seed, long b, long nh, long length, long dk, long dv, double gateScale,
        ScalarType dtype = ScalarType.Float64)
    {
        var g = new Generator(seed);
        return new[]
        {
            randn(new[] { b, nh, length, dk }, dtype: dtype, generator: g),
            randn(new[] { b, nh, length, dk }, dtype: dtype, generator: g),
            randn(new[] { b, nh, length, dv }, dtype: dtype, generator: g),
            randn(new[] { b, nh, length }, dtype: dtype, generator: g).mul_(gateScale),
            randn(new[] { b, nh, length }, dtype: dtype, generator: g).mul_(gateScale).add_(gateScale == 1 ? 2.0 : 0.0),
            randn(new[] { b, nh, dk, dv }, dtype: dtype, generator: g),
            randn(new[] { b, nh, dk }, dtype: dtype, generator: g),
            randn(new[] { b, nh }, dtype: dtype, generator: g),
        };
    }

    /// <summary>
    /// Output, final state and the gradients of the leaves (null where a leaf is not used) of
    /// loss = (o * go).sum() + (C * gC).sum() + (n * gn).sum() + (m * gm).sum() with upstream gradients from
    /// <paramref name="seed"/>; the parts of the loss as <paramref name="loss"/> says.
    /// </summary>
    private static (Tensor O, Tensor C, Tensor N, Tensor M, Tensor?[] Grads) Run(bool chunked, Tensor[] leaves, int chunk, bool withState,
        Loss loss, ulong seed, KernelPath path = KernelPath.Auto)
    {
        using var scope = NewDisposeScope();
        var xs = leaves.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
        var init = withState ? new MLSTMKernelState(xs[5], xs[6], xs[7]) : (MLSTMKernelState?)null;
        var (o, s) = chunked
            ? MLSTMKernel.ChunkedOnPath(xs[0], xs[1], xs[2], xs[3], xs[4], chunk, init, 1e-6, path)
            : MLSTMKernel.Recurrent(xs[0], xs[1], xs[2], xs[3], xs[4], init);
        var g = new Generator(seed);
        // Drawn in float64 and cast, so that float32 and float64 runs see the same upstream gradients.
        var go = randn(o.shape, dtype: ScalarType.Float64, generator: g).to(o.dtype);
        var gc = randn(s.C.shape, dtype: ScalarType.Float64, generator: g).to(s.C.dtype);
        var gn = randn(s.N.shape, dtype: ScalarType.Float64, generator: g).to(s.N.dtype);
        var gm = randn(s.M.shape, dtype: ScalarType.Float64, generator: g).to(s.M.dtype);
        var outputPart = (o * go).sum();
        var statePart = (s.C * gc).sum() + (s.N * gn).sum() + (s.M * gm).sum();
        var total = loss switch { Loss.OutputOnly => outputPart, Loss.StateOnly => statePart, _ => outputPart + statePart };
        total.backward();
        var grads = xs.Select(t => t.grad is null ? null : t.grad.detach().clone().MoveToOuterDisposeScope()).ToArray();
        return (o.detach().MoveToOuterDisposeScope(), s.C.detach().MoveToOuterDisposeScope(), s.N.detach().MoveToOuterDisposeScope(),
            s.M.detach().MoveToOuterDisposeScope(), grads);
    }

    /// <summary>max |a - b| / max(1, max |b|).</summary>
    private static double Rel(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        double diff = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
        return diff / Math.Max(1.0, b.to(ScalarType.Float64).abs().max().item<double>());
    }

    private static void AgreeWithRecurrent(Tensor[] leaves, int chunk, bool withState, Loss loss, double tol, ulong seed = 7,
        KernelPath path = KernelPath.Auto)
    {
        using var scope = NewDisposeScope();
        var c = Run(true, leaves, chunk, withState, loss, seed, path);
        var r = Run(false, leaves, chunk, withState, loss, seed);
        Rel(c.O, r.O).Should().BeLessThan(tol, "output");
        Rel(c.C, r.C).Should().BeLessThan(tol, "C");
        Rel(c.N, r.N).Should().BeLessThan(tol, "n");
        Rel(c.M, r.M).Should().BeLessThan(tol, "m");
        int used = withState ? 8 : 5;
        for (int j = 0; j < used; j++)
        {
            if (r.Grads[j] is null)
            {
                // Not reached by the loss (q under a state-only loss): the function may return zeros.
                if (c.Grads[j] is Tensor z) TestUtil.Values(z).Should().OnlyContain(v => v == 0, Names[j]);
                continue;
            }
            c.Grads[j].Should().NotBeNull(Names[j]);
            c.Grads[j]!.isfinite().all().item<bool>().Should().BeTrue(Names[j]);
            Rel(c.Grads[j]!, r.Grads[j]!).Should().BeLessThan(tol, Names[j]);
        }
    }

    public static IEnumerable<object[]> Cases()
    {
        // (length, chunk): L < C, L not a multiple of C, L a multiple, one step per chunk.
        foreach (var (len, chunk) in new[] { (5L, 64), (13L, 8), (64L, 64), (70L, 64), (7L, 1), (24L, 8) })
            foreach (bool withState in new[] { false, true })
                foreach (double scale in new[] { 1.0, 30.0 })
                    yield return new object[] { len, chunk, withState, scale };
    }

    /// <summary>
    /// Outputs, final state and the gradients of every input against autograd through the recurrence, float64, with
    /// random upstream gradients on the output and on C, n and m: tolerance 1e-9 relative to max(1, max |reference|).
    /// Gate scale 30 makes the stabilizer switch between its two terms often (both branches of every maximum).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void GradientsEqualAutogradThroughTheRecurrence(long length, int chunk, bool withState, double gateScale)
    {
        using var scope = NewDisposeScope();
        var leaves = Draw((ulong)(1000 + length * 10 + chunk), 2, 2, length, 4, 3, gateScale);
        AgreeWithRecurrent(leaves, chunk, withState, Loss.Both, 1e-9);
    }

    /// <summary>
    /// The same cases on the tensor path (the one CUDA runs; on CPU the compiled kernel is the default and the cases above
    /// test it): against the recurrence in float64, 1e-9.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void TensorPathGradientsEqualAutogradThroughTheRecurrence(long length, int chunk, bool withState, double gateScale)
    {
        using var scope = NewDisposeScope();
        var leaves = Draw((ulong)(1000 + length * 10 + chunk), 2, 2, length, 4, 3, gateScale);
        AgreeWithRecurrent(leaves, chunk, withState, Loss.Both, 1e-9, path: KernelPath.Tensor);
    }

    /// <summary>
    /// Head size 64 and chunk 64 (the benchmarks' shapes; every vector tile of the compiled kernel full), 150 steps,
    /// both paths against the recurrence in float64, 1e-9.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void HeadSize64EqualsTheRecurrenceOnBothPaths(bool compiled)
    {
        using var scope = NewDisposeScope();
        var leaves = Draw(77, 1, 2, 150, 64, 64, 3.0);
        AgreeWithRecurrent(leaves, 64, true, Loss.Both, 1e-9, path: compiled ? KernelPath.Auto : KernelPath.Tensor);
    }

    /// <summary>A loss on the output alone and on the final state alone (the other incoming gradient undefined), float64, 1e-9.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OutputOnlyAndStateOnlyLossesEqualTheRecurrence(bool stateOnly)
    {
        using var scope = NewDisposeScope();
        var leaves = Draw(21, 2, 2, 19, 4, 3, 5.0);
        AgreeWithRecurrent(leaves, 8, true, stateOnly ? Loss.StateOnly : Loss.OutputOnly, 1e-9);
    }

    /// <summary>
    /// L = 2100 with chunk 8 spans three segments of 1024 steps (SequenceSegments): the backward carries dC, dn and the
    /// stabilizer recursion across segment boundaries. B = NH = 1, Dk = Dv = 4; float64, 1e-9.
    /// </summary>
    [Fact]
    public void GradientsAcrossSeveralSegmentsEqualTheRecurrence()
    {
        using var scope = NewDisposeScope();
        var leaves = Draw(31, 1, 1, 2100, 4, 4, 3.0);
        AgreeWithRecurrent(leaves, 8, true, Loss.Both, 1e-9);
    }

    /// <summary>
    /// The fresh start m0 = -inf with C0 = n0 = 0 (MLSTMStabilizerStart.NegativeInfinity): the same gradients as the
    /// recurrence, finite, for q, k, v and the gates (float64, 1e-9); the gradient of m0 itself is 0 in both.
    /// </summary>
    [Fact]
    public void FreshStartFromMinusInfinityEqualsTheRecurrence()
    {
        using var scope = NewDisposeScope();
        var leaves = Draw(41, 2, 2, 21, 4, 3, 2.0);
        leaves[5].zero_();
        leaves[6].zero_();
        leaves[7].fill_(double.NegativeInfinity);
        var c = Run(true, leaves, 8, true, Loss.Both, 42);
        var r = Run(false, leaves, 8, true, Loss.Both, 42);
        Rel(c.O, r.O).Should().BeLessThan(1e-9);
        for (int j = 0; j < 7; j++) Rel(c.Grads[j]!, r.Grads[j]!).Should().BeLessThan(1e-9, Names[j]);
        TestUtil.Values(c.Grads[7]!).Should().OnlyContain(x => x == 0);
    }

    /// <summary>
    /// A whole chunk and single steps with i = -inf and f = +inf (the state passes through unchanged): gradients finite
    /// and equal to the recurrence's (float64, 1e-9), 0 for the -inf input gates.
    /// </summary>
    [Fact]
    public void ExtremeGatesKeepTheGradientsFiniteAndExact()
    {
        using var scope = NewDisposeScope();
        var leaves = Draw(51, 2, 2, 20, 4, 3, 1.0);
        leaves[3].narrow(2, 8, 8).fill_(double.NegativeInfinity);
        leaves[4].narrow(2, 8, 8).fill_(double.PositiveInfinity);
        leaves[3].narrow(2, 19, 1).fill_(double.NegativeInfinity);
        leaves[4].narrow(2, 19, 1).fill_(double.PositiveInfinity);
        AgreeWithRecurrent(leaves, 8, true, Loss.Both, 1e-9);
        var c = Run(true, leaves, 8, true, Loss.Both, 7);
        TestUtil.Values(c.Grads[3]!.narrow(2, 8, 8)).Should().OnlyContain(x => x == 0);
    }

    /// <summary>
    /// float32 inputs (computed in float32) against the same function in float64 on the same values: relative RMS of
    /// the outputs and of every gradient below 1e-4 (measured 6e-6 for the output, 1e-7 .. 2e-5 for the gradients; the output is a ratio whose
    /// denominator can nearly cancel, so the bound leaves room for float32 conditioning).
    /// </summary>
    [Fact]
    public void Float32GradientsTrackFloat64()
    {
        using var scope = NewDisposeScope();
        var leaves64 = Draw(61, 2, 2, 150, 8, 8, 3.0);
        var leaves32 = leaves64.Select(t => t.to(ScalarType.Float32)).ToArray();
        var c32 = Run(true, leaves32, 16, true, Loss.Both, 62);
        var c64 = Run(true, leaves32.Select(t => t.to(ScalarType.Float64)).ToArray(), 16, true, Loss.Both, 62);
        c32.O.dtype.Should().Be(ScalarType.Float32);
        TestUtil.RelRms(c32.O, c64.O).Should().BeLessThan(1e-4);
        for (int j = 0; j < 8; j++)
        {
            c32.Grads[j]!.dtype.Should().Be(ScalarType.Float32);
            TestUtil.RelRms(c32.Grads[j]!, c64.Grads[j]!).Should().BeLessThan(1e-4, Names[j]);
        }
    }

    /// <summary>Inside no_grad the forward alone runs and gives the same output and state as the tracked forward (bitwise).</summary>
    [Fact]
    public void UntrackedForwardEqualsTrackedForward()
    {
        using var scope = NewDisposeScope();
        var x = Draw(71, 2, 2, 1100, 4, 3, 3.0);
        var init = new MLSTMKernelState(x[5], x[6], x[7]);
        Tensor o1;
        MLSTMKernelState s1;
        using (no_grad()) (o1, s1) = MLSTMKernel.Chunked(x[0], x[1], x[2], x[3], x[4], 64, init);
        var leaves = x.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
        var (o2, s2) = MLSTMKernel.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 64,
            new MLSTMKernelState(leaves[5], leaves[6], leaves[7]));
        o2.requires_grad.Should().BeTrue();
        TestUtil.MaxAbsDiff(o1, o2).Should().Be(0);
        TestUtil.MaxAbsDiff(s1.C, s2.C).Should().Be(0);
        TestUtil.MaxAbsDiff(s1.N, s2.N).Should().Be(0);
        TestUtil.MaxAbsDiff(s1.M, s2.M).Should().Be(0);
    }

    /// <summary>
    /// The saved memory holds no c x c matrix: at L = 2048, chunk 64, Dk = Dv = 4 the function saves 9 tensors (the five
    /// inputs, the output, the denominators, the chunk states and their m) with at most
    /// 4 L D + 2 L + (L / c + 1)(Dk (Dv + 1) + 1) elements per head (the inputs and output, the gates and
    /// denominators, the states); one c x c matrix per chunk alone would be L c = 16 L D elements.
    /// </summary>
    [Fact]
    public void SavedMemoryIsLinearInLAndHoldsNoChunkMatrices()
    {
        using var scope = NewDisposeScope();
        const long l = 2048, d = 4, c = 64;
        var x = Draw(81, 1, 2, l, d, d, 1.0).Select(t => t.requires_grad_(true)).ToArray();
        var (o, s) = MLSTMKernel.Chunked(x[0], x[1], x[2], x[3], x[4], (int)c);
        var (count, elements) = MLSTMChunkFunction.LastSaved;
        count.Should().Be(9);
        long perHead = 4 * l * d + 3 * l + (l / c + 1) * (d * (d + 1) + 1);
        elements.Should().BeLessThanOrEqualTo(2 * perHead);
        elements.Should().BeLessThan(2 * l * c, "a c x c matrix per chunk would be this large alone");
        (o.sum() + s.C.sum()).backward();
        x[0].grad!.isfinite().all().item<bool>().Should().BeTrue();
    }
}

/// <summary>A training loop through the function WITHOUT a dispose scope does not grow the live tensors (see AutogradMemoryTests).</summary>
[Collection(nameof(TensorCounterCollection))]
public class MLSTMChunkFunctionMemoryTests
{
    private static long Live()
    {
        var s = DisposeScopeManager.Statistics;
        return s.ThreadTotalLiveCount + s.CreatedOutsideScopeCount - s.DisposedOutsideScopeCount;
    }

    /// <summary>
    /// 200 optimizer-free training steps (forward, backward on the output and the final state, gradient reset) of
    /// L = 20 with chunk 8 (a padded last chunk) and an initial state that requires grad: after a warm-up, the live tensor wrappers do not
    /// grow (bound: fewer than steps / 2, a constant handful may wait for the next call), so neither do the native
    /// buffers they own.
    /// </summary>
    [Fact]
    public void TrainingLoopDoesNotGrowTheLiveTensors()
    {
        var g = new Generator(91);
        var leaves = new[]
        {
            randn(new long[] { 1, 2, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20, 3 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 20 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 4, 3 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2, 4 }, dtype: ScalarType.Float64, generator: g),
            randn(new long[] { 1, 2 }, dtype: ScalarType.Float64, generator: g),
        }.Select(t => t.requires_grad_(true)).ToArray();

        void Step()
        {
            var (o, s) = MLSTMKernel.Chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 8,
                new MLSTMKernelState(leaves[5], leaves[6], leaves[7]));
            var a = o.sum();
            var b = s.C.sum();
            var loss = a + b;
            loss.backward();
            foreach (var t in new[] { loss, a, b, o }) t.Dispose();
            s.Dispose();
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
