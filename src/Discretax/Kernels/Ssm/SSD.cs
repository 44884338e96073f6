using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The state space dual (SSD) layer of Mamba2 in two exact forms: <see cref="Chunked"/>, the chunkwise form whose
/// work is batched matrix products, and <see cref="Recurrent"/>, the literal step-by-step loop (the test oracle and
/// the decoding path).
/// </summary>
/// <remarks>
/// <para>
/// Per batch and head, with <c>x_t</c> in R^P, <c>b_t, c_t</c> in R^N, a scalar log decay <c>a_t</c> and the state
/// <c>h</c> in R^{P x N}:
/// <code>
/// h_t = exp(a_t) h_{t-1} + x_t b_t^T,      y_t = h_t c_t,      h_0 = initialState (or 0).
/// </code>
/// This is Mamba2's selective state space recurrence (Dao and Gu 2024, "Transformers are SSMs", arXiv 2405.21060)
/// after discretization, with a scalar decay per head and step. The kernel takes the discretized inputs and
/// nothing else: there is no <c>dt</c>, no skip term <c>D</c> and no gating inside. A Mamba2 layer passes
/// <c>x * dt</c> as <c>x</c> and <c>a = dt * A</c> (with <c>A &lt; 0</c> and <c>dt &gt; 0</c>, so <c>a &lt;= 0</c>)
/// and adds <c>D x</c> to the output itself. <c>a &lt;= 0</c> is expected and not checked (the values are not read
/// back): with <c>a &gt; 0</c> the state grows and the chunked form may overflow where the recurrence does not.
/// </para>
/// <para>
/// Groups: <c>b</c> and <c>c</c> have G heads (<c>[B, G, L, N]</c>, G dividing NH); head h uses group
/// <c>h / (NH / G)</c>, so the heads of a group are contiguous (mamba_ssm's <c>ngroups</c> convention: its kernels
/// and its decoding step agree on it). G = NH gives every head its own b and c, G = 1 shares them over all heads.
/// flash-linear-attention's <c>layers/mamba2.py</c> tiles the groups with <c>repeat</c> in its torch path (head h
/// uses group <c>h % G</c>), which disagrees with its own decoding path and with mamba_ssm when G is neither 1 nor NH.
/// </para>
/// <para>
/// Chunkwise form (the paper's SSD algorithm, its minimal listing; mamba_ssm <c>modules/ssd_minimal.py</c>). Split
/// the sequence into chunks of C steps, and within a chunk let <c>A_i = a_1 + ... + a_i</c> (i = 1..C) and
/// <c>segsum(i, j) = a_{j+1} + ... + a_i</c> for <c>i &gt;= j</c>. With <c>S</c> the state entering the chunk:
/// <code>
/// Y_diag = ((C B^T) ⊙ exp(segsum)) X                       (the causal quadratic form within the chunk)
/// Y_off  = diag(exp(A)) C S^T                              (the entering state read out)
/// S'     = exp(A_C) S + sum_j exp(A_C - A_j) x_j b_j^T     (the state after the chunk)
/// </code>
/// and <c>Y = Y_diag + Y_off</c>. Here every chunk's <c>C B^T</c> (once per group, not per head), the decay matrix,
/// <c>Y_diag</c>, the chunk states and <c>Y_off</c> are single batched products over all chunks; only the hand-off
/// <c>S_n = exp(A_C,n) S_{n-1} + states_n</c> runs as a loop over chunks (one fused multiply-add per chunk). The
/// heads of a group share one product for the chunk states and for <c>Y_off</c> (their P columns side by side).
/// </para>
/// <para>
/// Stability: no positive number is exponentiated for <c>a &lt;= 0</c>. <c>segsum</c> is summed from the steps
/// themselves (the cumulative sum of the masked step matrix, not a difference of cumulative sums, which loses
/// digits when <c>|A|</c> is large), its upper triangle is set to <c>-inf</c> before the exponential (the exponential
/// of the unmasked entries would overflow: <c>-segsum(i, j)</c> for <c>j &gt; i</c> is up to <c>C max|a|</c>), the
/// chunk-state weights <c>exp(A_C - A_j)</c> are the last row of that matrix, and <c>exp(A_i)</c>, <c>exp(A_C)</c> are
/// exponentials of sums of non-positive steps. Decays down to <c>a = -20</c> per step underflow to exact zeros and
/// chunks of <c>a = 0</c> are exact (no inf, no NaN, in values or gradients).
/// </para>
/// <para>
/// Any length: the sequence is padded at the end to a whole number of chunks with <c>x = b = c = a = 0</c>, which
/// leaves the state unchanged, and the padded outputs are cut off; a chunk size above L acts as C = L (one chunk,
/// without the zero rows). float16 / bfloat16 inputs are computed in float32
/// (the state is float32); the output is returned in the dtype of <c>x</c> and the final state in float32. float32
/// and float64 inputs are computed and returned in their own dtype.
/// </para>
/// <para>
/// Gradients: <see cref="Chunked"/> (packed sequences included) is a custom autograd function
/// (<c>SSDChunkFunction</c>, its math in its doc comment): the forward keeps no autograd graph and saves only its
/// inputs and the state entering every chunk (O(L D + (L / C) P N) per head); the backward recomputes the decay
/// matrices and <c>C B^T</c> segment by segment from them and runs one reverse pass over chunks for the state
/// gradient (one fused multiply-add per chunk). Gradients of every input and of both results flow; no double
/// backward. On CPU (float32 / float64, x64 with AVX2 and FMA) the function runs a compiled C# whole-chunk kernel
/// (<c>SSDChunkCpu</c>, parallel over B x NH), elsewhere tensor operations. <see cref="Recurrent"/> is differentiated by
/// autograd through its tensor operations.
/// </para>
/// </remarks>
public static class SSD
{
    /// <summary>
    /// The SSD recurrence in its chunkwise form: per chunk the quadratic form <c>((C B^T) ⊙ exp(segsum)) X</c> and the
    /// readout of the entering state, batched over all chunks; only the state hand-off runs sequentially over chunks.
    /// Differentiable with respect to every input by a hand-written chunkwise backward that recomputes the in-chunk
    /// matrices (no double backward; see the class remarks). Sequences longer than about 1024 steps are processed in
    /// segments of whole chunks with the state carried across (<see cref="SequenceSegments"/>), which changes nothing
    /// in the math and keeps the time linear in L.
    /// </summary>
    /// <param name="x">Inputs <c>[B, NH, L, P]</c> (Mamba2: <c>x * dt</c>).</param>
    /// <param name="a">Log decays <c>[B, NH, L]</c>, <c>&lt;= 0</c> expected (Mamba2: <c>dt * A</c>); any real floating dtype.</param>
    /// <param name="b">Input projections <c>[B, G, L, N]</c>, G dividing NH; head h uses group <c>h / (NH / G)</c>. The dtype of <paramref name="x"/>.</param>
    /// <param name="c">Output projections <c>[B, G, L, N]</c>, the shape and dtype of <paramref name="b"/>.</param>
    /// <param name="chunkSize">Chunk length C, at least 1; any L works (padding inside), C larger than L too.</param>
    /// <param name="initialState">State entering the sequence <c>[B, NH, P, N]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of S sequences concatenated along time in one row (B = 1). The state is reset to the
    /// sequence's initial state at every boundary, <paramref name="initialState"/> is then <c>[S, NH, P, N]</c> (one per
    /// sequence, null means zeros), and <c>FinalState</c> is <c>[S, NH, P, N]</c>, the state after each sequence's last
    /// step. The output at step t depends only on t's own sequence.
    /// </param>
    /// <returns>
    /// <c>Output</c> <c>[B, NH, L, P]</c> in the dtype of <paramref name="x"/>, and <c>FinalState</c>
    /// <c>[B, NH, P, N]</c> (the state after the last step; float32 for half-precision inputs).
    /// </returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match (the message names the argument).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkSize"/> is less than 1.</exception>
    public static (Tensor Output, Tensor FinalState) Chunked(Tensor x, Tensor a, Tensor b, Tensor c,
        int chunkSize = 64, Tensor? initialState = null, Tensor? cuSeqlens = null)
    {
        if (cuSeqlens is not null) return ChunkedPacked(x, a, b, c, chunkSize, initialState, cuSeqlens);
        return ChunkedOnPath(x, a, b, c, chunkSize, initialState, KernelPath.Auto);
    }

    /// <summary><see cref="Chunked"/> (ordinary batches) on a chosen path: tests run the tensor path on CPU too.</summary>
    internal static (Tensor Output, Tensor FinalState) ChunkedOnPath(Tensor x, Tensor a, Tensor b, Tensor c,
        int chunkSize, Tensor? initialState, KernelPath path)
    {
        var d = Validate(x, a, b, c, initialState);
        Check.AtLeast(chunkSize, 1);

        using var scope = NewDisposeScope();
        var outDtype = x.dtype;
        var dtype = Precision.StateDType(outDtype);
        long cs = Math.Min(chunkSize, d.L);    // a chunk longer than the sequence would only add zero rows
        long n = (d.L + cs - 1) / cs;
        long lp = n * cs;
        var (xc, ac, bc, cc) = (Precision.As(x, dtype), Precision.As(a, dtype), Precision.As(b, dtype), Precision.As(c, dtype));
        if (lp != d.L)
        {
            // x = b = c = a = 0 leaves the state unchanged (decay 1, no input) and the padded outputs are cut off.
            var pad4 = new long[] { 0, 0, 0, lp - d.L };
            xc = nn.functional.pad(xc, pad4);
            bc = nn.functional.pad(bc, pad4);
            cc = nn.functional.pad(cc, pad4);
            ac = nn.functional.pad(ac, new long[] { 0, lp - d.L });
        }

        var s0 = initialState is null
            ? zeros(new[] { d.B, d.NH, d.P, d.N }, dtype: dtype, device: x.device)
            : Precision.As(initialState, dtype);
        var (y, final) = SSDChunkFunction.Run(xc, ac, bc, cc, s0, GatedDeltaRuleChunkFunction.Bounds.Single(n), (int)cs, path);
        if (lp != d.L) y = y.narrow(2, 0, d.L);
        var output = Precision.As(y, outDtype).contiguous();
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The SSD recurrence as the literal step-by-step loop <c>h_t = exp(a_t) h_{t-1} + x_t b_t^T</c>,
    /// <c>y_t = h_t c_t</c>: the test oracle and the decoding path (a piece of length 1 is a single step).
    /// Differentiable (autograd).
    /// </summary>
    /// <param name="x">Inputs <c>[B, NH, L, P]</c> (Mamba2: <c>x * dt</c>).</param>
    /// <param name="a">Log decays <c>[B, NH, L]</c>, <c>&lt;= 0</c> expected (Mamba2: <c>dt * A</c>); any real floating dtype.</param>
    /// <param name="b">Input projections <c>[B, G, L, N]</c>, G dividing NH; head h uses group <c>h / (NH / G)</c>. The dtype of <paramref name="x"/>.</param>
    /// <param name="c">Output projections <c>[B, G, L, N]</c>, the shape and dtype of <paramref name="b"/>.</param>
    /// <param name="initialState">State entering the sequence <c>[B, NH, P, N]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[S + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of S sequences concatenated along time in one row (B = 1). The state is reset to the
    /// sequence's initial state at every boundary, <paramref name="initialState"/> is then <c>[S, NH, P, N]</c> (one per
    /// sequence, null means zeros), and <c>FinalState</c> is <c>[S, NH, P, N]</c>, the state after each sequence's last
    /// step. The output at step t depends only on t's own sequence.
    /// </param>
    /// <returns>
    /// <c>Output</c> <c>[B, NH, L, P]</c> in the dtype of <paramref name="x"/>, and <c>FinalState</c>
    /// <c>[B, NH, P, N]</c> (float32 for half-precision inputs).
    /// </returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match (the message names the argument).</exception>
    public static (Tensor Output, Tensor FinalState) Recurrent(Tensor x, Tensor a, Tensor b, Tensor c,
        Tensor? initialState = null, Tensor? cuSeqlens = null)
    {
        var d = Validate(x, a, b, c, cuSeqlens is null ? initialState : null);
        PackedSequences? packed = null;
        if (cuSeqlens is not null)
        {
            packed = PackedSequences.Validate(cuSeqlens, d.B, d.L, nameof(x));
            CheckPackedState(packed, initialState, x, d);
        }

        using var scope = NewDisposeScope();
        var outDtype = x.dtype;
        var dtype = Precision.StateDType(outDtype);
        long bh = d.B * d.NH;
        var xsteps = x.to(dtype).reshape(bh, d.L, d.P).unsqueeze(-1).unbind(1);   // each [BH, P, 1]
        var decays = a.to(dtype).exp().reshape(bh, d.L, 1, 1).unbind(1);         // each [BH, 1, 1]
        var bsteps = PerHead(b.to(dtype), d).reshape(bh, d.L, 1, d.N).unbind(1);  // each [BH, 1, N]
        var csteps = PerHead(c.to(dtype), d).reshape(bh, d.L, 1, d.N).unbind(1);

        Tensor Initial(int i)
        {
            if (initialState is null) return zeros(new[] { bh, d.P, d.N }, dtype: dtype, device: x.device);
            var h0 = packed is null ? initialState : initialState.narrow(0, i, 1);
            return h0.to(dtype).reshape(bh, d.P, d.N);
        }

        var outputs = new Tensor[d.L];
        int count = packed?.Count ?? 1;
        var finals = new Tensor[count];
        for (int i = 0; i < count; i++)
        {
            var h = Initial(i);
            long start = packed?.Start(i) ?? 0, end = start + (packed?.Length(i) ?? d.L);
            for (long t = start; t < end; t++)
            {
                // Per-step temporaries are released at once; autograd keeps its own references to what it saved.
                using var inner = NewDisposeScope();
                var next = AddBmm(h * decays[t], xsteps[t], bsteps[t]);          // exp(a_t) h + x_t b_t^T
                outputs[t] = csteps[t].bmm(next.transpose(1, 2)).MoveToOuterDisposeScope();   // (h c_t)^T   [BH, 1, P]
                next.MoveToOuterDisposeScope();
                if (t > start) h.Dispose();
                h = next;
            }
            finals[i] = h.reshape(d.B, d.NH, d.P, d.N);
        }
        var output = Precision.As(cat(outputs, 1).reshape(d.B, d.NH, d.L, d.P), outDtype);
        var final = count == 1 ? finals[0] : cat(finals, 0);
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <see cref="Chunked"/> on packed sequences: the chunk-aligned layout (every sequence padded at its end with
    /// <c>x = b = c = a = 0</c> to a whole number of chunks, which leaves its state unchanged), so that no chunk
    /// straddles a boundary; everything but the hand-off stays batched over all chunks of all sequences, and the
    /// hand-off takes the sequence's initial state at the chunk where a sequence starts and records the final state at
    /// the chunk where it ends. Exact: every chunk holds the steps of one sequence only (and zero rows at its end). A
    /// chunk size above the longest sequence acts as that length.
    /// </summary>
    private static (Tensor Output, Tensor FinalState) ChunkedPacked(Tensor x, Tensor a, Tensor b, Tensor c,
        int chunkSize, Tensor? initialState, Tensor cuSeqlens)
    {
        var d = Validate(x, a, b, c, null);
        Check.AtLeast(chunkSize, 1);
        var packed = PackedSequences.Validate(cuSeqlens, d.B, d.L, nameof(x));
        CheckPackedState(packed, initialState, x, d);

        using var scope = NewDisposeScope();
        var outDtype = x.dtype;
        var dtype = Precision.StateDType(outDtype);
        // A chunk longer than the longest sequence would only add zero rows.
        int cs = (int)Math.Min(chunkSize, Enumerable.Range(0, packed.Count).Max(packed.Length));
        var (gather, scatter, first, last, _) = packed.ChunkAligned(cs, x.device);
        // Every sequence padded with zero steps to whole chunks: the row extended by one zero step, gathered.
        var aligned = new[] { x, a, b, c }.Select(t =>
        {
            var tc = Precision.As(t, dtype);
            return cat(new[] { tc, zeros_like(tc.narrow(2, 0, 1)) }, 2).index_select(2, gather);
        }).ToArray();
        var h0 = initialState is null
            ? zeros(new[] { packed.Count, d.NH, d.P, d.N }, dtype: dtype, device: x.device)
            : Precision.As(initialState, dtype);
        var (joined, final) = SSDChunkFunction.Run(aligned[0], aligned[1], aligned[2], aligned[3], h0,
            new GatedDeltaRuleChunkFunction.Bounds(first, last), cs);                    // final [S, NH, P, N]
        var output = Precision.As(joined.index_select(2, scatter), outDtype);
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary><paramref name="t"/> <c>[B, G, L, N]</c> as <c>[B, NH, L, N]</c>: head h takes group <c>h / (NH / G)</c>.</summary>
    private static Tensor PerHead(Tensor t, Sizes d) => d.G == d.NH
        ? t
        : t.unsqueeze(2).expand(d.B, d.G, d.NH / d.G, d.L, d.N).reshape(d.B, d.NH, d.L, d.N);

    /// <summary><c>input + batch1 @ batch2</c> as one fused <c>baddbmm</c> (TorchSharp binds <c>this</c> to <c>batch1</c>).</summary>
    private static Tensor AddBmm(Tensor input, Tensor batch1, Tensor batch2) => batch1.baddbmm(batch2, input, beta: 1, alpha: 1);

    /// <summary>The sizes of one call: batch, heads, length, head dim P, groups G and state dim N.</summary>
    private readonly record struct Sizes(long B, long NH, long L, long P, long G, long N);

    private static void CheckPackedState(PackedSequences packed, Tensor? initialState, Tensor x, Sizes d)
    {
        if (initialState is null) return;
        Check.RealFloating(initialState);
        packed.CheckState(initialState, new[] { d.NH, d.P, d.N }, "[S, NH, P, N]");
        Check.SameDevice(x, initialState, nameof(x));
    }

    private static Sizes Validate(Tensor x, Tensor a, Tensor b, Tensor c, Tensor? initialState)
    {
        Check.RealFloating(x);
        Check.RealFloating(a);
        Check.RealFloating(b);
        Check.RealFloating(c);
        Check.Rank(x, 4, "[B, NH, L, P]");
        Check.Rank(a, 3, "[B, NH, L]");
        Check.Rank(b, 4, "[B, G, L, N]");
        Check.Rank(c, 4, "[B, G, L, N]");
        long bsz = x.shape[0], nh = x.shape[1], l = x.shape[2], p = x.shape[3], g = b.shape[1], n = b.shape[3];
        if (bsz < 1 || nh < 1 || l < 1 || p < 1)
            throw new ArgumentException($"Expected x [B, NH, L, P] with every size at least 1; got shape {Check.Shape(x)}.", nameof(x));
        if (a.shape[0] != bsz || a.shape[1] != nh || a.shape[2] != l)
            throw new ArgumentException($"Expected a [B, NH, L] = [{bsz}, {nh}, {l}] to match x; got shape {Check.Shape(a)}.", nameof(a));
        if (b.shape[0] != bsz || b.shape[2] != l || g < 1 || n < 1)
            throw new ArgumentException($"Expected b [B, G, L, N] = [{bsz}, G, {l}, N] with G and N at least 1 to match x; got shape {Check.Shape(b)}.", nameof(b));
        if (nh % g != 0)
            throw new ArgumentException($"Expected b [B, G, L, N] with a number of groups G dividing the NH = {nh} heads of x; got shape {Check.Shape(b)} (G = {g}).", nameof(b));
        if (!c.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"Expected c with the shape of b {Check.Shape(b)} [B, G, L, N]; got shape {Check.Shape(c)}.", nameof(c));
        if (b.dtype != x.dtype)
            throw new ArgumentException($"Expected b of the dtype of x ({x.dtype}); got {b.dtype}.", nameof(b));
        if (c.dtype != x.dtype)
            throw new ArgumentException($"Expected c of the dtype of x ({x.dtype}); got {c.dtype}.", nameof(c));
        Check.SameDevice(x, a, nameof(x));
        Check.SameDevice(x, b, nameof(x));
        Check.SameDevice(x, c, nameof(x));
        if (initialState is not null)
        {
            Check.RealFloating(initialState);
            var expected = new[] { bsz, nh, p, n };
            if (!initialState.shape.SequenceEqual(expected))
                throw new ArgumentException($"Expected initialState [B, NH, P, N] = {Check.Shape(expected)}; got shape {Check.Shape(initialState)}.", nameof(initialState));
            Check.SameDevice(x, initialState, nameof(x));
        }
        return new Sizes(bsz, nh, l, p, g, n);
    }
}
