using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// Diagonal linear recurrence (the scan behind LRU, S4D-recurrent and S5):
/// <c>h_t = a_t * h_{t-1} + b_t</c>, elementwise, real or complex, for <c>t = 1..L</c> from <c>h_0</c>
/// (the initial state, zeros by default), returning every state <c>h_1..h_L</c>.
/// </summary>
/// <remarks>
/// <para>Shapes: <c>b: [B, L, N]</c>; <c>a</c> broadcastable to <c>b</c> with NumPy rules, typically <c>[N]</c>
/// (time-invariant), <c>[L, N]</c> or <c>[B, L, N]</c> (time-varying); initial state <c>[B, N]</c>; result
/// <c>[B, L, N]</c>. <c>a</c>, <c>b</c> and the initial state share one dtype: float32, float64, complex64,
/// complex128, or float16/bfloat16 (computed in float32 and cast back).</para>
/// <para>The pairs <c>(a, b)</c> compose with the associative operator
/// <c>(a1, b1) . (a2, b2) = (a2 a1, a2 b1 + b2)</c> (apply step 1, then step 2), which allows parallel-in-time
/// evaluation (Blelloch 1990; Martin and Cundy 2018, https://arxiv.org/abs/1709.04057; Smith et al. 2023,
/// https://arxiv.org/abs/2208.04933).</para>
/// <para>Every form returns <c>(Output, FinalState)</c>: all states <c>h_1..h_L</c> <c>[B, L, N]</c> and the state after the
/// last step <c>h_L</c> <c>[B, N]</c> (a copy, not a view of the output; both in the dtype of <c>b</c>, both owned by
/// the caller, and gradients flow through both).</para>
/// <para>Three forms of one math:</para>
/// <list type="bullet">
/// <item><see cref="Recurrent"/>: the literal loop of tensor operations over <c>L</c>, the oracle.</item>
/// <item><see cref="Parallel"/>: a chunked parallel-in-time tensor form (doubling scan inside chunks of
/// <c>C</c> steps, doubling scan across the chunk totals, then one broadcast product), O(L log C) work and
/// O(log L) depth, with no division by cumulative products, so it stays exact when <c>|a|</c> is tiny
/// (products underflow to zero, which is their correct value) or near one over long spans.</item>
/// <item>The CPU kernel behind <see cref="Scan"/>: compiled C# over the tensors' memory, parallel over the
/// <c>B x N</c> channels, vectorized along <c>N</c>, with a custom autograd function whose backward is the
/// reverse scan <c>d_t = g_t + conj(a_{t+1}) d_{t+1}</c>; grad <c>b_t = d_t</c>;
/// grad <c>a_t = d_t conj(h_{t-1})</c> (summed over broadcast dimensions); grad <c>h_0 = conj(a_1) d_1</c>
/// (PyTorch's convention for complex gradients).</item>
/// </list>
/// <para><see cref="Scan"/> uses the CPU kernel for CPU tensors and <see cref="Parallel"/> on every other
/// device (on a CPU a loop of tensor operations costs microseconds per step and the parallel tensor forms lose to
/// the compiled loop; on a GPU the loop's launches lose to the parallel form). See docs/kernels/linear-scan.md.</para>
/// </remarks>
public static class LinearScan
{
    /// <summary>Default chunk length of <see cref="Parallel"/>.</summary>
    public const int DefaultChunkSize = ScanKernel<Layout>.DefaultChunkSize;

    /// <summary>
    /// Every state of <c>h_t = a_t * h_{t-1} + b_t</c> and the last one: the compiled CPU kernel (with its reverse-scan
    /// backward) for CPU tensors, <see cref="Parallel"/> on other devices.
    /// </summary>
    /// <param name="a">Coefficients broadcastable to <c>[B, L, N]</c>: <c>[N]</c>, <c>[L, N]</c> or <c>[B, L, N]</c> (or with size-1 dimensions).</param>
    /// <param name="b">Inputs <c>[B, L, N]</c>, real or complex, every size at least 1.</param>
    /// <param name="initialState">State before the first step <c>[B, N]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last, strictly increasing) of S sequences (S, not N: N is the state width here) concatenated along time in one row (batch 1). The state is reset at every sequence start: at the first step <c>t0</c> of sequence i, <c>h_{t0} = a_{t0} * h0[i] + b_{t0}</c> with the initial state per sequence <c>[S, N]</c> (null: <c>h_{t0} = b_{t0}</c>), computed as the plain scan from a zero state with the coefficient of step <c>t0</c> set to 0 and <c>a_{t0} * h0[i]</c> added to its input; <c>FinalState</c> is <c>[S, N]</c>, the state at each sequence's last step (docs/kernels/contracts.md, "Packed sequences").</param>
    /// <returns><c>Output</c>: the states <c>[B, L, N]</c>; <c>FinalState</c>: <c>h_L</c> <c>[B, N]</c> (a fresh tensor); both in the dtype of <paramref name="b"/>.</returns>
    /// <exception cref="ArgumentException">Shapes (a zero size included), dtypes or devices that do not fit together.</exception>
    public static (Tensor Output, Tensor FinalState) Scan(Tensor a, Tensor b, Tensor? initialState = null, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Scan, a, b, initialState, cuSeqlens: cuSeqlens);

    /// <summary>
    /// <see cref="Scan"/> with the implementation picked explicitly (tests run <see cref="KernelPath.Tensor"/> on CPU).
    /// </summary>
    internal static (Tensor Output, Tensor FinalState) ScanWithPath(Tensor a, Tensor b, Tensor? initialState, KernelPath path, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Scan, a, b, initialState, path: path, cuSeqlens: cuSeqlens);

    /// <summary>
    /// The literal recurrence as a loop of tensor operations over <c>L</c> (differentiable by autograd): the
    /// reference the other forms are tested against.
    /// </summary>
    /// <param name="a">Coefficients broadcastable to <c>[B, L, N]</c>: <c>[N]</c>, <c>[L, N]</c> or <c>[B, L, N]</c>.</param>
    /// <param name="b">Inputs <c>[B, L, N]</c>, real or complex, every size at least 1.</param>
    /// <param name="initialState">State before the first step <c>[B, N]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last, strictly increasing) of S sequences (S, not N: N is the state width here) concatenated along time in one row (batch 1). The state is reset at every sequence start: at the first step <c>t0</c> of sequence i, <c>h_{t0} = a_{t0} * h0[i] + b_{t0}</c> with the initial state per sequence <c>[S, N]</c> (null: <c>h_{t0} = b_{t0}</c>), computed as the plain scan from a zero state with the coefficient of step <c>t0</c> set to 0 and <c>a_{t0} * h0[i]</c> added to its input; <c>FinalState</c> is <c>[S, N]</c>, the state at each sequence's last step (docs/kernels/contracts.md, "Packed sequences").</param>
    /// <returns><c>Output</c>: the states <c>[B, L, N]</c>; <c>FinalState</c>: <c>h_L</c> <c>[B, N]</c> (a fresh tensor); both in the dtype of <paramref name="b"/>.</returns>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices that do not fit together.</exception>
    public static (Tensor Output, Tensor FinalState) Recurrent(Tensor a, Tensor b, Tensor? initialState = null, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Recurrent, a, b, initialState, cuSeqlens: cuSeqlens);

    /// <summary>
    /// The chunked parallel-in-time tensor form that <see cref="Scan"/> uses on non-CPU devices, callable on any
    /// device (so it is tested on CPU). Differentiable by autograd.
    /// </summary>
    /// <remarks>
    /// Time is cut into chunks of <paramref name="chunkSize"/> steps (the tail padded with <c>a = 1, b = 0</c>, which
    /// leaves the state unchanged, and cut off afterwards). Inside each chunk a Hillis-Steele doubling scan with
    /// the associative operator gives, for every step, the product <c>A_t</c> of the coefficients since the chunk
    /// start and the state <c>B_t</c> reached from a zero state; across chunks the same doubling scan over the
    /// chunk totals (from the initial state) gives the state entering each chunk, <c>E</c>; then
    /// <c>h_t = A_t E + B_t</c>. Only products and sums, never a division by a cumulative product.
    /// </remarks>
    /// <param name="a">Coefficients broadcastable to <c>[B, L, N]</c>: <c>[N]</c>, <c>[L, N]</c> or <c>[B, L, N]</c>.</param>
    /// <param name="b">Inputs <c>[B, L, N]</c>, real or complex, every size at least 1.</param>
    /// <param name="initialState">State before the first step <c>[B, N]</c>; null means zeros.</param>
    /// <param name="chunkSize">Chunk length (at least 1); results do not depend on it beyond rounding.</param>
    /// <param name="cuSeqlens">Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last, strictly increasing) of S sequences (S, not N: N is the state width here) concatenated along time in one row (batch 1). The state is reset at every sequence start: at the first step <c>t0</c> of sequence i, <c>h_{t0} = a_{t0} * h0[i] + b_{t0}</c> with the initial state per sequence <c>[S, N]</c> (null: <c>h_{t0} = b_{t0}</c>), computed as the plain scan from a zero state with the coefficient of step <c>t0</c> set to 0 and <c>a_{t0} * h0[i]</c> added to its input; <c>FinalState</c> is <c>[S, N]</c>, the state at each sequence's last step (docs/kernels/contracts.md, "Packed sequences").</param>
    /// <returns><c>Output</c>: the states <c>[B, L, N]</c>; <c>FinalState</c>: <c>h_L</c> <c>[B, N]</c> (a fresh tensor); both in the dtype of <paramref name="b"/>.</returns>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices that do not fit together.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkSize"/> below 1.</exception>
    public static (Tensor Output, Tensor FinalState) Parallel(Tensor a, Tensor b, Tensor? initialState = null, int chunkSize = DefaultChunkSize, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Parallel, a, b, initialState, chunkSize, cuSeqlens: cuSeqlens);

    /// <summary>What the diagonal scan states for the shared scan wrapper.</summary>
    internal sealed class Layout : IScanLayout
    {
        /// <inheritdoc/>
        public static string Name => "LinearScan";

        /// <inheritdoc/>
        public static string InputsName => "b";

        /// <inheritdoc/>
        public static (Tensor Coefficients, Tensor Inputs) Reset(Tensor coefficients, Tensor inputs, Tensor starts, Tensor? initialState)
        {
            long len = inputs.shape[1], n = inputs.shape[2];
            var a = Rank3(coefficients).expand(1, len, n).select(0, 0);                 // [L, N]
            var isStart = zeros(len, dtype: ScalarType.Bool, device: inputs.device).index_fill(0, starts, true).unsqueeze(1);
            var reset = where(isStart, zeros_like(a), a);                                // a'_{t0} = 0
            if (initialState is null) return (reset, inputs);
            // b'_{t0} = b_{t0} + a_{t0} h0[n]
            var entering = (a.index_select(0, starts) * initialState).unsqueeze(0);     // [1, N_seq, N]
            return (reset, inputs.index_add(1, starts, entering, 1));
        }

        /// <inheritdoc/>
        public static void Validate(Tensor coefficients, Tensor inputs, Tensor? initialState) =>
            LinearScan.Validate(coefficients, inputs, initialState);

        /// <inheritdoc/>
        public static Tensor Canonical(Tensor coefficients, Tensor inputs) => LinearScan.Canonical(coefficients, inputs);

        /// <inheritdoc/>
        public static Tensor Recurrent(Tensor coefficients, Tensor inputs, Tensor? initialState) =>
            RecurrentCore(coefficients, inputs, initialState);

        /// <inheritdoc/>
        public static Tensor Parallel(Tensor coefficients, Tensor inputs, Tensor? initialState, int chunkSize) =>
            ParallelCore(coefficients, inputs, initialState, chunkSize);

        /// <inheritdoc/>
        public static Tensor CpuForward(Tensor coefficients, Tensor inputs, Tensor? initialState) =>
            LinearScanCpu.Forward(coefficients, inputs, initialState);

        /// <inheritdoc/>
        public static (Tensor GradInputs, Tensor? GradCoefficients, Tensor? GradInitialState) CpuBackward(Tensor coefficients,
            Tensor gradStates, Tensor? states, Tensor? initialState, bool needCoefficients, bool needInitialState) =>
            LinearScanCpu.Backward(coefficients, gradStates, states, initialState, needCoefficients, needInitialState);
    }

    private static Tensor RecurrentCore(Tensor ac, Tensor bc, Tensor? h0)
    {
        var a3 = Rank3(ac);
        // unbind (not select per step): its backward is one stack, where per-step select backwards would each
        // allocate a zero tensor of the full input shape (quadratic in L).
        var aSteps = a3.unbind(1);
        var bSteps = bc.unbind(1);
        long len = bc.shape[1];
        var states = new Tensor[len];
        Tensor? h = h0;
        for (long t = 0; t < len; t++)
        {
            var at = aSteps[aSteps.Length == 1 ? 0 : t];
            var bt = bSteps[t];
            h = h is null ? bt : at * h + bt; // h_1 = a_1 * 0 + b_1 (stack copies)
            states[t] = h;
        }
        return stack(states, 1);
    }

    private static Tensor ParallelCore(Tensor ac, Tensor b, Tensor? h0, int chunkSize)
    {
        long bsz = b.shape[0], len = b.shape[1], n = b.shape[2];
        var a3 = Rank3(ac); // [Ba, L or 1, N], Ba in {1, B}
        long ba = a3.shape[0];
        long c = Math.Min(chunkSize, len);
        long chunks = (len + c - 1) / c;
        long pad = chunks * c - len;

        var av = a3.expand(ba, len, n);
        var bv = b;
        if (pad > 0)
        {
            av = cat(new[] { av, ones(new[] { ba, pad, n }, dtype: b.dtype, device: b.device) }, 1);
            bv = cat(new[] { bv, zeros(new[] { bsz, pad, n }, dtype: b.dtype, device: b.device) }, 1);
        }
        var (prodA, stateB) = DoublingScan(av.reshape(ba, chunks, c, n), bv.reshape(bsz, chunks, c, n), 2);

        // Chunk totals [*, chunks, N], scanned across chunks: the state after chunk k from a zero state, and the
        // product of all coefficients up to it.
        var totA = prodA.select(2, c - 1);
        var totB = stateB.select(2, c - 1);
        var (cumA, cumB) = DoublingScan(totA, totB, 1);
        var after = h0 is null ? cumB : cumA * h0.unsqueeze(1) + cumB; // [B, chunks, N]
        var first = h0 is null ? zeros(new[] { bsz, 1, n }, dtype: b.dtype, device: b.device) : h0.unsqueeze(1);
        var entering = chunks == 1 ? first : cat(new[] { first, after.narrow(1, 0, chunks - 1) }, 1);

        var h = prodA * entering.unsqueeze(2) + stateB; // [B, chunks, C, N]
        h = h.reshape(bsz, chunks * c, n);
        return pad > 0 ? h.narrow(1, 0, len) : h;
    }

    /// <summary>
    /// Inclusive Hillis-Steele scan along <paramref name="dim"/> of the pairs <c>(A, B)</c> under
    /// <c>(A1, B1) . (A2, B2) = (A2 A1, A2 B1 + B2)</c>: after the pass at shift <c>s</c>, entry <c>t</c> covers the
    /// steps <c>(t - 2s, t]</c>. <paramref name="a"/> may have size 1 in dimension 0 (shared by the batch).
    /// </summary>
    private static (Tensor A, Tensor B) DoublingScan(Tensor a, Tensor b, long dim)
    {
        long size = b.shape[dim];
        for (long s = 1; s < size; s *= 2)
        {
            var aHead = a.narrow(dim, 0, size - s);
            var aTail = a.narrow(dim, s, size - s);
            var bHead = b.narrow(dim, 0, size - s);
            var bTail = b.narrow(dim, s, size - s);
            b = cat(new[] { b.narrow(dim, 0, s), aTail * bHead + bTail }, dim);
            a = cat(new[] { a.narrow(dim, 0, s), aTail * aHead }, dim);
        }
        return (a, b);
    }

    /// <summary>A canonical <c>a</c> (rank 1, 2 or 3) as rank 3: <c>[1, 1, N]</c>, <c>[1, L, N]</c> or <c>[B, L, N]</c>.</summary>
    private static Tensor Rank3(Tensor ac) => ac.dim() switch
    {
        1 => ac.unsqueeze(0).unsqueeze(0),
        2 => ac.unsqueeze(0),
        _ => ac,
    };

    /// <summary>
    /// <c>a</c> in its canonical form: <c>[N]</c> when it varies over neither batch nor time, <c>[L, N]</c> when it
    /// varies over time only, else <c>[B, L, N]</c> (all with the full <c>N</c>). Every step is a differentiable tensor
    /// operation, so gradients reach the caller's tensors.
    /// </summary>
    private static Tensor Canonical(Tensor a, Tensor b)
    {
        long bsz = b.shape[0], len = b.shape[1], n = b.shape[2];
        var a3 = a;
        while (a3.dim() < 3) a3 = a3.unsqueeze(0);
        if (a3.shape[0] == bsz && bsz > 1)
            return a3.expand(bsz, len, n);
        if (a3.shape[1] == len && len > 1)
            return a3.select(0, 0).expand(len, n);
        return a3.select(0, 0).select(0, 0).expand(n);
    }

    private static void Validate(Tensor a, Tensor b, Tensor? initialState)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (b.dim() != 3)
            throw new ArgumentException($"Expected b of rank 3 [B, L, N]; got shape {Check.Shape(b)}.", nameof(b));
        long bsz = b.shape[0], len = b.shape[1], n = b.shape[2];
        if (bsz < 1 || len < 1 || n < 1)
            throw new ArgumentException($"Expected b [B, L, N] with B, L, N >= 1; got shape {Check.Shape(b)}.", nameof(b));
        if (b.dtype is not (ScalarType.Float32 or ScalarType.Float64 or ScalarType.ComplexFloat32 or ScalarType.ComplexFloat64
            or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"Expected b of dtype float16, bfloat16, float32, float64, complex64 or complex128; got {b.dtype}.", nameof(b));

        if (a.dtype != b.dtype)
            throw new ArgumentException($"Expected a of the dtype of b ({b.dtype}); got {a.dtype}.", nameof(a));
        if (a.device.ToString() != b.device.ToString())
            throw new ArgumentException($"Expected a on the device of b ({b.device}); got {a.device}.", nameof(a));
        long[] target = { bsz, len, n };
        bool fits = a.dim() <= 3;
        for (int i = 1; fits && i <= a.dim(); i++)
        {
            long size = a.shape[^i];
            fits = size == 1 || size == target[^i];
        }
        if (!fits)
            throw new ArgumentException(
                $"Expected a broadcastable to b's shape {Check.Shape(target)}: [N] = [{n}], [L, N] = [{len}, {n}] or [B, L, N] = [{bsz}, {len}, {n}]; got shape {Check.Shape(a)}.",
                nameof(a));

        if (initialState is null) return;
        if (initialState.dim() != 2 || initialState.shape[0] != bsz || initialState.shape[1] != n)
            throw new ArgumentException($"Expected initialState of shape [B, N] = [{bsz}, {n}]; got shape {Check.Shape(initialState)}.", nameof(initialState));
        if (initialState.dtype != b.dtype)
            throw new ArgumentException($"Expected initialState of the dtype of b ({b.dtype}); got {initialState.dtype}.", nameof(initialState));
        if (initialState.device.ToString() != b.device.ToString())
            throw new ArgumentException($"Expected initialState on the device of b ({b.device}); got {initialState.device}.", nameof(initialState));
    }
}
