using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The gated delta rule (Gated DeltaNet's token mixer: the delta rule with a per-step scalar decay of the state) in two
/// exact forms: <see cref="Chunked"/>, the WY / UT-transform chunkwise form with the decay folded into the chunk
/// matrices, and <see cref="Recurrent"/>, the literal step-by-step loop (the test oracle and the decoding path).
/// </summary>
/// <remarks>
/// <para>
/// Per batch and head, with <c>q_t, k_t</c> in R^Dk, <c>v_t</c> in R^Dv, the write strength <c>beta_t</c> (usually in
/// (0, 1)), the log decay <c>g_t</c> (<c>g_t &lt;= 0</c>, so <c>exp(g_t)</c> is in [0, 1]) and the state <c>S</c> in
/// R^{Dk x Dv}:
/// <code>
/// S_t = exp(g_t) S_{t-1} + beta_t k_t (v_t - exp(g_t) S_{t-1}^T k_t)^T,      o_t = S_t^T q_t,      S_0 = initialState (or 0).
/// </code>
/// With <c>g = 0</c> this is <see cref="DeltaRule"/>. The kernel does no normalization or scaling of its own (as
/// flash-linear-attention's <c>naive_recurrent_gated_delta_rule</c> with scale 1): callers L2-normalize q and k and
/// scale q if they want. A positive <c>g_t</c> (growth) is computed as written by both forms (it is not checked:
/// no value is read back); the chunked form then exponentiates positive in-chunk sums and may overflow where the
/// recurrence would not yet, so keep <c>g &lt;= 0</c> (a <c>logsigmoid</c> or <c>-softplus</c> gate).
/// </para>
/// <para>
/// Chunkwise form (Yang, Kautz and Hatamizadeh 2024, "Gated Delta Networks", https://arxiv.org/abs/2412.06464; fla
/// <c>ops/gated_delta_rule</c>). Split the sequence into chunks of <c>C</c> rows. Within a chunk entered with state
/// <c>S_0</c>, let <c>G_i = g_1 + ... + g_i</c> (the cumulative log decay from the chunk's start, rows 1..C) and
/// <c>u_i = beta_i (v_i - exp(g_i) S_{i-1}^T k_i)</c>, so <c>S_i = exp(g_i) S_{i-1} + k_i u_i^T</c>. By induction
/// <code>
/// S_i = exp(G_i) S_0 + sum_{j &lt;= i} exp(G_i - G_j) k_j u_j^T,
/// </code>
/// hence <c>exp(g_i) S_{i-1} = exp(G_i) S_0 + sum_{j &lt; i} exp(G_i - G_j) k_j u_j^T</c> and
/// <code>
/// u_i + beta_i sum_{j &lt; i} exp(G_i - G_j) (k_i^T k_j) u_j = beta_i v_i - beta_i exp(G_i) S_0^T k_i.
/// </code>
/// In matrix form, with <c>Gamma_ij = exp(G_i - G_j)</c> for <c>j &lt;= i</c> (0 above the diagonal),
/// <c>A = tril(diag(beta) (K K^T ⊙ Gamma), -1)</c> and the UT transform <c>T = (I + A)^{-1}</c>:
/// <code>
/// U' = U - W S_0,      W = T diag(beta exp(G)) K,      U = T diag(beta) V,
/// O  = diag(exp(G)) Q S_0 + (tril(Q K^T) ⊙ Gamma) U',
/// S_C = exp(G_C) S_0 + (diag(exp(G_C - G)) K)^T U'.
/// </code>
/// <c>A</c>, <c>T</c> (<c>UnitLowerInverse</c>), <c>W</c>, <c>U</c>, <c>Gamma</c> and the output products are single
/// batched operations over all chunks; only <c>U' = U - W S</c> and the state update run in a loop over chunks (two
/// fused <c>baddbmm</c> calls and one scaling per chunk), as in <see cref="DeltaRule.Chunked"/>.
/// </para>
/// <para>
/// Stability: no positive number is exponentiated when <c>g &lt;= 0</c>. The exponents are the cumulative sums
/// <c>G_i</c> and the segment sums <c>D_ij = g_{j+1} + ... + g_i</c> (<c>j &lt;= i</c>; <c>G_C - G_i = D_Ci</c>), all sums of
/// non-positive numbers; <c>D</c> is formed directly (a cumulative sum of the masked matrix <c>[g_r]_{r &gt; j}</c> down its
/// columns), not as the difference <c>G_i - G_j</c>, and the entries above the diagonal are replaced by <c>-inf</c> with a
/// select before the exponential, which gives exact zeros. Every factor is in [0, 1]: strong decays (<c>g = -20</c> per
/// step, <c>G</c> down to -1280 in a chunk of 64) underflow to 0 without inf or NaN, <c>g = -inf</c> (forget the state) gives
/// exact zeros (a difference would give <c>-inf - (-inf) = NaN</c>), and a chunk of <c>g = 0</c> gives <c>Gamma = 1</c> on and
/// below the diagonal, i.e. exactly the delta rule's chunk. The rounding of an exponent is relative to the exponent
/// itself (about <c>C eps |D_ij|</c>), so a large decay early in a chunk costs no accuracy in the factors between later
/// rows (with differences of cumulative sums the error would be <c>eps |G_i|</c> whatever the factor).
/// </para>
/// <para>
/// Any length: the sequence is padded at the end to a multiple of the chunk size with <c>q = k = v = beta = g = 0</c>,
/// which leaves the state unchanged (<c>U' = 0</c> and no decay on padded rows), and the padded outputs are cut off.
/// Sequences longer than about 1024 steps go through in segments of whole chunks with the state carried across
/// (<see cref="SequenceSegments"/>). float16 / bfloat16 inputs are computed in float32 (the state is float32); the
/// output is returned in the dtype of <c>q</c> and the final state in float32. float32 and float64 inputs are
/// computed and returned in their own dtype.
/// </para>
/// <para>
/// Gradients: <see cref="Chunked"/> (packed sequences included) is a custom autograd function
/// (<c>GatedDeltaRuleChunkFunction</c>, its math in its doc comment): the forward keeps no autograd graph and saves
/// only its inputs and the state entering every chunk (O(L D + (L / C) Dk Dv) per head); the backward recomputes
/// the decay matrices, <c>T</c>, <c>W</c>, <c>U</c> and <c>U'</c> segment by segment from them and runs one reverse
/// pass over chunks for the state gradient. Gradients of every input and of both results flow; no double backward.
/// On CPU (float32 / float64, x64 with AVX2 and FMA) the function runs a compiled C# whole-chunk kernel
/// (<c>GatedDeltaRuleChunkCpu</c>, parallel over B x NH; the segments apply to the tensor path only), elsewhere tensor
/// operations. <see cref="Recurrent"/> is differentiated by autograd through its tensor operations.
/// </para>
/// </remarks>
public static class GatedDeltaRule
{
    /// <summary>
    /// The gated delta rule in the chunkwise WY / UT-transform form (the decay folded into the chunk matrices, see the
    /// class remarks): per chunk a batched unit lower-triangular solve and batched products; only the state hand-off
    /// runs sequentially over chunks. Differentiable with respect to every input by a hand-written chunkwise backward
    /// that recomputes the in-chunk matrices (no double backward; see the class remarks). Sequences longer than
    /// about 1024 steps are processed in segments of whole chunks with the state carried across
    /// (<see cref="SequenceSegments"/>), which changes nothing in the math and keeps the time linear in L.
    /// </summary>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c> (normally L2-normalized by the caller).</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
    /// <param name="g">
    /// Log decays <c>[B, NH, L]</c>, expected <c>&lt;= 0</c> (the state is multiplied by <c>exp(g_t)</c> at step t);
    /// <c>-inf</c> forgets the state exactly. Not checked: a positive value is computed as written and may overflow (see
    /// the class remarks).
    /// </param>
    /// <param name="beta">Write strengths <c>[B, NH, L]</c>.</param>
    /// <param name="chunkSize">Chunk length C, at least 1; any L works (padding inside), C larger than L too.</param>
    /// <param name="initialState">State entering the sequence <c>[B, NH, Dk, Dv]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[N + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of N sequences concatenated along time in one row (B = 1). The state is reset to the
    /// sequence's initial state at every boundary, <paramref name="initialState"/> is then <c>[N, NH, Dk, Dv]</c> (one per
    /// sequence, null means zeros), and <c>FinalState</c> is <c>[N, NH, Dk, Dv]</c>, the state after each sequence's last
    /// step. The output at step t depends only on t's own sequence.
    /// </param>
    /// <returns>
    /// <c>Output</c> <c>[B, NH, L, Dv]</c> in the dtype of <paramref name="q"/>, and <c>FinalState</c>
    /// <c>[B, NH, Dk, Dv]</c> (the state after the last step; float32 for half-precision inputs).
    /// </returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match (the message names the argument).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkSize"/> is less than 1.</exception>
    public static (Tensor Output, Tensor FinalState) Chunked(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta,
        int chunkSize = 64, Tensor? initialState = null, Tensor? cuSeqlens = null)
    {
        if (cuSeqlens is not null) return ChunkedPacked(q, k, v, g, beta, chunkSize, initialState, cuSeqlens);
        return ChunkedOnPath(q, k, v, g, beta, chunkSize, initialState, KernelPath.Auto);
    }

    /// <summary><see cref="Chunked"/> (ordinary batches) on a chosen path: tests run the tensor path on CPU too.</summary>
    internal static (Tensor Output, Tensor FinalState) ChunkedOnPath(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta,
        int chunkSize, Tensor? initialState, KernelPath path)
    {
        var (b, nh, l, dk, dv) = Validate(q, k, v, g, beta, initialState);
        Check.AtLeast(chunkSize, 1);

        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        long c = chunkSize;
        long n = (l + c - 1) / c;
        long lp = n * c;

        Tensor qc = q.to(dtype), kc = k.to(dtype), vc = v.to(dtype), gc = g.to(dtype), bc = beta.to(dtype);
        if (lp != l)
        {
            // Zero rows leave the state unchanged: k = v = beta = 0 gives U' = 0, g = 0 no decay.
            var pad4 = new long[] { 0, 0, 0, lp - l };
            var pad3 = new long[] { 0, lp - l };
            qc = nn.functional.pad(qc, pad4);
            kc = nn.functional.pad(kc, pad4);
            vc = nn.functional.pad(vc, pad4);
            gc = nn.functional.pad(gc, pad3);
            bc = nn.functional.pad(bc, pad3);
        }

        Tensor s0 = initialState is null
            ? zeros(new[] { b, nh, dk, dv }, dtype: dtype, device: q.device)
            : initialState.to(dtype);
        var (output, final) = GatedDeltaRuleChunkFunction.Run(qc, kc, vc, gc, bc, s0,
            GatedDeltaRuleChunkFunction.Bounds.Single(n), chunkSize, path);
        if (lp != l) output = output.narrow(2, 0, l).contiguous();
        if (output.dtype != outDtype) output = output.to(outDtype);
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The gated delta rule as the literal step-by-step recurrence
    /// <c>S_t = exp(g_t) S_{t-1} + beta_t k_t (v_t - exp(g_t) S_{t-1}^T k_t)^T</c>, <c>o_t = S_t^T q_t</c>: the test
    /// oracle and the decoding path (a piece of length 1 is a single step). Differentiable (autograd).
    /// </summary>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
    /// <param name="g">Log decays <c>[B, NH, L]</c>, expected <c>&lt;= 0</c> (<c>-inf</c> forgets the state); not checked (a positive
    /// value grows the state).</param>
    /// <param name="beta">Write strengths <c>[B, NH, L]</c>.</param>
    /// <param name="initialState">State entering the sequence <c>[B, NH, Dk, Dv]</c>; null means zeros.</param>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[N + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of N sequences concatenated along time in one row (B = 1). The state is reset to the
    /// sequence's initial state at every boundary, <paramref name="initialState"/> is then <c>[N, NH, Dk, Dv]</c> (one per
    /// sequence, null means zeros), and <c>FinalState</c> is <c>[N, NH, Dk, Dv]</c>, the state after each sequence's last
    /// step. The output at step t depends only on t's own sequence.
    /// </param>
    /// <returns>
    /// <c>Output</c> <c>[B, NH, L, Dv]</c> in the dtype of <paramref name="q"/>, and <c>FinalState</c>
    /// <c>[B, NH, Dk, Dv]</c> (float32 for half-precision inputs).
    /// </returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match (the message names the argument).</exception>
    public static (Tensor Output, Tensor FinalState) Recurrent(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta,
        Tensor? initialState = null, Tensor? cuSeqlens = null)
    {
        if (cuSeqlens is not null) return RecurrentPacked(q, k, v, g, beta, initialState, cuSeqlens);
        var (b, nh, l, dk, dv) = Validate(q, k, v, g, beta, initialState);

        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        long bh = b * nh;

        var qsteps = q.to(dtype).reshape(bh, l, dk).split(1, 1);                // each [BH, 1, Dk]
        var ksteps = k.to(dtype).reshape(bh, l, dk).split(1, 1);
        var vsteps = v.to(dtype).reshape(bh, l, dv).split(1, 1);                // each [BH, 1, Dv]
        var dsteps = g.to(dtype).reshape(bh, l, 1).exp().split(1, 1);           // exp(g_t), each [BH, 1, 1]
        var bsteps = beta.to(dtype).reshape(bh, l, 1).split(1, 1);              // each [BH, 1, 1]

        Tensor s = initialState is null
            ? zeros(new[] { bh, dk, dv }, dtype: dtype, device: q.device)
            : initialState.to(dtype).reshape(bh, dk, dv);
        var outputs = new Tensor[l];
        for (int t = 0; t < l; t++)
        {
            // Per-step temporaries are released at once; autograd keeps its own references to what it saved.
            using var inner = NewDisposeScope();
            var next = Step(s, qsteps[t], ksteps[t], vsteps[t], dsteps[t], bsteps[t], out var o);
            outputs[t] = o.MoveToOuterDisposeScope();
            next.MoveToOuterDisposeScope();
            if (t > 0 || initialState is null) s.Dispose();
            s = next;
        }

        var output = torch.cat(outputs, 1).reshape(b, nh, l, dv);
        foreach (var o in outputs) o.Dispose();
        if (output.dtype != outDtype) output = output.to(outDtype);
        var final = s.reshape(b, nh, dk, dv);
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One step of the recurrence on <c>[H, 1, D]</c> rows: returns <c>S_t</c> and sets <paramref name="output"/> to
    /// <c>(S_t^T q_t)^T</c> <c>[H, 1, Dv]</c>; <paramref name="decay"/> is <c>exp(g_t)</c> <c>[H, 1, 1]</c>.
    /// </summary>
    private static Tensor Step(Tensor s, Tensor q, Tensor k, Tensor v, Tensor decay, Tensor beta, out Tensor output)
    {
        var decayed = s * decay;                                                // exp(g) S
        var delta = (v - k.bmm(decayed)) * beta;                                // beta (v - (exp(g) S)^T k)
        var next = AddBmm(decayed, k.transpose(1, 2), delta, 1);                // exp(g) S + k delta^T
        output = q.bmm(next);                                                   // (S^T q)^T
        return next;
    }

    /// <summary>
    /// <see cref="Chunked"/> on packed sequences, in the chunk-aligned layout: every sequence padded at its end with
    /// zero rows (<c>q = k = v = beta = g = 0</c>, which leave its state unchanged) to a whole number of chunks, so that
    /// no chunk straddles a boundary; the UT transform, the decays and the output products stay batched over all chunks
    /// of all sequences, and the sequential hand-off takes the sequence's initial state at the chunk where a sequence
    /// starts and records the final state at the chunk where it ends. Exact: every chunk computes what the sequence run
    /// alone computes. Long rows go in segments of about 1024 steps as unpacked.
    /// </summary>
    internal static (Tensor Output, Tensor FinalState) ChunkedPacked(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta,
        int chunkSize, Tensor? initialState, Tensor cuSeqlens)
    {
        var (b, nh, l, dk, dv) = Validate(q, k, v, g, beta, null);
        Check.AtLeast(chunkSize, 1);
        using var scope = NewDisposeScope();                                   // also holds the host copy of cuSeqlens
        var packed = PackedSequences.Validate(cuSeqlens, b, l, nameof(q));
        CheckPackedState(packed, initialState, q, nh, dk, dv);

        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        var (gather, scatter, first, last, _) = packed.ChunkAligned(chunkSize, q.device);
        // Every sequence padded with zero steps to whole chunks: the row extended by one zero step, gathered.
        var aligned = new[] { q, k, v, g, beta }.Select(t =>
        {
            var tc = Precision.As(t, dtype);
            return cat(new[] { tc, zeros_like(tc.narrow(2, 0, 1)) }, 2).index_select(2, gather);
        }).ToArray();
        var h0 = initialState is null
            ? zeros(new[] { packed.Count, nh, dk, dv }, dtype: dtype, device: q.device)
            : Precision.As(initialState, dtype);
        var (joined, final) = GatedDeltaRuleChunkFunction.Run(aligned[0], aligned[1], aligned[2], aligned[3], aligned[4], h0,
            new GatedDeltaRuleChunkFunction.Bounds(first, last), chunkSize);           // final [N, NH, Dk, Dv]
        var output = joined.index_select(2, scatter);
        if (output.dtype != outDtype) output = output.to(outDtype);
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary><see cref="Recurrent"/> on packed sequences: the same loop, the state reset at every boundary.</summary>
    private static (Tensor Output, Tensor FinalState) RecurrentPacked(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta,
        Tensor? initialState, Tensor cuSeqlens)
    {
        var (b, nh, l, dk, dv) = Validate(q, k, v, g, beta, null);
        using var scope = NewDisposeScope();                                   // also holds the host copy of cuSeqlens
        var packed = PackedSequences.Validate(cuSeqlens, b, l, nameof(q));
        CheckPackedState(packed, initialState, q, nh, dk, dv);

        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        var qsteps = q.to(dtype).reshape(nh, l, dk).split(1, 1);                // each [NH, 1, Dk]
        var ksteps = k.to(dtype).reshape(nh, l, dk).split(1, 1);
        var vsteps = v.to(dtype).reshape(nh, l, dv).split(1, 1);
        var dsteps = g.to(dtype).reshape(nh, l, 1).exp().split(1, 1);
        var bsteps = beta.to(dtype).reshape(nh, l, 1).split(1, 1);
        var outputs = new Tensor[l];
        var finals = new Tensor[packed.Count];
        for (int i = 0; i < packed.Count; i++)
        {
            Tensor s = initialState is null
                ? zeros(new[] { nh, dk, dv }, dtype: dtype, device: q.device)
                : initialState.select(0, i).to(dtype);
            for (long t = packed.Start(i); t < packed.Start(i) + packed.Length(i); t++)
                s = Step(s, qsteps[t], ksteps[t], vsteps[t], dsteps[t], bsteps[t], out outputs[t]);
            finals[i] = s;
        }
        var output = torch.cat(outputs, 1).reshape(1, nh, l, dv);
        if (output.dtype != outDtype) output = output.to(outDtype);
        return (output.MoveToOuterDisposeScope(), stack(finals, 0).MoveToOuterDisposeScope());
    }

    private static void CheckPackedState(PackedSequences packed, Tensor? initialState, Tensor q, long nh, long dk, long dv)
    {
        if (initialState is null) return;
        Check.RealFloating(initialState);
        packed.CheckState(initialState, new[] { nh, dk, dv }, "[N, NH, Dk, Dv]");
        Check.SameDevice(q, initialState, nameof(q));
    }

    /// <summary>
    /// <c>input + alpha * (batch1 @ batch2)</c> as one fused <c>baddbmm</c> (TorchSharp binds <c>this</c> to libtorch's
    /// <c>batch1</c>, its first argument to <c>batch2</c> and its second to the added <c>input</c>).
    /// </summary>
    private static Tensor AddBmm(Tensor input, Tensor batch1, Tensor batch2, float alpha) =>
        batch1.baddbmm(batch2, input, beta: 1, alpha: alpha);

    /// <summary>Checks a per-step scalar input <c>[B, NH, L]</c> (<paramref name="name"/>: <c>g</c> or <c>beta</c>).</summary>
    private static void PerStep(Tensor t, Tensor q, long b, long nh, long l, string name)
    {
        Check.Rank(t, 3, "[B, NH, L]", name);
        Check.RealFloating(t, name);
        if (t.shape[0] != b || t.shape[1] != nh || t.shape[2] != l)
            throw new ArgumentException($"Expected {name} [B, NH, L] = [{b}, {nh}, {l}] to match q; got shape {Check.Shape(t)}.", name);
        Check.SameDevice(q, t, nameof(q), name);
    }

    private static (long B, long NH, long L, long Dk, long Dv) Validate(
        Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor? initialState)
    {
        var (b, nh, l, dk, dv) = Check.QueryKeyValue(q, k, v);
        PerStep(g, q, b, nh, l, nameof(g));
        PerStep(beta, q, b, nh, l, nameof(beta));
        if (initialState is not null)
        {
            Check.RealFloating(initialState);
            var expected = new[] { b, nh, dk, dv };
            if (!initialState.shape.SequenceEqual(expected))
                throw new ArgumentException($"Expected initialState [B, NH, Dk, Dv] = {Check.Shape(expected)}; got shape {Check.Shape(initialState)}.", nameof(initialState));
            Check.SameDevice(q, initialState, nameof(q));
        }
        return (b, nh, l, dk, dv);
    }
}
