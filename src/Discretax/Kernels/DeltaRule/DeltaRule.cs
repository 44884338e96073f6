using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The delta rule (DeltaNet's token mixer) in two exact forms: <see cref="Chunked"/>, the WY / UT-transform
/// chunkwise form whose work is batched matrix products, and <see cref="Recurrent"/>, the literal
/// step-by-step loop (the test oracle and the decoding path).
/// </summary>
/// <remarks>
/// <para>
/// Per batch and head, with <c>q_t, k_t</c> in R^Dk, <c>v_t</c> in R^Dv, <c>beta_t</c> a scalar (usually in
/// (0, 1)) and the state <c>S</c> in R^{Dk x Dv}:
/// <code>
/// S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T,      o_t = S_t^T q_t,      S_0 = initialState (or 0).
/// </code>
/// The kernel does no normalization or scaling of its own: callers L2-normalize q and k (and scale q if
/// they want). With unnormalized keys the recurrence may grow without bound; both forms still compute it.
/// </para>
/// <para>
/// Chunkwise form (Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule over Sequence
/// Length", https://arxiv.org/abs/2406.06484; fla <c>ops/delta_rule</c>). Split the sequence into chunks of
/// <c>C</c> rows (rows = time). Per chunk, with <c>Kb = diag(beta) K</c> and
/// <c>A = tril(Kb K^T, -1)</c>, the UT transform <c>T = (I + A)^{-1}</c> (a unit lower-triangular solve)
/// gives <c>W = T Kb</c> and <c>U = T diag(beta) V</c>. Then, sequentially over chunks,
/// <code>
/// U' = U - W S,      O = Q S + tril(Q K^T) U',      S &lt;- S + K^T U'.
/// </code>
/// Two implementations of this math, one autograd function with a hand-written backward that recomputes each
/// chunk from the inputs and the state entering it (saved memory O(L D + (L / C) Dk Dv) per head; the math of the
/// backward is on <c>DeltaRuleChunkFunction</c>): on CPU (float32 / float64, x64 with AVX2 and FMA) a compiled C# kernel
/// runs each (batch, head) pair's chunks one after the other, every product on cache-resident blocks, parallel over
/// B x NH; on other devices the chunks are batched tensor operations (the UT transform, <c>Q K^T</c> and the output
/// products over all chunks of a ~1024-step segment at once, only <c>U' = U - W S</c> and <c>S += K^T U'</c> per chunk).
/// The packed (<c>cuSeqlens</c>) layouts differentiate their tensor operations with autograd.
/// </para>
/// <para>
/// Any length: the sequence is padded at the end to a multiple of the chunk size with
/// <c>q = k = v = beta = 0</c>, which leaves the state unchanged (<c>U' = 0</c> on padded rows), and the
/// padded outputs are cut off. float16 / bfloat16 inputs are computed in float32 (the state is float32);
/// the output is returned in the input dtype and the final state in float32. float32 and float64 inputs are
/// computed and returned in their own dtype.
/// </para>
/// </remarks>
public static class DeltaRule
{
    /// <summary>
    /// The delta rule in the chunkwise WY / UT-transform form: per chunk a unit lower-triangular inverse and matrix
    /// products; only the state hand-off runs sequentially over chunks. Differentiable with respect to every input by a
    /// custom backward (recomputing, linear in L); on CPU a compiled kernel, elsewhere tensor operations in segments of
    /// about 1024 steps (<see cref="SequenceSegments"/>). Double backward is not supported.
    /// </summary>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c> (normally L2-normalized by the caller).</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
    /// <param name="beta">Write strengths <c>[B, NH, L]</c>.</param>
    /// <param name="chunkSize">Chunk length C, at least 1; any L works (padding inside), C larger than L too. The default 32 was
    /// measured fastest on CPU at Dk = Dv = 64 (docs/benchmarks.md, "Fast chunked kernels"); the result does not depend on it.</param>
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
    public static (Tensor Output, Tensor FinalState) Chunked(
        Tensor q, Tensor k, Tensor v, Tensor beta, int chunkSize = 32, Tensor? initialState = null, Tensor? cuSeqlens = null) =>
        ChunkedOnPath(q, k, v, beta, chunkSize, initialState, cuSeqlens, KernelPath.Auto);

    /// <summary><see cref="Chunked"/> on a chosen path (tests run both on CPU).</summary>
    internal static (Tensor Output, Tensor FinalState) ChunkedOnPath(
        Tensor q, Tensor k, Tensor v, Tensor beta, int chunkSize, Tensor? initialState, Tensor? cuSeqlens, KernelPath path)
    {
        if (cuSeqlens is not null) return ChunkedPacked(q, k, v, beta, chunkSize, initialState, cuSeqlens, DefaultPackedLayout);
        var (b, nh, l, dk, dv) = Validate(q, k, v, beta, initialState);
        Check.AtLeast(chunkSize, 1);

        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        long c = chunkSize;
        long n = (l + c - 1) / c;
        long lp = n * c;
        long bh = b * nh;

        Tensor qc = q.to(dtype), kc = k.to(dtype), vc = v.to(dtype), bc = beta.to(dtype);
        if (lp != l)
        {
            // Zero rows leave the state unchanged: k = v = beta = 0 gives U' = 0 there.
            var pad4 = new long[] { 0, 0, 0, lp - l };
            qc = nn.functional.pad(qc, pad4);
            kc = nn.functional.pad(kc, pad4);
            vc = nn.functional.pad(vc, pad4);
            bc = nn.functional.pad(bc, new long[] { 0, lp - l });
        }

        Tensor s0 = initialState is null
            ? zeros(new[] { bh, dk, dv }, dtype: dtype, device: q.device)
            : initialState.to(dtype).reshape(bh, dk, dv).contiguous();
        var (o, s) = DeltaRuleChunkFunction.Run(qc.reshape(bh, lp, dk).contiguous(), kc.reshape(bh, lp, dk).contiguous(),
            vc.reshape(bh, lp, dv).contiguous(), bc.reshape(bh, lp).contiguous(), s0, chunkSize, path);
        var output = o.reshape(b, nh, lp, dv);
        if (lp != l) output = output.narrow(2, 0, l).contiguous();
        if (output.dtype != outDtype) output = output.to(outDtype);
        var final = s.reshape(b, nh, dk, dv);
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The chunkwise delta rule over inputs already padded to <c>n * c</c> steps (in the compute dtype), from the state
    /// <paramref name="s"/> <c>[BH, Dk, Dv]</c>, which holds the state after the last chunk on return. Returns the
    /// outputs <c>[BH * n, c, Dv]</c> and, in <paramref name="sEnter"/>, the state entering every chunk <c>[BH, n, Dk, Dv]</c>.
    /// <paramref name="enter"/> (packed sequences) may replace the state entering chunk j; <paramref name="exit"/> sees the
    /// state after chunk j. The packed path differentiates it by autograd; the ordinary batch's tensor path runs it under
    /// <c>DeltaRuleChunkFunction</c> without a graph.
    /// </summary>
    internal static Tensor ChunkCore(Tensor qc, Tensor kc, Tensor vc, Tensor bc, long bh, long n, long c, long dk, long dv,
        ref Tensor s, Func<long, Tensor, Tensor>? enter, Action<long, Tensor>? exit, out Tensor sEnter)
    {
        // WY / UT transform for all chunks at once: (I + A) [W | U] = [diag(beta) K | diag(beta) V].
        var (qs, _, kt, _, _, w, u) = DeltaRuleChunkFunction.Transform(qc.reshape(bh, n * c, dk), kc.reshape(bh, n * c, dk),
            vc.reshape(bh, n * c, dv), bc.reshape(bh, n * c), c);

        // The only sequential part: per chunk U' = U - W S and S <- S + K^T U'.
        var ws = w.unbind(1);
        var us = u.unbind(1);
        var kts = kt.unbind(1);
        var entering = new Tensor[n];
        var corrected = new Tensor[n];
        for (long i = 0; i < n; i++)
        {
            if (enter is not null) s = enter(i, s);
            entering[i] = s;
            var up = AddBmm(us[i], ws[i], s, -1);                                  // U - W S
            corrected[i] = up;
            s = AddBmm(s, kts[i], up, 1);                                           // S + K^T U'
            exit?.Invoke(i, s);
        }

        // All chunks' outputs at once: O = Q S_enter + tril(Q K^T) U'.
        sEnter = torch.stack(entering, 1);                                      // [BH, N, Dk, Dv]
        var uCorr = torch.stack(corrected, 1).reshape(bh * n, c, dv);
        var q3 = qs.reshape(bh * n, c, dk);
        var qk = q3.bmm(kt.reshape(bh * n, dk, c)).tril(0);
        return AddBmm(q3.bmm(sEnter.reshape(bh * n, dk, dv)), qk, uCorr, 1);   // [BH*N, C, Dv]
    }

    /// <summary>
    /// The delta rule as the literal step-by-step recurrence
    /// <c>S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T</c>, <c>o_t = S_t^T q_t</c>: the test oracle
    /// and the decoding path (a piece of length 1 is a single step). Differentiable (autograd).
    /// </summary>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
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
    public static (Tensor Output, Tensor FinalState) Recurrent(
        Tensor q, Tensor k, Tensor v, Tensor beta, Tensor? initialState = null, Tensor? cuSeqlens = null)
    {
        if (cuSeqlens is not null) return RecurrentPacked(q, k, v, beta, initialState, cuSeqlens);
        var (b, nh, l, dk, dv) = Validate(q, k, v, beta, initialState);

        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        long bh = b * nh;

        var qr = q.to(dtype).reshape(bh, l, dk);
        var kr = k.to(dtype).reshape(bh, l, dk);
        var vr = v.to(dtype).reshape(bh, l, dv);
        var br = beta.to(dtype).reshape(bh, l, 1);
        var qsteps = qr.split(1, 1);                                            // each [BH, 1, Dk]
        var ksteps = kr.split(1, 1);
        var vsteps = vr.split(1, 1);                                            // each [BH, 1, Dv]
        var bsteps = br.split(1, 1);                                            // each [BH, 1, 1]

        Tensor s = initialState is null
            ? zeros(new[] { bh, dk, dv }, dtype: dtype, device: q.device)
            : initialState.to(dtype).reshape(bh, dk, dv);
        var outputs = new Tensor[l];
        for (int t = 0; t < l; t++)
        {
            // Per-step temporaries are released at once; autograd keeps its own references to what it saved.
            using var inner = NewDisposeScope();
            var kt = ksteps[t];
            var predicted = kt.bmm(s);                                          // (S^T k)^T   [BH, 1, Dv]
            var delta = (vsteps[t] - predicted) * bsteps[t];                    // beta (v - S^T k)
            var next = AddBmm(s, kt.transpose(1, 2), delta, 1);                 // S + k delta^T
            outputs[t] = qsteps[t].bmm(next).MoveToOuterDisposeScope();         // (S^T q)^T   [BH, 1, Dv]
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
    /// <see cref="Chunked"/> on packed sequences: the chunk-aligned layout (every sequence padded at its end with zero
    /// rows to a whole number of chunks, which leaves its state unchanged), so that no chunk straddles a boundary; the
    /// UT transform and the output products stay batched over all chunks of all sequences, and the sequential hand-off
    /// takes the sequence's initial state at the chunk where a sequence starts and records the final state at the
    /// chunk where it ends. Exact: every chunk computes what the sequence run alone computes.
    /// </summary>
    internal static (Tensor Output, Tensor FinalState) ChunkedPacked(
        Tensor q, Tensor k, Tensor v, Tensor beta, int chunkSize, Tensor? initialState, Tensor cuSeqlens, PackedLayout layout)
    {
        var (b, nh, l, dk, dv) = Validate(q, k, v, beta, null);
        Check.AtLeast(chunkSize, 1);
        var packed = PackedSequences.Validate(cuSeqlens, b, l, nameof(q));
        CheckPackedState(packed, initialState, q, nh, dk, dv);
        if (layout == PackedLayout.Masked) return ChunkedMasked(q, k, v, beta, chunkSize, initialState, packed, nh, l, dk, dv);

        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        long c = chunkSize;
        Tensor Initial(int i) => initialState is null
            ? zeros(new[] { nh, dk, dv }, dtype: dtype, device: q.device)
            : initialState.select(0, i).to(dtype);
        var (output, finals) = packed.RunChunkAligned(chunkSize, dtype, new[] { q, k, v, beta }, Initial,
            (Tensor[] p, long count, ref Tensor s, Func<long, Tensor, Tensor> enter, Action<long, Tensor> exit) =>
                ChunkCore(p[0], p[1], p[2], p[3], nh, count, c, dk, dv, ref s, enter, exit, out _).reshape(1, nh, count * c, dv));
        if (output.dtype != outDtype) output = output.to(outDtype);
        var final = stack(finals, 0);                                            // [N, NH, Dk, Dv]
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary>The packed layouts of <see cref="ChunkedPacked"/> (tests and measurements run both).</summary>
    internal enum PackedLayout
    {
        /// <summary>Every sequence padded to whole chunks.</summary>
        ChunkAligned,

        /// <summary>The packed row as it is, chunk matrices masked across boundaries.</summary>
        Masked,
    }

    /// <summary>The layout <see cref="Chunked"/> uses: measured faster (docs/kernels/contracts.md, "Packed sequences").</summary>
    internal const PackedLayout DefaultPackedLayout = PackedLayout.Masked;

    /// <summary>
    /// Packed chunkwise delta rule on the row as it is (only its tail padded): per chunk, <c>A</c> and the causal
    /// <c>Q K^T</c> are masked to pairs of rows of the same sequence (so <c>T</c> is block diagonal per sequence), the
    /// entering state acts only on the rows of the sequence continuing into the chunk, rows of a sequence starting
    /// inside the chunk take that sequence's initial state (their <c>W h0</c> and <c>Q h0</c> computed batched per
    /// sequence), and the hand-off state is the state of the chunk's last sequence; a sequence ending before the
    /// chunk's last row gets its final state from its own rows.
    /// </summary>
    private static (Tensor Output, Tensor FinalState) ChunkedMasked(
        Tensor q, Tensor k, Tensor v, Tensor beta, int chunkSize, Tensor? initialState, PackedSequences packed, long nh, long l, long dk, long dv)
    {
        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        var device = q.device;
        long c = chunkSize;
        long n = (l + c - 1) / c;
        long lp = n * c;
        int count = packed.Count;

        // Host bookkeeping: the sequence of every row (tail padding belongs to the last sequence: zero rows leave its
        // state unchanged), the chunk's first sequence and whether it continues from the previous chunk.
        var seg = new long[lp];
        for (int i = 0; i < count; i++)
            for (long t = packed.Start(i); t < packed.Start(i) + packed.Length(i); t++) seg[t] = i;
        for (long t = l; t < lp; t++) seg[t] = count - 1;
        var cont = new bool[n];
        var contRows = new bool[lp];
        for (long j = 0; j < n; j++)
        {
            int f = (int)seg[j * c];
            cont[j] = packed.Start(f) < j * c;
            for (long r = 0; r < c; r++) contRows[j * c + r] = cont[j] && seg[j * c + r] == f;
        }

        Tensor qc = q.to(dtype), kc = k.to(dtype), vc = v.to(dtype), bc = beta.to(dtype);
        if (lp != l)
        {
            var pad4 = new long[] { 0, 0, 0, lp - l };
            qc = nn.functional.pad(qc, pad4);
            kc = nn.functional.pad(kc, pad4);
            vc = nn.functional.pad(vc, pad4);
            bc = nn.functional.pad(bc, new long[] { 0, lp - l });
        }
        var qs = qc.reshape(nh, n, c, dk);
        var ks = kc.reshape(nh, n, c, dk);
        var vs = vc.reshape(nh, n, c, dv);
        var bs = bc.reshape(nh, n, c, 1);
        var segT = tensor(seg, device: device).reshape(n, c);
        var other = segT.unsqueeze(-1).ne(segT.unsqueeze(-2));                  // [N, C, C]: rows of different sequences
        var contMask = tensor(contRows, device: device).reshape(n, c, 1);       // rows taking the entering state

        var kb = ks * bs;
        var kt = ks.transpose(-1, -2);
        var tInv = UnitLowerInverse.Invert(kb.matmul(kt).masked_fill(other, 0.0));
        var w = tInv.matmul(kb);                                                // [NH, N, C, Dk]
        var u = tInv.matmul(vs * bs);                                           // [NH, N, C, Dv]

        // Rows of a sequence that starts inside a chunk: W h0 and Q h0, batched over the sequences.
        Tensor? hq = null;
        if (initialState is not null)
        {
            var gather = new long[count * c];
            Array.Fill(gather, lp);
            for (int i = 0; i < count; i++)
            {
                long start = packed.Start(i), end = Math.Min(packed.Start(i) + packed.Length(i), (start / c + 1) * c);
                for (long t = start; t < end; t++) gather[i * c + (t - start)] = t;
            }
            var idx = tensor(gather, device: device);
            var h0 = initialState.to(dtype);                                    // [N, NH, Dk, Dv]
            Tensor PerSequence(Tensor rows, long d)                             // [NH, LP, d] -> [NH, LP, Dv]: rows times h0[seq]
            {
                var ext = cat(new[] { rows, zeros(new[] { nh, 1, d }, dtype: dtype, device: device) }, 1);
                var g = ext.index_select(1, idx).reshape(nh, count, c, d).transpose(0, 1);   // [N, NH, C, d]
                var prod = g.matmul(h0).transpose(0, 1).reshape(nh, count * c, dv);
                return zeros(new[] { nh, lp + 1, dv }, dtype: dtype, device: device).index_add(1, idx, prod, 1).narrow(1, 0, lp);
            }
            u = u - PerSequence(w.reshape(nh, lp, dk), dk).reshape(nh, n, c, dv);
            hq = PerSequence(qs.reshape(nh, lp, dk), dk).reshape(nh * n, c, dv);
        }

        Tensor Initial(long i) => initialState is null
            ? zeros(new[] { nh, dk, dv }, dtype: dtype, device: device)
            : initialState.select(0, i).to(dtype);
        var ws = w.unbind(1);
        var us = u.unbind(1);
        var kts = kt.unbind(1);
        var contMasks = contMask.unbind(0);
        var entering = new Tensor[n];
        var corrected = new Tensor[n];
        var finals = new Tensor[count];
        Tensor s = zeros(new[] { nh, dk, dv }, dtype: dtype, device: device);
        for (long j = 0; j < n; j++)
        {
            entering[j] = s;
            long first = seg[j * c], last = seg[j * c + c - 1];
            var up = cont[j] ? where(contMasks[j], AddBmm(us[j], ws[j], s, -1), us[j]) : us[j];   // U - W S on continuing rows
            corrected[j] = up;
            // Sequences ending in this chunk before its last row: their final state from their own rows.
            for (long i = first; i < last; i++)
            {
                var rows = segT[j].eq(i).reshape(c, 1);
                var baseState = cont[j] && i == first ? s : Initial(i);
                finals[i] = AddBmm(baseState, kts[j], where(rows, up, zeros_like(up)), 1);
            }
            var lastBase = cont[j] && last == first ? s : Initial(last);
            var lastUp = first == last ? up : where(segT[j].eq(last).reshape(c, 1), up, zeros_like(up));
            s = AddBmm(lastBase, kts[j], lastUp, 1);
            if (j == n - 1 || seg[(j + 1) * c] != last) finals[last] = s;     // the last sequence ends with the chunk
        }

        var sEnter = stack(entering, 1).reshape(nh * n, dk, dv);
        var uCorr = stack(corrected, 1).reshape(nh * n, c, dv);
        var q3 = qs.reshape(nh * n, c, dk);
        var otherAll = other.unsqueeze(0).expand(nh, n, c, c).reshape(nh * n, c, c);
        var qk = q3.bmm(kt.reshape(nh * n, dk, c)).tril(0).masked_fill(otherAll, 0.0);
        var contAll = contMask.unsqueeze(0).expand(nh, n, c, 1).reshape(nh * n, c, 1);
        var inter = q3.bmm(sEnter);
        var o = AddBmm(where(contAll, inter, zeros_like(inter)), qk, uCorr, 1);
        if (hq is not null) o = o + hq;
        var output = o.reshape(1, nh, lp, dv);
        if (lp != l) output = output.narrow(2, 0, l).contiguous();
        if (output.dtype != outDtype) output = output.to(outDtype);
        return (output.MoveToOuterDisposeScope(), stack(finals, 0).MoveToOuterDisposeScope());
    }

    /// <summary><see cref="Recurrent"/> on packed sequences: the same loop, the state reset at every boundary.</summary>
    private static (Tensor Output, Tensor FinalState) RecurrentPacked(
        Tensor q, Tensor k, Tensor v, Tensor beta, Tensor? initialState, Tensor cuSeqlens)
    {
        var (b, nh, l, dk, dv) = Validate(q, k, v, beta, null);
        var packed = PackedSequences.Validate(cuSeqlens, b, l, nameof(q));
        CheckPackedState(packed, initialState, q, nh, dk, dv);

        using var scope = NewDisposeScope();
        var outDtype = q.dtype;
        var dtype = Precision.StateDType(outDtype);
        var qsteps = q.to(dtype).reshape(nh, l, dk).split(1, 1);                // each [NH, 1, Dk]
        var ksteps = k.to(dtype).reshape(nh, l, dk).split(1, 1);
        var vsteps = v.to(dtype).reshape(nh, l, dv).split(1, 1);
        var bsteps = beta.to(dtype).reshape(nh, l, 1).split(1, 1);
        var outputs = new Tensor[l];
        var finals = new Tensor[packed.Count];
        for (int i = 0; i < packed.Count; i++)
        {
            Tensor s = initialState is null
                ? zeros(new[] { nh, dk, dv }, dtype: dtype, device: q.device)
                : initialState.select(0, i).to(dtype);
            for (long t = packed.Start(i); t < packed.Start(i) + packed.Length(i); t++)
            {
                var kt = ksteps[t];
                var delta = (vsteps[t] - kt.bmm(s)) * bsteps[t];                 // beta (v - S^T k)
                s = AddBmm(s, kt.transpose(1, 2), delta, 1);                     // S + k delta^T
                outputs[t] = qsteps[t].bmm(s);                                  // (S^T q)^T   [NH, 1, Dv]
            }
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
    /// The single-head chunked delta rule on the batch-first layout of the PyTorch DeltaNet package's
    /// <c>chunk_delta_rule(Q, K, V, beta, chunk_size)</c>: a thin wrapper over <see cref="Chunked"/> with one
    /// head and a zero initial state. Like the package's function it returns the output only. Not a form of its own
    /// (it is <see cref="Chunked"/> in another layout), so it is internal: the tests use it to check the package's
    /// calling convention.
    /// </summary>
    /// <param name="Q">Queries <c>[B, L, d]</c>.</param>
    /// <param name="K">Keys <c>[B, L, d]</c>.</param>
    /// <param name="V">Values <c>[B, L, dv]</c> (the package uses dv = d).</param>
    /// <param name="beta">Write strengths <c>[B, L]</c>.</param>
    /// <param name="chunkSize">Chunk length, at least 1 (need not divide L).</param>
    /// <returns>The output <c>[B, L, dv]</c> in the dtype of <paramref name="Q"/>.</returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match (the message names the argument).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkSize"/> is less than 1.</exception>
#pragma warning disable IDE1006 // Q, K, V: the names the package (and the issue) give them.
    internal static Tensor ChunkDeltaRule(Tensor Q, Tensor K, Tensor V, Tensor beta, int chunkSize)
#pragma warning restore IDE1006
    {
        Check.Rank(Q, 3, "[B, L, d]");
        Check.Rank(K, 3, "[B, L, d]");
        Check.Rank(V, 3, "[B, L, dv]");
        Check.Rank(beta, 2, "[B, L]");
        Check.RealFloating(Q);
        if (!K.shape.SequenceEqual(Q.shape))
            throw new ArgumentException($"Expected K with the shape of Q {Check.Shape(Q)} [B, L, d]; got shape {Check.Shape(K)}.", nameof(K));
        if (V.shape[0] != Q.shape[0] || V.shape[1] != Q.shape[1])
            throw new ArgumentException($"Expected V [B, L, dv] = [{Q.shape[0]}, {Q.shape[1]}, dv] to match Q; got shape {Check.Shape(V)}.", nameof(V));
        if (beta.shape[0] != Q.shape[0] || beta.shape[1] != Q.shape[1])
            throw new ArgumentException($"Expected beta [B, L] = [{Q.shape[0]}, {Q.shape[1]}] to match Q; got shape {Check.Shape(beta)}.", nameof(beta));
        if (K.dtype != Q.dtype)
            throw new ArgumentException($"Expected K of the dtype of Q ({Q.dtype}); got {K.dtype}.", nameof(K));
        if (V.dtype != Q.dtype)
            throw new ArgumentException($"Expected V of the dtype of Q ({Q.dtype}); got {V.dtype}.", nameof(V));
        Check.AtLeast(chunkSize, 1);
        using var scope = NewDisposeScope();
        var (output, _) = Chunked(Q.unsqueeze(1), K.unsqueeze(1), V.unsqueeze(1), beta.unsqueeze(1), chunkSize);
        return output.squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>input + alpha * (batch1 @ batch2)</c> as one fused <c>baddbmm</c>. TorchSharp's instance method binds
    /// <c>this</c> to libtorch's <c>batch1</c>, its first argument to <c>batch2</c> and its second to the added
    /// <c>input</c>; this helper fixes the order in one place.
    /// </summary>
    private static Tensor AddBmm(Tensor input, Tensor batch1, Tensor batch2, float alpha) =>
        batch1.baddbmm(batch2, input, beta: 1, alpha: alpha);

    private static (long B, long NH, long L, long Dk, long Dv) Validate(
        Tensor q, Tensor k, Tensor v, Tensor beta, Tensor? initialState)
    {
        var (b, nh, l, dk, dv) = Check.QueryKeyValue(q, k, v);
        Check.Rank(beta, 3, "[B, NH, L]");
        Check.RealFloating(beta);
        if (beta.shape[0] != b || beta.shape[1] != nh || beta.shape[2] != l)
            throw new ArgumentException($"Expected beta [B, NH, L] = [{b}, {nh}, {l}] to match q; got shape {Check.Shape(beta)}.", nameof(beta));
        Check.SameDevice(q, beta, nameof(q));
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
