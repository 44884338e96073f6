using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The 2x2-block linear recurrence (the scan behind LinOSS, Rusch and Rus 2025, https://arxiv.org/abs/2410.03943):
/// <c>h_t = M_t h_{t-1} + F_t</c> with <c>h_t</c> in R^2 per channel and a 2x2 real matrix <c>M_t</c> per channel,
/// for <c>t = 1..L</c> from <c>h_0</c> (zeros by default), returning every state <c>h_1..h_L</c>.
/// </summary>
/// <remarks>
/// <para>Shapes: <c>F: [B, L, N, 2]</c>; <c>M: [N, 2, 2]</c> (time-invariant, as LinOSS needs), <c>[L, N, 2, 2]</c> or
/// <c>[B, L, N, 2, 2]</c> (time-varying), row-major (<c>M[..., i, j]</c> multiplies component <c>j</c> into component
/// <c>i</c>); initial state <c>[B, N, 2]</c>; result <c>[B, L, N, 2]</c>. One dtype for all: float32, float64, or
/// float16/bfloat16 (computed in float32 and cast back).</para>
/// <para>Steps compose with the associative operator <c>(M1, F1) . (M2, F2) = (M2 M1, M2 F1 + F2)</c> (apply step 1,
/// then step 2), the 2x2 analogue of the diagonal scan (Blelloch 1990; Smith et al. 2023,
/// https://arxiv.org/abs/2208.04933).</para>
/// <para>Gradients (all real): with <c>g_t = dLoss/dh_t</c>, the adjoint <c>d_L = g_L</c>,
/// <c>d_t = g_t + M_{t+1}^T d_{t+1}</c>; grad <c>F_t = d_t</c>; grad <c>M_t = d_t h_{t-1}^T</c> (summed over the
/// dimensions <c>M</c> was broadcast over: batch and time for <c>[N, 2, 2]</c>); grad <c>h_0 = M_1^T d_1</c>.</para>
/// <para>Every form returns <c>(Output, FinalState)</c>: all states <c>h_1..h_L</c> <c>[B, L, N, 2]</c> and the state after
/// the last step <c>h_L</c> <c>[B, N, 2]</c> (a copy, not a view of the output; both in the dtype of <c>F</c>, both owned
/// by the caller, and gradients flow through both).</para>
/// <para>Three forms of one math:</para>
/// <list type="bullet">
/// <item><see cref="Recurrent"/>: the literal loop of tensor operations over <c>L</c>, the oracle.</item>
/// <item><see cref="Parallel"/>: chunked parallel-in-time tensor form (doubling scan of the pairs inside chunks,
/// doubling scan across chunk totals, one broadcast product), only products and sums; O(log L) depth.</item>
/// <item>The CPU kernel behind <see cref="Scan"/>: compiled C# over the tensors' memory, parallel over the <c>B x N</c>
/// channels, with a custom autograd function whose backward is the reverse scan above, also in C#.</item>
/// </list>
/// <para><see cref="Scan"/> uses the CPU kernel for CPU tensors and <see cref="Parallel"/> on every other device
/// (docs/kernels/linear-scan.md). See docs/models/linoss.md.</para>
/// </remarks>
public static class BlockScan2x2
{
    /// <summary>Default chunk length of <see cref="Parallel"/>.</summary>
    public const int DefaultChunkSize = ScanKernel<Layout>.DefaultChunkSize;

    /// <summary>
    /// Every state of <c>h_t = M_t h_{t-1} + F_t</c> and the last one: the compiled CPU kernel (with its reverse-scan
    /// backward) for CPU tensors, <see cref="Parallel"/> on other devices.
    /// </summary>
    /// <param name="m">Transition matrices <c>[N, 2, 2]</c>, <c>[L, N, 2, 2]</c> or <c>[B, L, N, 2, 2]</c>.</param>
    /// <param name="f">Forcing terms <c>[B, L, N, 2]</c>, every size at least 1.</param>
    /// <param name="initialState">State before the first step <c>[B, N, 2]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last, strictly increasing) of S sequences (S, not N: N is the state width here) concatenated along time in one row (batch 1). The state is reset at every sequence start: at the first step <c>t0</c> of sequence i, <c>h_{t0} = M_{t0} h0[i] + f_{t0}</c> with the initial state per sequence <c>[S, N, 2]</c> (null: <c>h_{t0} = f_{t0}</c>), computed as the plain scan from a zero state with the coefficient of step <c>t0</c> set to 0 and <c>M_{t0} h0[i]</c> added to its input; <c>FinalState</c> is <c>[S, N, 2]</c>, the state at each sequence's last step (docs/kernels/contracts.md, "Packed sequences").</param>
    /// <returns><c>Output</c>: the states <c>[B, L, N, 2]</c>; <c>FinalState</c>: <c>h_L</c> <c>[B, N, 2]</c> (a fresh tensor); both in the dtype of <paramref name="f"/>.</returns>
    /// <exception cref="ArgumentException">Shapes (a zero size included), dtypes or devices that do not fit together.</exception>
    public static (Tensor Output, Tensor FinalState) Scan(Tensor m, Tensor f, Tensor? initialState = null, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Scan, m, f, initialState, cuSeqlens: cuSeqlens);

    /// <summary>
    /// <see cref="Scan"/> with the implementation picked explicitly (tests run <see cref="KernelPath.Tensor"/> on CPU).
    /// </summary>
    internal static (Tensor Output, Tensor FinalState) ScanWithPath(Tensor m, Tensor f, Tensor? initialState, KernelPath path, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Scan, m, f, initialState, path: path, cuSeqlens: cuSeqlens);

    /// <summary>
    /// The literal recurrence as a loop of tensor operations over <c>L</c> (differentiable by autograd): the reference
    /// the other forms are tested against.
    /// </summary>
    /// <param name="m">Transition matrices <c>[N, 2, 2]</c>, <c>[L, N, 2, 2]</c> or <c>[B, L, N, 2, 2]</c>.</param>
    /// <param name="f">Forcing terms <c>[B, L, N, 2]</c>, every size at least 1.</param>
    /// <param name="initialState">State before the first step <c>[B, N, 2]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last, strictly increasing) of S sequences (S, not N: N is the state width here) concatenated along time in one row (batch 1). The state is reset at every sequence start: at the first step <c>t0</c> of sequence i, <c>h_{t0} = M_{t0} h0[i] + f_{t0}</c> with the initial state per sequence <c>[S, N, 2]</c> (null: <c>h_{t0} = f_{t0}</c>), computed as the plain scan from a zero state with the coefficient of step <c>t0</c> set to 0 and <c>M_{t0} h0[i]</c> added to its input; <c>FinalState</c> is <c>[S, N, 2]</c>, the state at each sequence's last step (docs/kernels/contracts.md, "Packed sequences").</param>
    /// <returns><c>Output</c>: the states <c>[B, L, N, 2]</c>; <c>FinalState</c>: <c>h_L</c> <c>[B, N, 2]</c> (a fresh tensor); both in the dtype of <paramref name="f"/>.</returns>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices that do not fit together.</exception>
    public static (Tensor Output, Tensor FinalState) Recurrent(Tensor m, Tensor f, Tensor? initialState = null, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Recurrent, m, f, initialState, cuSeqlens: cuSeqlens);

    /// <summary>
    /// The chunked parallel-in-time tensor form that <see cref="Scan"/> uses on non-CPU devices, callable on any device
    /// (so it is tested on CPU). Differentiable by autograd.
    /// </summary>
    /// <remarks>
    /// Time is cut into chunks of <paramref name="chunkSize"/> steps (the tail padded with <c>M = I, F = 0</c>, which
    /// leaves the state unchanged, cut off afterwards). Inside each chunk a Hillis-Steele doubling scan of the pairs
    /// <c>(M, F)</c> gives the product <c>P_t</c> of the matrices since the chunk start and the state <c>S_t</c> reached
    /// from zero; the same scan across chunk totals gives the state <c>E</c> entering each chunk; then
    /// <c>h_t = P_t E + S_t</c>. The 2x2 products are written out componentwise (elementwise kernels, no batched GEMM).
    /// </remarks>
    /// <param name="m">Transition matrices <c>[N, 2, 2]</c>, <c>[L, N, 2, 2]</c> or <c>[B, L, N, 2, 2]</c>.</param>
    /// <param name="f">Forcing terms <c>[B, L, N, 2]</c>, every size at least 1.</param>
    /// <param name="initialState">State before the first step <c>[B, N, 2]</c>; null means zeros.</param>
    /// <param name="chunkSize">Chunk length (at least 1); results do not depend on it beyond rounding.</param>
    /// <param name="cuSeqlens">Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last, strictly increasing) of S sequences (S, not N: N is the state width here) concatenated along time in one row (batch 1). The state is reset at every sequence start: at the first step <c>t0</c> of sequence i, <c>h_{t0} = M_{t0} h0[i] + f_{t0}</c> with the initial state per sequence <c>[S, N, 2]</c> (null: <c>h_{t0} = f_{t0}</c>), computed as the plain scan from a zero state with the coefficient of step <c>t0</c> set to 0 and <c>M_{t0} h0[i]</c> added to its input; <c>FinalState</c> is <c>[S, N, 2]</c>, the state at each sequence's last step (docs/kernels/contracts.md, "Packed sequences").</param>
    /// <returns><c>Output</c>: the states <c>[B, L, N, 2]</c>; <c>FinalState</c>: <c>h_L</c> <c>[B, N, 2]</c> (a fresh tensor); both in the dtype of <paramref name="f"/>.</returns>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices that do not fit together.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkSize"/> below 1.</exception>
    public static (Tensor Output, Tensor FinalState) Parallel(Tensor m, Tensor f, Tensor? initialState = null, int chunkSize = DefaultChunkSize, Tensor? cuSeqlens = null) =>
        ScanKernel<Layout>.Run(ScanForm.Parallel, m, f, initialState, chunkSize, cuSeqlens: cuSeqlens);

    /// <summary>What the 2x2-block scan states for the shared scan wrapper.</summary>
    internal sealed class Layout : IScanLayout
    {
        /// <inheritdoc/>
        public static string Name => "BlockScan2x2";

        /// <inheritdoc/>
        public static string InputsName => "f";

        /// <inheritdoc/>
        public static (Tensor Coefficients, Tensor Inputs) Reset(Tensor coefficients, Tensor inputs, Tensor starts, Tensor? initialState)
        {
            long len = inputs.shape[1], n = inputs.shape[2];
            var m = Rank5(coefficients).expand(1, len, n, 2, 2).select(0, 0);           // [L, N, 2, 2]
            var isStart = zeros(len, dtype: ScalarType.Bool, device: inputs.device).index_fill(0, starts, true).reshape(len, 1, 1, 1);
            var reset = where(isStart, zeros_like(m), m);                                // M'_{t0} = 0
            if (initialState is null) return (reset, inputs);
            // f'_{t0} = f_{t0} + M_{t0} h0[n]
            var entering = m.index_select(0, starts).matmul(initialState.unsqueeze(-1)).squeeze(-1).unsqueeze(0);   // [1, N_seq, N, 2]
            return (reset, inputs.index_add(1, starts, entering, 1));
        }

        /// <inheritdoc/>
        public static void Validate(Tensor coefficients, Tensor inputs, Tensor? initialState) =>
            BlockScan2x2.Validate(coefficients, inputs, initialState);

        /// <inheritdoc/>
        public static Tensor Canonical(Tensor coefficients, Tensor inputs) => coefficients;

        /// <inheritdoc/>
        public static Tensor Recurrent(Tensor coefficients, Tensor inputs, Tensor? initialState) =>
            RecurrentCore(coefficients, inputs, initialState);

        /// <inheritdoc/>
        public static Tensor Parallel(Tensor coefficients, Tensor inputs, Tensor? initialState, int chunkSize) =>
            ParallelCore(coefficients, inputs, initialState, chunkSize);

        /// <inheritdoc/>
        public static Tensor CpuForward(Tensor coefficients, Tensor inputs, Tensor? initialState) =>
            BlockScan2x2Cpu.Forward(coefficients, inputs, initialState);

        /// <inheritdoc/>
        public static (Tensor GradInputs, Tensor? GradCoefficients, Tensor? GradInitialState) CpuBackward(Tensor coefficients,
            Tensor gradStates, Tensor? states, Tensor? initialState, bool needCoefficients, bool needInitialState) =>
            BlockScan2x2Cpu.Backward(coefficients, gradStates, states, initialState, needCoefficients, needInitialState);
    }

    private static Tensor RecurrentCore(Tensor mc, Tensor fc, Tensor? h0)
    {
        var m5 = Rank5(mc); // [Bm, Lm, N, 2, 2]
        // unbind (not per-step select): its backward is one stack, where per-step select is quadratic in L.
        var mSteps = m5.unbind(1);
        var fSteps = fc.unbind(1);
        long len = fc.shape[1];
        var states = new Tensor[len];
        Tensor? z = h0?.select(-1, 0), y = h0?.select(-1, 1);
        for (long t = 0; t < len; t++)
        {
            var mt = mSteps[mSteps.Length == 1 ? 0 : t];
            var ft = fSteps[t];
            Tensor f1 = ft.select(-1, 0), f2 = ft.select(-1, 1);
            if (z is null)
            {
                z = f1;
                y = f2;
            }
            else
            {
                var nz = mt.select(-2, 0).select(-1, 0) * z + mt.select(-2, 0).select(-1, 1) * y! + f1;
                var ny = mt.select(-2, 1).select(-1, 0) * z + mt.select(-2, 1).select(-1, 1) * y! + f2;
                z = nz;
                y = ny;
            }
            states[t] = stack(new[] { z, y! }, -1);
        }
        return stack(states, 1);
    }

    /// <summary>A 2x2 matrix held as its four entries, each a tensor of one shape (broadcastable among pairs).</summary>
    private readonly record struct Mat(Tensor A11, Tensor A12, Tensor A21, Tensor A22)
    {
        /// <summary>this * other (apply other first).</summary>
        public Mat Times(Mat o) => new(A11 * o.A11 + A12 * o.A21, A11 * o.A12 + A12 * o.A22,
                                       A21 * o.A11 + A22 * o.A21, A21 * o.A12 + A22 * o.A22);

        public (Tensor, Tensor) Apply(Tensor x1, Tensor x2) => (A11 * x1 + A12 * x2, A21 * x1 + A22 * x2);

        public Mat Map(Func<Tensor, Tensor> fn) => new(fn(A11), fn(A12), fn(A21), fn(A22));
    }

    private static Tensor ParallelCore(Tensor mc, Tensor f, Tensor? h0, int chunkSize)
    {
        long bsz = f.shape[0], len = f.shape[1], n = f.shape[2];
        var m5 = Rank5(mc);
        long bm = m5.shape[0];
        long c = Math.Min(chunkSize, len);
        long chunks = (len + c - 1) / c;
        long pad = chunks * c - len;

        var mv = m5.expand(bm, len, n, 2, 2);
        var fv = f;
        if (pad > 0)
        {
            var eye2 = eye(2, dtype: f.dtype, device: f.device).expand(bm, pad, n, 2, 2);
            mv = cat(new[] { mv, eye2 }, 1);
            fv = cat(new[] { fv, zeros(new[] { bsz, pad, n, 2 }, dtype: f.dtype, device: f.device) }, 1);
        }
        var mr = mv.reshape(bm, chunks, c, n, 2, 2);
        var fr = fv.reshape(bsz, chunks, c, n, 2);
        var mat = new Mat(mr.select(-2, 0).select(-1, 0), mr.select(-2, 0).select(-1, 1), mr.select(-2, 1).select(-1, 0), mr.select(-2, 1).select(-1, 1));
        var (prod, s1, s2) = DoublingScan(mat, fr.select(-1, 0), fr.select(-1, 1), 2);

        // Chunk totals [*, chunks, N], scanned across chunks.
        var tot = prod.Map(t => t.select(2, c - 1));
        var (cum, c1, c2) = DoublingScan(tot, s1.select(2, c - 1), s2.select(2, c - 1), 1);
        Tensor after1 = c1, after2 = c2;
        if (h0 is not null)
        {
            var (p1, p2) = cum.Apply(h0.select(-1, 0).unsqueeze(1), h0.select(-1, 1).unsqueeze(1));
            after1 = p1 + c1;
            after2 = p2 + c2;
        }
        Tensor Entering(Tensor after, int comp)
        {
            var first = h0 is null ? zeros(new[] { bsz, 1, n }, dtype: f.dtype, device: f.device) : h0.select(-1, comp).unsqueeze(1);
            return chunks == 1 ? first : cat(new[] { first, after.narrow(1, 0, chunks - 1) }, 1);
        }
        var e1 = Entering(after1, 0).unsqueeze(2);
        var e2 = Entering(after2, 1).unsqueeze(2);
        var (q1, q2) = prod.Apply(e1, e2);
        var h = stack(new[] { q1 + s1, q2 + s2 }, -1).reshape(bsz, chunks * c, n, 2);
        return pad > 0 ? h.narrow(1, 0, len) : h;
    }

    /// <summary>
    /// Inclusive Hillis-Steele scan along <paramref name="dim"/> of the pairs <c>(P, S)</c> under
    /// <c>(P1, S1) . (P2, S2) = (P2 P1, P2 S1 + S2)</c>.
    /// </summary>
    private static (Mat P, Tensor S1, Tensor S2) DoublingScan(Mat p, Tensor s1, Tensor s2, long dim)
    {
        long size = s1.shape[dim];
        for (long s = 1; s < size; s *= 2)
        {
            long k = size - s;
            var head = p.Map(t => t.narrow(dim, 0, k));
            var tail = p.Map(t => t.narrow(dim, s, k));
            var (a1, a2) = tail.Apply(s1.narrow(dim, 0, k), s2.narrow(dim, 0, k));
            var n1 = cat(new[] { s1.narrow(dim, 0, s), a1 + s1.narrow(dim, s, k) }, dim);
            var n2 = cat(new[] { s2.narrow(dim, 0, s), a2 + s2.narrow(dim, s, k) }, dim);
            var prod = tail.Times(head);
            var np = new Mat(cat(new[] { p.A11.narrow(dim, 0, s), prod.A11 }, dim), cat(new[] { p.A12.narrow(dim, 0, s), prod.A12 }, dim),
                             cat(new[] { p.A21.narrow(dim, 0, s), prod.A21 }, dim), cat(new[] { p.A22.narrow(dim, 0, s), prod.A22 }, dim));
            p = np;
            s1 = n1;
            s2 = n2;
        }
        return (p, s1, s2);
    }

    /// <summary>M as rank 5: <c>[1, 1, N, 2, 2]</c>, <c>[1, L, N, 2, 2]</c> or <c>[B, L, N, 2, 2]</c>.</summary>
    private static Tensor Rank5(Tensor mc) => mc.dim() switch
    {
        3 => mc.unsqueeze(0).unsqueeze(0),
        4 => mc.unsqueeze(0),
        _ => mc,
    };

    private static void Validate(Tensor m, Tensor f, Tensor? initialState)
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(f);
        if (f.dim() != 4 || f.shape[3] != 2)
            throw new ArgumentException($"Expected f of shape [B, L, N, 2]; got shape {Check.Shape(f)}.", nameof(f));
        long bsz = f.shape[0], len = f.shape[1], n = f.shape[2];
        if (bsz < 1 || len < 1 || n < 1)
            throw new ArgumentException($"Expected f [B, L, N, 2] with B, L, N >= 1; got shape {Check.Shape(f)}.", nameof(f));
        if (f.dtype is not (ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"Expected f of dtype float16, bfloat16, float32 or float64; got {f.dtype}.", nameof(f));

        if (m.dtype != f.dtype)
            throw new ArgumentException($"Expected m of the dtype of f ({f.dtype}); got {m.dtype}.", nameof(m));
        if (m.device.ToString() != f.device.ToString())
            throw new ArgumentException($"Expected m on the device of f ({f.device}); got {m.device}.", nameof(m));
        bool fits = m.dim() switch
        {
            3 => m.shape[0] == n,
            4 => m.shape[0] == len && m.shape[1] == n,
            5 => m.shape[0] == bsz && m.shape[1] == len && m.shape[2] == n,
            _ => false,
        };
        fits = fits && m.shape[^1] == 2 && m.shape[^2] == 2;
        if (!fits)
            throw new ArgumentException(
                $"Expected m of shape [N, 2, 2] = [{n}, 2, 2], [L, N, 2, 2] = [{len}, {n}, 2, 2] or [B, L, N, 2, 2] = [{bsz}, {len}, {n}, 2, 2]; got shape {Check.Shape(m)}.",
                nameof(m));

        if (initialState is null) return;
        if (initialState.dim() != 3 || initialState.shape[0] != bsz || initialState.shape[1] != n || initialState.shape[2] != 2)
            throw new ArgumentException($"Expected initialState of shape [B, N, 2] = [{bsz}, {n}, 2]; got shape {Check.Shape(initialState)}.", nameof(initialState));
        if (initialState.dtype != f.dtype)
            throw new ArgumentException($"Expected initialState of the dtype of f ({f.dtype}); got {initialState.dtype}.", nameof(initialState));
        if (initialState.device.ToString() != f.device.ToString())
            throw new ArgumentException($"Expected initialState on the device of f ({f.device}); got {initialState.device}.", nameof(initialState));
    }
}
