using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The mLSTM cell of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory",
/// https://arxiv.org/abs/2405.04517) in three forms of one math, as in NX-AI's mlstm_kernels
/// (https://github.com/NX-AI/mlstm_kernels): the literal stabilized recurrence (<see cref="Recurrent"/>, the
/// oracle), the chunked form (<see cref="Chunked"/>, the fast path) and the quadratic parallel form
/// (<see cref="Parallel"/>).
/// </summary>
/// <remarks>
/// <para>Per batch element and head, with <c>q~_t = q_t / sqrt(Dk)</c>, <c>f'_t = logsigmoid(f_t)</c> and
/// <c>m_0 = 0, C_0 = 0, n_0 = 0</c> unless an initial state is given:</para>
/// <code>
/// m_t = max(f'_t + m_{t-1}, i_t)
/// C_t = exp(f'_t + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T
/// n_t = exp(f'_t + m_{t-1} - m_t) n_{t-1} + exp(i_t - m_t) k_t
/// h_t = C_t^T q~_t / (max(|n_t . q~_t|, exp(-m_t)) + eps)
/// </code>
/// <para>Unrolling the max from a point where the state is <c>(C_0, n_0, m_0)</c>, with the cumulative log forget
/// gate <c>b_t = f'_1 + ... + f'_t</c> and <c>D_tj = b_t - b_j + i_j</c> (j &lt;= t):
/// <c>m_t = max(b_t + m_0, max_{j&lt;=t} D_tj)</c>,
/// <c>h_t = [exp(b_t + m_0 - m_t) C_0^T q~_t + sum_{j&lt;=t} exp(D_tj - m_t) (q~_t . k_j) v_j] / (max(|exp(b_t + m_0 - m_t) n_0 . q~_t + sum_{j&lt;=t} exp(D_tj - m_t) (q~_t . k_j)|, exp(-m_t)) + eps)</c>.
/// The parallel form evaluates this over the whole sequence (with <c>m_0 = 0</c>, no initial state); the chunkwise
/// form evaluates it inside each chunk from the state entering the chunk, and carries the state across chunks with
/// <c>g = b_last</c>, <c>a_j = g - b_j + i_j</c>, <c>m' = max(g + m, max_j a_j)</c>,
/// <c>C' = exp(g + m - m') C + sum_j exp(a_j - m') k_j v_j^T</c> (likewise n). Every exponent is &lt;= 0, and the
/// stabilizer m of every step (and of the final state) is the recurrence's m exactly, so the forms agree to
/// floating-point noise, final state (C, n, m) included.</para>
/// <para>Shapes: <c>q, k [B, NH, L, Dk]</c>, <c>v [B, NH, L, Dv]</c>, gate pre-activations <c>[B, NH, L]</c>, output
/// <c>[B, NH, L, Dv]</c> in q's dtype. Gates, states and all stabilizer arithmetic run in float64 for float64 inputs
/// and in float32 otherwise (also for float16/bfloat16 inputs); the returned state holds tensors of that dtype.
/// The stabilizer m of an initial state must be finite, or <c>-inf</c> with <c>C = 0</c> and <c>n = 0</c> (a fresh start
/// whose <c>m_t = max_{j&lt;=t} D_tj</c> leaves out the <c>b_t + m_0</c> term: NX-AI xlstm's PyTorch
/// <c>parallel_stabilized_simple</c>) for sequences whose first step is valid (a finite input gate).</para>
/// </remarks>
public static class MLSTMKernel
{
    /// <summary>
    /// The chunkwise form: the state (C, n, m) is carried sequentially across chunk boundaries, and the outputs of all
    /// chunks are formed together with batched matrix products. Any L: the last chunk is padded with steps that
    /// leave the state unchanged (log forget gate 0, input gate -inf, q = k = v = 0) and the padding is cut off.
    /// </summary>
    /// <remarks>
    /// Ordinary batches run through a custom autograd function (<c>MLSTMChunkFunction</c>, its math in its XML doc): the
    /// forward builds no autograd graph and saves the inputs, the output, the per-step denominators and the state
    /// entering every chunk (O(L D + (L / c) Dk Dv) per head), and the hand-written backward recomputes the intra-chunk
    /// matrices segment by segment; the gradients of every input, the initial state and both outputs (the output and
    /// the final state, m included) are exact for this forward (the subgradient of the maxima goes to the winning term,
    /// as autograd through <see cref="Recurrent"/>). No double backward. On CPU (float32 / float64, x64 with AVX2 and
    /// FMA) the function runs a compiled C# whole-chunk kernel (<c>MLSTMChunkCpu</c>), elsewhere tensor operations.
    /// Packed sequences (<paramref name="cuSeqlens"/>) still differentiate through the tensor operations (autograd
    /// saves the per-chunk c x c matrices there).
    /// </remarks>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c> (scaled by <c>Dk^-1/2</c> inside).</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
    /// <param name="inputGate">Input gate pre-activations <c>i</c>, <c>[B, NH, L]</c> (used in log space as they are).</param>
    /// <param name="forgetGate">Forget gate pre-activations <c>f</c>, <c>[B, NH, L]</c> (the kernel applies logsigmoid).</param>
    /// <param name="chunkSize">The chunk length (at least 1); min(chunkSize, L) is used.</param>
    /// <param name="initialState">The state to continue from (shapes <c>C [B, NH, Dk, Dv]</c>, <c>n [B, NH, Dk]</c>,
    /// <c>m [B, NH]</c>), or null for <c>C = 0, n = 0, m = 0</c>. It is not disposed.</param>
    /// <param name="eps">The constant added to the denominator (at least 0).</param>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[N + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of N sequences concatenated along time in one row (B = 1). (C, n, m) are reset to the
    /// sequence's initial state at every boundary; <paramref name="initialState"/> is then per sequence
    /// (<c>C [N, NH, Dk, Dv]</c>, <c>N [N, NH, Dk]</c>, <c>M [N, NH]</c>; null means zeros) and so is the final state
    /// (the state after each sequence's last step).
    /// </param>
    /// <returns>The outputs <c>[B, NH, L, Dv]</c> and the state after step L (owned by the caller).</returns>
    public static (Tensor Output, MLSTMKernelState FinalState) Chunked(Tensor q, Tensor k, Tensor v,
        Tensor inputGate, Tensor forgetGate, int chunkSize = 64, MLSTMKernelState? initialState = null,
        double eps = 1e-6, Tensor? cuSeqlens = null)
    {
        if (cuSeqlens is not null) return ChunkedPacked(q, k, v, inputGate, forgetGate, chunkSize, initialState, eps, cuSeqlens);
        return ChunkedOnPath(q, k, v, inputGate, forgetGate, chunkSize, initialState, eps, KernelPath.Auto);
    }

    /// <summary><see cref="Chunked"/> (ordinary batches) on a chosen path: tests run the tensor path on CPU too.</summary>
    internal static (Tensor Output, MLSTMKernelState FinalState) ChunkedOnPath(Tensor q, Tensor k, Tensor v,
        Tensor inputGate, Tensor forgetGate, int chunkSize, MLSTMKernelState? initialState, double eps, KernelPath path)
    {
        var (batch, heads, length, dk, dv) = Validate(q, k, v, inputGate, forgetGate, initialState, eps);
        Check.AtLeast(chunkSize, 1);

        using var scope = NewDisposeScope();
        var ct = Precision.StateDType(q.dtype);
        long cs = Math.Min(chunkSize, length);
        long nc = (length + cs - 1) / cs;
        long pad = nc * cs - length;

        var qs = q.to(ct) * (1.0 / Math.Sqrt(dk));
        var ks = k.to(ct);
        var vs = v.to(ct);
        var ig = inputGate.to(ct);
        var lf = nn.functional.logsigmoid(forgetGate.to(ct));
        if (pad > 0)
        {
            // Padded steps leave the state unchanged: f' = 0 (forget gate +inf), i = -inf, q = k = v = 0.
            qs = nn.functional.pad(qs, new long[] { 0, 0, 0, pad });
            ks = nn.functional.pad(ks, new long[] { 0, 0, 0, pad });
            vs = nn.functional.pad(vs, new long[] { 0, 0, 0, pad });
            ig = nn.functional.pad(ig, new long[] { 0, pad }, value: double.NegativeInfinity);
            lf = nn.functional.pad(lf, new long[] { 0, pad }, value: 0.0);
        }
        Tensor? c0 = null, n0 = null, m0 = null;
        if (initialState is MLSTMKernelState init) (c0, n0, m0) = (init.C.to(ct), init.N.to(ct), init.M.to(ct));

        // The custom autograd function (MLSTMChunkFunction): segments of SequenceSegments.Length inside, a forward
        // without graph and a backward that recomputes the intra-chunk matrices from the saved chunk states.
        var (h, c, n, m) = MLSTMChunkFunction.Run(qs, ks, vs, ig, lf, c0, n0, m0, cs, eps, path);

        var output = pad > 0 ? h.narrow(2, 0, length) : h;
        output = output.to(q.dtype);

        return (output.MoveToOuterDisposeScope(), new MLSTMKernelState(c, n, m).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The packed path's chunkwise mLSTM (differentiated by autograd) over inputs already padded to <c>nc * cs</c> steps
    /// (scaled queries, log forget gates, in the
    /// compute dtype), from the state (c, n, m), which holds the state after the last chunk on return. Returns the
    /// outputs <c>[B, NH, NC, CS, Dv]</c>. <paramref name="enter"/> (packed sequences) may replace the state entering
    /// chunk j; <paramref name="exit"/> sees the state after chunk j.
    /// </summary>
    private static Tensor ChunkCore(Tensor qs, Tensor ks, Tensor vs, Tensor ig, Tensor lf, long batch, long heads, long nc, long cs,
        long dk, long dv, double eps, ref Tensor c, ref Tensor n, ref Tensor m,
        Func<long, (Tensor C, Tensor N, Tensor M), (Tensor C, Tensor N, Tensor M)>? enter, Action<long, (Tensor C, Tensor N, Tensor M)>? exit)
    {
        var qc = qs.reshape(batch, heads, nc, cs, dk);
        var kc = ks.reshape(batch, heads, nc, cs, dk);
        var vc = vs.reshape(batch, heads, nc, cs, dv);
        var ic = ig.reshape(batch, heads, nc, cs);
        var lfc = lf.reshape(batch, heads, nc, cs);
        var b = lfc.cumsum(-1);                                    // b_t: log forget decay from the chunk start to t
        var g = b.select(-1, cs - 1);                              // [B, NH, NC]: decay across the whole chunk
        var seg = SegmentSums(lfc);                                // [.., t, j] = b_t - b_j, summed directly
        var a = seg.select(-2, cs - 1) + ic;                       // a_j = g - b_j + i_j: weight of step j at the chunk end

        // Each chunk's own contribution to the state at its end, stabilized by its local maximum s = max_j a_j.
        // A chunk whose input gates are all -inf has s = -inf: normalize with 0 there (its contribution is 0) and
        // combine with exp(-inf - m') = 0, so that no inf - inf appears.
        var aMax = a.amax(new long[] { -1 });                      // [B, NH, NC]
        var s = where(aMax.isneginf(), zeros_like(aMax), aMax);
        var w = (a - s.unsqueeze(-1)).exp().unsqueeze(-1);         // [B, NH, NC, CS, 1]
        var kw = kc * w;
        var cHat = kw.transpose(-1, -2).matmul(vc);                // [B, NH, NC, Dk, Dv]
        var nHat = kw.sum(-2);                                     // [B, NH, NC, Dk]

        // Sequential pass over chunk boundaries; keep the state entering every chunk.
        var cIn = new Tensor[nc];
        var nIn = new Tensor[nc];
        var mIn = new Tensor[nc];
        // unbind, not select in the loop: the backward of each select would allocate the whole tensor.
        var gs = g.unbind(-1);
        var aMaxs = aMax.unbind(-1);
        var cHats = cHat.unbind(2);
        var nHats = nHat.unbind(2);
        for (long j = 0; j < nc; j++)
        {
            if (enter is not null) (c, n, m) = enter(j, (c, n, m));
            cIn[j] = c; nIn[j] = n; mIn[j] = m;
            // Per-chunk scope: temporaries are released at once (the autograd graph keeps what it needs).
            using var step = NewDisposeScope();
            var gj = gs[j];
            var aj = aMaxs[j];
            var mNew = maximum(gj + m, aj);
            var decay = (gj + m - mNew).exp();
            var inW = (aj - mNew).exp();
            c = (decay.unsqueeze(-1).unsqueeze(-1) * c + inW.unsqueeze(-1).unsqueeze(-1) * cHats[j]).MoveToOuterDisposeScope();
            n = (decay.unsqueeze(-1) * n + inW.unsqueeze(-1) * nHats[j]).MoveToOuterDisposeScope();
            m = mNew.MoveToOuterDisposeScope();
            exit?.Invoke(j, (c, n, m));
        }
        var cPrev = stack(cIn, 2);                                 // [B, NH, NC, Dk, Dv]
        var nPrev = stack(nIn, 2);                                 // [B, NH, NC, Dk]
        var mPrev = stack(mIn, 2);                                 // [B, NH, NC]

        // Outputs of all chunks at once.
        var interLog = b + mPrev.unsqueeze(-1);                    // [B, NH, NC, CS]: log weight of the entering state
        var dMat = CausalLogWeights(seg, ic);                      // [B, NH, NC, CS, CS]
        var mt = maximum(interLog, dMat.amax(new long[] { -1 }));  // the recurrence's m_t
        var inter = (interLog - mt).exp();
        var sMat = CausalMask(qc.matmul(kc.transpose(-1, -2)) * (dMat - mt.unsqueeze(-1)).exp());
        var num = inter.unsqueeze(-1) * qc.matmul(cPrev) + sMat.matmul(vc);
        var den = inter * qc.matmul(nPrev.unsqueeze(-1)).squeeze(-1) + sMat.sum(-1);
        var h = num / (maximum(den.abs(), (-mt).exp()) + eps).unsqueeze(-1);
        return h;
    }

    /// <summary>
    /// The stabilized recurrence, one step at a time (the oracle the other forms are tested against).
    /// </summary>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c> (scaled by <c>Dk^-1/2</c> inside).</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
    /// <param name="inputGate">Input gate pre-activations <c>i</c>, <c>[B, NH, L]</c>.</param>
    /// <param name="forgetGate">Forget gate pre-activations <c>f</c>, <c>[B, NH, L]</c> (the kernel applies logsigmoid).</param>
    /// <param name="initialState">The state to continue from, or null for <c>C = 0, n = 0, m = 0</c>. It is not disposed.</param>
    /// <param name="eps">The constant added to the denominator (at least 0).</param>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[N + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of N sequences concatenated along time in one row (B = 1). (C, n, m) are reset to the
    /// sequence's initial state at every boundary; <paramref name="initialState"/> is then per sequence
    /// (<c>C [N, NH, Dk, Dv]</c>, <c>N [N, NH, Dk]</c>, <c>M [N, NH]</c>; null means zeros) and so is the final state
    /// (the state after each sequence's last step).
    /// </param>
    /// <returns>The outputs <c>[B, NH, L, Dv]</c> and the state after step L (owned by the caller).</returns>
    public static (Tensor Output, MLSTMKernelState FinalState) Recurrent(Tensor q, Tensor k, Tensor v,
        Tensor inputGate, Tensor forgetGate, MLSTMKernelState? initialState = null, double eps = 1e-6, Tensor? cuSeqlens = null)
    {
        if (cuSeqlens is not null) return RecurrentPacked(q, k, v, inputGate, forgetGate, initialState, eps, cuSeqlens);
        var (batch, heads, length, dk, dv) = Validate(q, k, v, inputGate, forgetGate, initialState, eps);

        using var scope = NewDisposeScope();
        var ct = Precision.StateDType(q.dtype);
        var (c, n, m) = InitialState(initialState, batch, heads, dk, dv, ct, q.device);

        var qs = q.to(ct) * (1.0 / Math.Sqrt(dk));
        var ks = k.to(ct);
        var vs = v.to(ct);
        var ig = inputGate.to(ct);
        var lf = nn.functional.logsigmoid(forgetGate.to(ct));

        var outputs = new Tensor[length];
        // unbind, not select in the loop: the backward of each select would allocate the whole sequence.
        var lfs = lf.unbind(2);
        var igs = ig.unbind(2);
        var qss = qs.unbind(2);
        var kss = ks.unbind(2);
        var vss = vs.unbind(2);
        for (long t = 0; t < length; t++)
        {
            // Per-step scope: temporaries and the previous state are released at once (the autograd graph keeps
            // what it needs), so a long sequence does not hold L copies of C.
            using var step = NewDisposeScope();
            var ft = lfs[t];
            var it = igs[t];
            var qt = qss[t];
            var kt = kss[t];
            var vt = vss[t];
            var mNew = maximum(ft + m, it);
            var fa = (ft + m - mNew).exp();
            var ia = (it - mNew).exp();
            var cNew = fa.unsqueeze(-1).unsqueeze(-1) * c + ia.unsqueeze(-1).unsqueeze(-1) * (kt.unsqueeze(-1) * vt.unsqueeze(-2));
            var nNew = fa.unsqueeze(-1) * n + ia.unsqueeze(-1) * kt;
            var num = qt.unsqueeze(-2).matmul(cNew).squeeze(-2);   // C_t^T q~_t  [B, NH, Dv]
            var den = (nNew * qt).sum(-1);                          // n_t . q~_t  [B, NH]
            outputs[t] = (num / (maximum(den.abs(), (-mNew).exp()) + eps).unsqueeze(-1)).MoveToOuterDisposeScope();
            if (t > 0)
            {
                c.Dispose(); n.Dispose(); m.Dispose();
            }
            c = cNew.MoveToOuterDisposeScope();
            n = nNew.MoveToOuterDisposeScope();
            m = mNew.MoveToOuterDisposeScope();
        }

        var output = stack(outputs, 2).to(q.dtype);
        return (output.MoveToOuterDisposeScope(), new MLSTMKernelState(c, n, m).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The quadratic parallel form over the whole sequence (no initial state: <c>m_0 = 0</c>, which enters the
    /// stabilizer as the term <c>b_t + 0</c>); O(L^2) time and memory, for short sequences and tests.
    /// </summary>
    /// <remarks>
    /// The final state is formed in closed form from the zero state: with <c>a_j = b_L - b_j + i_j</c> (the last row of
    /// the log weights), <c>m_L = max(b_L, max_j a_j)</c>, <c>C_L = sum_j exp(a_j - m_L) k_j v_j^T</c>,
    /// <c>n_L = sum_j exp(a_j - m_L) k_j</c>: every exponent is at most 0, and <c>m_L</c> is the recurrence's
    /// stabilizer exactly, as in the chunked form's state hand-off.
    /// </remarks>
    /// <param name="q">Queries <c>[B, NH, L, Dk]</c> (scaled by <c>Dk^-1/2</c> inside).</param>
    /// <param name="k">Keys <c>[B, NH, L, Dk]</c>.</param>
    /// <param name="v">Values <c>[B, NH, L, Dv]</c>.</param>
    /// <param name="inputGate">Input gate pre-activations <c>i</c>, <c>[B, NH, L]</c>.</param>
    /// <param name="forgetGate">Forget gate pre-activations <c>f</c>, <c>[B, NH, L]</c> (the kernel applies logsigmoid).</param>
    /// <param name="eps">The constant added to the denominator (at least 0).</param>
    /// <returns>The outputs <c>[B, NH, L, Dv]</c> in q's dtype and the state after step L (owned by the caller).</returns>
    public static (Tensor Output, MLSTMKernelState FinalState) Parallel(Tensor q, Tensor k, Tensor v, Tensor inputGate, Tensor forgetGate,
        double eps = 1e-6)
    {
        var (_, _, length, dk, _) = Validate(q, k, v, inputGate, forgetGate, null, eps);

        using var scope = NewDisposeScope();
        var ct = Precision.StateDType(q.dtype);
        var qs = q.to(ct) * (1.0 / Math.Sqrt(dk));
        var ks = k.to(ct);
        var vs = v.to(ct);
        var ig = inputGate.to(ct);
        var lf = nn.functional.logsigmoid(forgetGate.to(ct));
        var b = lf.cumsum(-1);                                             // [B, NH, L]

        var dMat = CausalLogWeights(SegmentSums(lf), ig);                  // [B, NH, L, L]
        var mt = maximum(b, dMat.amax(new long[] { -1 }));                 // includes m_0 = 0 via b_t + 0
        var sMat = CausalMask(qs.matmul(ks.transpose(-1, -2)) * (dMat - mt.unsqueeze(-1)).exp());
        var num = sMat.matmul(vs);
        var den = sMat.sum(-1);
        var h = num / (maximum(den.abs(), (-mt).exp()) + eps).unsqueeze(-1);

        // Final state from the last row of the log weights, a_j = b_L - b_j + i_j, stabilized by m_L.
        var mFinal = mt.select(-1, length - 1);                            // [B, NH]
        var w = (dMat.select(-2, length - 1) - mFinal.unsqueeze(-1)).exp().unsqueeze(-1);   // [B, NH, L, 1]
        var kw = ks * w;
        var cFinal = kw.transpose(-1, -2).matmul(vs);                      // [B, NH, Dk, Dv]
        var nFinal = kw.sum(-2);                                           // [B, NH, Dk]
        return (h.to(q.dtype).MoveToOuterDisposeScope(), new MLSTMKernelState(cFinal, nFinal, mFinal.clone()).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <see cref="Chunked"/> on packed sequences: the chunk-aligned layout (every sequence padded at its end to a whole
    /// number of chunks with the steps that leave the state unchanged: q = k = v = 0, i = -inf, log f = 0), so that no
    /// chunk straddles a boundary; everything but the hand-off stays batched over all chunks of all sequences, and the
    /// hand-off takes the sequence's initial state where a sequence starts and records the final state where it ends.
    /// </summary>
    private static (Tensor Output, MLSTMKernelState FinalState) ChunkedPacked(Tensor q, Tensor k, Tensor v,
        Tensor inputGate, Tensor forgetGate, int chunkSize, MLSTMKernelState? initialState, double eps, Tensor cuSeqlens)
    {
        var (batch, heads, length, dk, dv) = Validate(q, k, v, inputGate, forgetGate, null, eps);
        Check.AtLeast(chunkSize, 1);
        var packed = PackedSequences.Validate(cuSeqlens, batch, length, nameof(q));
        CheckPackedState(packed, initialState, heads, dk, dv, q);

        using var scope = NewDisposeScope();
        var ct = Precision.StateDType(q.dtype);
        long cs = chunkSize;
        var (gather, scatter, first, last, aligned) = packed.ChunkAligned(chunkSize, q.device);
        Tensor Align(Tensor t, double padValue) =>
            cat(new[] { t, full_like(t.narrow(2, 0, 1), padValue) }, 2).index_select(2, gather);
        var qs = Align(q.to(ct) * (1.0 / Math.Sqrt(dk)), 0.0);
        var ks = Align(k.to(ct), 0.0);
        var vs = Align(v.to(ct), 0.0);
        var ig = Align(inputGate.to(ct), double.NegativeInfinity);
        var lf = Align(nn.functional.logsigmoid(forgetGate.to(ct)), 0.0);

        var starting = new Dictionary<long, int>();
        var ending = new Dictionary<long, int>();
        for (int i = 0; i < packed.Count; i++)
        {
            starting[first[i]] = i;
            ending[last[i]] = i;
        }
        (Tensor C, Tensor N, Tensor M) Initial(int i)
        {
            if (initialState is not MLSTMKernelState init) return InitialState(null, 1, heads, dk, dv, ct, q.device);
            return (init.C.select(0, i).unsqueeze(0).to(ct), init.N.select(0, i).unsqueeze(0).to(ct), init.M.select(0, i).unsqueeze(0).to(ct));
        }

        var finals = new (Tensor C, Tensor N, Tensor M)[packed.Count];
        long chunks = aligned / cs;
        long group = SequenceSegments.Length(chunkSize) / cs;   // whole chunks per segment, as in Chunked
        var pieces = new List<Tensor>();
        var (c, n, m) = Initial(0);
        for (long c0 = 0; c0 < chunks; c0 += group)
        {
            long count = Math.Min(group, chunks - c0);
            long offset = c0;
            Tensor Piece(Tensor t) => t.narrow(2, offset * cs, count * cs);
            var h = ChunkCore(Piece(qs), Piece(ks), Piece(vs), Piece(ig), Piece(lf), 1, heads, count, cs, dk, dv, eps,
                ref c, ref n, ref m,
                (j, state) => starting.TryGetValue(offset + j, out var i) && offset + j > 0 ? Initial(i) : state,
                (j, state) =>
                {
                    if (ending.TryGetValue(offset + j, out var i)) finals[i] = state;
                });
            pieces.Add(h.reshape(1, heads, count * cs, dv));
        }
        var output = (pieces.Count == 1 ? pieces[0] : cat(pieces.ToArray(), 2)).index_select(2, scatter).to(q.dtype);
        var final = new MLSTMKernelState(cat(finals.Select(f => f.C).ToArray(), 0), cat(finals.Select(f => f.N).ToArray(), 0),
            cat(finals.Select(f => f.M).ToArray(), 0));
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    /// <summary><see cref="Recurrent"/> on packed sequences: the same step, (C, n, m) reset at every boundary.</summary>
    private static (Tensor Output, MLSTMKernelState FinalState) RecurrentPacked(Tensor q, Tensor k, Tensor v,
        Tensor inputGate, Tensor forgetGate, MLSTMKernelState? initialState, double eps, Tensor cuSeqlens)
    {
        var (batch, heads, length, dk, dv) = Validate(q, k, v, inputGate, forgetGate, null, eps);
        var packed = PackedSequences.Validate(cuSeqlens, batch, length, nameof(q));
        CheckPackedState(packed, initialState, heads, dk, dv, q);

        using var scope = NewDisposeScope();
        var ct = Precision.StateDType(q.dtype);
        var qss = (q.to(ct) * (1.0 / Math.Sqrt(dk))).unbind(2);
        var kss = k.to(ct).unbind(2);
        var vss = v.to(ct).unbind(2);
        var igs = inputGate.to(ct).unbind(2);
        var lfs = nn.functional.logsigmoid(forgetGate.to(ct)).unbind(2);
        var outputs = new Tensor[length];
        var finals = new (Tensor C, Tensor N, Tensor M)[packed.Count];
        for (int i = 0; i < packed.Count; i++)
        {
            var (c, n, m) = initialState is MLSTMKernelState init
                ? (init.C.select(0, i).unsqueeze(0).to(ct), init.N.select(0, i).unsqueeze(0).to(ct), init.M.select(0, i).unsqueeze(0).to(ct))
                : InitialState(null, 1, heads, dk, dv, ct, q.device);
            for (long t = packed.Start(i); t < packed.Start(i) + packed.Length(i); t++)
            {
                var qt = qss[t];
                var kt = kss[t];
                var mNew = maximum(lfs[t] + m, igs[t]);
                var fa = (lfs[t] + m - mNew).exp();
                var ia = (igs[t] - mNew).exp();
                c = fa.unsqueeze(-1).unsqueeze(-1) * c + ia.unsqueeze(-1).unsqueeze(-1) * (kt.unsqueeze(-1) * vss[t].unsqueeze(-2));
                n = fa.unsqueeze(-1) * n + ia.unsqueeze(-1) * kt;
                m = mNew;
                var num = qt.unsqueeze(-2).matmul(c).squeeze(-2);
                var den = (n * qt).sum(-1);
                outputs[t] = num / (maximum(den.abs(), (-m).exp()) + eps).unsqueeze(-1);
            }
            finals[i] = (c, n, m);
        }
        var output = stack(outputs, 2).to(q.dtype);
        var final = new MLSTMKernelState(cat(finals.Select(f => f.C).ToArray(), 0), cat(finals.Select(f => f.N).ToArray(), 0),
            cat(finals.Select(f => f.M).ToArray(), 0));
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope());
    }

    private static void CheckPackedState(PackedSequences packed, MLSTMKernelState? initialState, long heads, long dk, long dv, Tensor q)
    {
        if (initialState is not MLSTMKernelState init) return;
        StatePart(init.C, "C", new[] { packed.Count, heads, dk, dv }, "[N, NH, Dk, Dv] (one per packed sequence)", q);
        StatePart(init.N, "N", new[] { packed.Count, heads, dk }, "[N, NH, Dk] (one per packed sequence)", q);
        StatePart(init.M, "M", new[] { packed.Count, heads }, "[N, NH] (one per packed sequence)", q);
    }

    /// <summary>
    /// Zeroes the entries above the diagonal of <c>[..., T, T]</c> with a select (not a multiplication), so that a
    /// non-finite key or gate at step j does not reach the rows t &lt; j (0 * inf is NaN; the select is 0).
    /// </summary>
    private static Tensor CausalMask(Tensor s)
    {
        long len = s.shape[^1];
        var above = ones(len, len, dtype: ScalarType.Bool, device: s.device).triu(1);
        return s.masked_fill(above, 0.0);
    }

    /// <summary>
    /// <c>S[..., t, j] = lf_{j+1} + ... + lf_t</c> (= <c>b_t - b_j</c>) for j &lt;= t and 0 above the diagonal, from
    /// <c>lf [..., T]</c>. Summed directly rather than as a difference of cumulative sums, so that a long run of
    /// strongly negative log forget gates loses no float32 precision.
    /// </summary>
    private static Tensor SegmentSums(Tensor lf)
    {
        long len = lf.shape[^1];
        var strictlyLower = ones(len, len, dtype: ScalarType.Bool, device: lf.device).tril(-1);
        var rows = lf.unsqueeze(-1).expand(lf.shape.Append(len).ToArray());          // [..., s, j] = lf_s
        return rows.masked_fill(strictlyLower.logical_not(), 0.0).cumsum(-2);        // sum over j < s <= t
    }

    /// <summary><c>D[t, j] = seg[t, j] + i_j</c> for j &lt;= t and -inf above the diagonal; shape <c>[..., T, T]</c>.</summary>
    private static Tensor CausalLogWeights(Tensor seg, Tensor ig)
    {
        long len = seg.shape[^1];
        var causal = ones(len, len, dtype: ScalarType.Bool, device: seg.device).tril();
        return (seg + ig.unsqueeze(-2)).masked_fill(causal.logical_not(), double.NegativeInfinity);
    }

    private static (Tensor C, Tensor N, Tensor M) InitialState(MLSTMKernelState? state, long batch, long heads, long dk, long dv,
        ScalarType ct, Device device)
    {
        if (state is null)
        {
            return (zeros(new long[] { batch, heads, dk, dv }, dtype: ct, device: device),
                zeros(new long[] { batch, heads, dk }, dtype: ct, device: device),
                zeros(new long[] { batch, heads }, dtype: ct, device: device));
        }
        var s = state.Value;
        return (s.C.to(ct), s.N.to(ct), s.M.to(ct));
    }

    private static (long B, long NH, long L, long Dk, long Dv) Validate(Tensor q, Tensor k, Tensor v,
        Tensor inputGate, Tensor forgetGate, MLSTMKernelState? initialState, double eps)
    {
        var (batch, heads, length, dk, dv) = Check.QueryKeyValue(q, k, v);
        Check.RealFloating(inputGate);
        Check.RealFloating(forgetGate);
        Check.Rank(inputGate, 3, "[B, NH, L]");
        Check.Rank(forgetGate, 3, "[B, NH, L]");
        var gateShape = new[] { batch, heads, length };
        if (!inputGate.shape.SequenceEqual(gateShape))
            throw new ArgumentException($"Expected inputGate of shape {Check.Shape(gateShape)}; got shape {Check.Shape(inputGate)}.", nameof(inputGate));
        if (!forgetGate.shape.SequenceEqual(gateShape))
            throw new ArgumentException($"Expected forgetGate of shape {Check.Shape(gateShape)}; got shape {Check.Shape(forgetGate)}.", nameof(forgetGate));
        Check.SameDevice(q, inputGate, nameof(q));
        Check.SameDevice(q, forgetGate, nameof(q));
        if (!(eps >= 0 && double.IsFinite(eps)))
            throw new ArgumentOutOfRangeException(nameof(eps), eps, $"Expected a finite eps of at least 0; got {eps}.");
        if (initialState is MLSTMKernelState init)
        {
            StatePart(init.C, "C", new[] { batch, heads, dk, dv }, "[B, NH, Dk, Dv]", q);
            StatePart(init.N, "N", new[] { batch, heads, dk }, "[B, NH, Dk]", q);
            StatePart(init.M, "M", new[] { batch, heads }, "[B, NH]", q);
        }
        return (batch, heads, length, dk, dv);
    }

    private static void StatePart(Tensor? part, string name, long[] expected, string layout, Tensor q)
    {
        if (part is null)
            throw new ArgumentException($"Expected initialState.{name} {layout} = {Check.Shape(expected)}; got null.", "initialState");
        if (!Check.IsRealFloating(part.dtype))
            throw new ArgumentException($"Expected initialState.{name} of a real floating dtype; got {part.dtype}.", "initialState");
        if (!part.shape.SequenceEqual(expected))
            throw new ArgumentException($"Expected initialState.{name} {layout} = {Check.Shape(expected)}; got shape {Check.Shape(part)}.", "initialState");
        if (!Check.SameDevice(part.device, q.device))
            throw new ArgumentException($"Expected initialState.{name} on q's device {q.device}; got {part.device}.", "initialState");
    }
}
