using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function of <see cref="MLSTMKernel.Chunked"/> (ordinary batches): a forward that runs without an
/// autograd graph and saves only its inputs, its output, the per-step denominators and the state entering every chunk,
/// and a hand-written backward that recomputes the intra-chunk gate matrices from them (as NX-AI's mlstm_kernels do in
/// their native PyTorch chunkwise backward), exact for our stabilized forward, denominator and stabilizer included.
/// </summary>
/// <remarks>
/// <para><b>Inputs</b> (already in the compute dtype float32/float64 and padded to whole chunks of length c): scaled
/// queries <c>q [B, NH, L, Dk]</c>, keys <c>k</c>, values <c>v [B, NH, L, Dv]</c>, input gates <c>i</c> and log forget
/// gates <c>f' [B, NH, L]</c>, and optionally the initial state (C, n, m) (null: zeros). Outputs: the outputs h
/// <c>[B, NH, L, Dv]</c> and the final (C, n, m). Double backward is not supported.</para>
/// <para><b>Forward</b>, per chunk with entering state (C, n, m), local steps t, j = 0..c-1. The state is kept as one
/// matrix <c>Ĉ = [C | n]</c> <c>[Dk, Dv + 1]</c> and the values as <c>v̂_j = [v_j, 1]</c>, so that numerator and
/// denominator are one product:</para>
/// <code>
/// b_t   = f'_0 + ... + f'_t                        (within the chunk)
/// D_tj  = i_j + f'_{j+1} + ... + f'_t  (j &lt;= t),   -inf above the diagonal (summed directly, no cancellation)
/// m_t   = max(b_t + m, max_j D_tj)                 (the recurrence's stabilizer of step t)
/// E_tj  = exp(D_tj - m_t),   e_t = exp(b_t + m - m_t)
/// S_tj  = (q_t . k_j) E_tj                          (masked to j &lt;= t by a select)
/// [num_t, den_t] = e_t q_t Ĉ + sum_j S_tj v̂_j
/// Z_t   = max(|den_t|, exp(-m_t)) + eps,   h_t = num_t / Z_t
/// m'    = m_{c-1},   Ĉ' = e_{c-1} Ĉ + sum_j E_{c-1,j} k_j v̂_j^T        (the state after the chunk)
/// </code>
/// <para>The m' of every chunk comes first (a scalar pass over the chunks of a segment), then the outputs and the
/// contributions of all chunks in batched products, and the hand-off <c>Ĉ' = e Ĉ + W</c> is one fused multiply-add per
/// chunk. Sequences longer than <see cref="SequenceSegments.Length"/> go segment by segment (cache-sized temporaries).
/// Saved: the inputs, h, den <c>[B, NH, L]</c>, and Ĉ, m entering every chunk plus the final ones
/// (<c>(L/c + 1) Dk (Dv + 1)</c> per head); never a c x c matrix.</para>
/// <para><b>Backward.</b> Given dh, dĈ_final = [dC, dn], dm_final. With the stabilizers m_t, m' held fixed,
/// every quantity depends on the gates only through <c>exp(b_t) q_t</c>, <c>exp(i_j - b_j) k_j</c>, <c>exp(m) Ĉ</c> and
/// the factor <c>exp(b_{c-1})</c> of Ĉ'. Hence, with <c>X = &lt;dĈ, Ĉ&gt;</c> (Frobenius) for every chunk state:</para>
/// <code>
/// dnum_t = dh_t / Z_t,  dZ_t = -(dh_t . h_t) / Z_t,  dden_t = [|den_t| &gt; exp(-m_t)] sign(den_t) dZ_t
/// dm_t (explicit) = -eps (dh_t . h_t) / Z_t     (num, den scale as exp(-m_t); both branches of the max agree)
/// dŜ = [dnum, dden] V̂^T,  G = dŜ ∘ E             (the gradient of q.k)
/// dĈ = e_{c-1} dĈ' + q^T diag(e) [dnum, dden]     (reverse pass over chunks: one fused multiply-add each)
/// dq = G k + diag(e) [dnum, dden] Ĉ^T
/// dk = G^T q + diag(E_{c-1,:}) V̂ dĈ'^T
/// dv̂ = S^T [dnum, dden] + diag(E_{c-1,:}) k dĈ'           (dv = its first Dv columns)
/// db_t = q_t . dq_t - k_t . dk_t + dm_t + [t = c-1] X'      di_j = k_j . dk_j
/// dm (entering) = X + R,    dC = dĈ[:, :Dv],  dn = dĈ[:, Dv]
/// </code>
/// <para>The stabilizers are then routed through their maxima (the subgradient autograd takes through the recurrence:
/// all to the winner): <c>m_t = max(b_t + m, D_{t j*})</c> sends <c>dm_t</c> to b_t in either case, and to m if the first
/// term wins (ties go to it), else to <c>-b_{j*}</c> and <c>i_{j*}</c>. The exit stabilizer <c>m' = m_{c-1}</c>
/// receives <c>dm'_total = dm_next - X_next = R_next</c> (its explicit part <c>-&lt;dĈ', Ĉ'&gt;</c> included), added to
/// the last step's <c>dm_t</c>; so <c>R = sum_t [b_t + m wins] dm_t</c> obeys the reverse scalar recursion
/// <c>R = W + [b_{c-1} + m wins] R_next</c> with <c>R_final = dm_final - X_final</c>. Finally
/// <c>df'_s = sum_{t &gt;= s} db_t</c> within the chunk. The intra-chunk matrices D, E, S, qk and dŜ are recomputed per
/// segment; the backward costs about twice the forward's products.</para>
/// </remarks>
internal sealed class MLSTMChunkFunction : autograd.MultiTensorFunction<MLSTMChunkFunction>
{
    private sealed record Sizes(long ChunkSize, double Eps, bool HasState, bool Compiled);

    /// <inheritdoc/>
    public override string Name => "MLSTMChunkwiseBackward";

    /// <summary>
    /// Runs the chunked mLSTM over padded inputs: through the function when a gradient is needed, else the forward alone.
    /// Returns the outputs <c>[B, NH, L, Dv]</c> and the final C, n, m (all new tensors).
    /// </summary>
    internal static (Tensor H, Tensor C, Tensor N, Tensor M) Run(Tensor qs, Tensor ks, Tensor vs, Tensor ig, Tensor lf,
        Tensor? c0, Tensor? n0, Tensor? m0, long chunkSize, double eps, KernelPath path = KernelPath.Auto)
    {
        bool compiled = path == KernelPath.Auto && MLSTMChunkCpu.Supports(qs);
        using var scope = NewDisposeScope();
        bool track = is_grad_enabled() && new[] { qs, ks, vs, ig, lf, c0, n0, m0 }.Any(t => t is not null && t.requires_grad);
        Tensor h, c, n, m;
        if (track)
        {
            var o = apply(qs, ks, vs, ig, lf, c0!, n0!, m0!, chunkSize, eps, compiled);
            (h, c, n, m) = (o[0], o[1], o[2], o[3]);
        }
        else
        {
            using var _ = no_grad();
            var f = compiled
                ? CompiledForward(qs.contiguous(), ks.contiguous(), vs.contiguous(), ig.contiguous(), lf.contiguous(), c0, n0, m0, chunkSize, eps, keep: false)
                : Forward(qs, ks, vs, ig, lf, c0, n0, m0, chunkSize, eps, keep: false);
            (h, c, n, m) = (f.H, f.C, f.N, f.M);
        }
        return (h.MoveToOuterDisposeScope(), c.MoveToOuterDisposeScope(), n.MoveToOuterDisposeScope(), m.MoveToOuterDisposeScope());
    }

    /// <summary>The number of tensors the last tracked forward on this thread saved for the backward, and their total
    /// elements (tests).</summary>
    [ThreadStatic] internal static (int Count, long Elements) LastSaved;

    private record struct ForwardResult(Tensor H, Tensor Den, Tensor States, Tensor Ms, Tensor C, Tensor N, Tensor M);

    /// <summary>
    /// The forward over all segments. With <paramref name="keep"/>, <c>States [B, NH, NC + 1, Dk, Dv + 1]</c> and
    /// <c>Ms [B, NH, NC + 1]</c> hold the state entering every chunk and the final one.
    /// </summary>
    private static ForwardResult Forward(Tensor qs, Tensor ks, Tensor vs, Tensor ig, Tensor lf, Tensor? c0, Tensor? n0, Tensor? m0,
        long cs, double eps, bool keep)
    {
        using var scope = NewDisposeScope();
        long batch = qs.shape[0], heads = qs.shape[1], length = qs.shape[2], dk = qs.shape[3], dv = vs.shape[3];
        long nc = length / cs;
        long group = SequenceSegments.Length((int)cs) / cs;
        var dt = qs.dtype;
        var dev = qs.device;
        var h = empty(new[] { batch, heads, length, dv }, dtype: dt, device: dev);
        var den = empty(new[] { batch, heads, length }, dtype: dt, device: dev);
        long slots = keep ? nc + 1 : Math.Min(group, nc) + 1;
        var (states, ms) = StateSlots(qs, batch, heads, slots, dk, dv, c0, n0, m0);
        var masks = new Masks(cs, dev);

        long last = 0;
        for (long c = 0; c < nc; c += group)
        {
            using var seg = NewDisposeScope();
            long g = Math.Min(group, nc - c);
            long offset = keep ? c : 0;
            if (!keep && c > 0)
            {
                states.select(2, 0).copy_(states.select(2, last));
                ms.select(2, 0).copy_(ms.select(2, last));
            }
            var st = states.narrow(2, offset, g + 1);
            var mst = ms.narrow(2, offset, g + 1);
            var x = Segment.Load(qs, ks, vs, ig, lf, c, g, cs, masks);
            var inter = x.Stabilize(mst, cs);                              // fills mst[1..g]; D becomes E in place
            var e = x.D;
            var eLast = e.select(-2, cs - 1);                              // [B, NH, g, c] = exp(a_j - m')

            // Hand-off: Ĉ_{j+1} = e_last Ĉ_j + K^T diag(E_last) V̂.
            var next = st.narrow(2, 1, g);
            next.copy_((x.K * eLast.unsqueeze(-1)).transpose(-1, -2).matmul(x.Vh));
            var decay = inter.select(-1, cs - 1).unsqueeze(-1).unsqueeze(-1);   // [B, NH, g, 1, 1]
            for (long j = 0; j < g; j++) st.select(2, j + 1).addcmul_(st.select(2, j), decay.select(2, j), 1);

            // Outputs of all chunks: [num, den] = e q Ĉ + S V̂.
            var s = x.Q.matmul(x.K.transpose(-1, -2)).mul_(e).masked_fill_(masks.Upper, 0.0);
            var num = x.Q.matmul(st.narrow(2, 0, g)).mul_(inter.unsqueeze(-1));
            num.add_(s.matmul(x.Vh));
            var dn = num.select(-1, dv);
            var z = maximum(dn.abs(), x.Mt.neg().exp_()).add_(eps);
            h.narrow(2, c * cs, g * cs).copy_((num.narrow(-1, 0, dv) / z.unsqueeze(-1)).view(batch, heads, g * cs, dv));
            den.narrow(2, c * cs, g * cs).copy_(dn.reshape(batch, heads, g * cs));
            last = g;
        }

        long fin = keep ? nc : last;
        return Result(h, den, states, ms, fin, dv);
    }

    /// <summary>
    /// A forward's result: the outputs, denominators, state slots and the final <c>(C, n, m)</c> copied out of slot
    /// <paramref name="fin"/>, all moved out of the caller's scope.
    /// </summary>
    private static ForwardResult Result(Tensor h, Tensor den, Tensor states, Tensor ms, long fin, long dv)
    {
        var final = states.select(2, fin);
        var cf = final.narrow(-1, 0, dv).clone();
        var nf = final.select(-1, dv).clone();
        var mf = ms.select(2, fin).clone();
        return new ForwardResult(h.MoveToOuterDisposeScope(), den.MoveToOuterDisposeScope(), states.MoveToOuterDisposeScope(),
            ms.MoveToOuterDisposeScope(), cf.MoveToOuterDisposeScope(), nf.MoveToOuterDisposeScope(), mf.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The chunk states <c>[B, NH, slots, Dk, Dv + 1]</c> (<c>[C | n]</c>) and stabilizers <c>[B, NH, slots]</c>, slot 0 the
    /// entering state (zeros where none is given), the other slots uninitialized.
    /// </summary>
    private static (Tensor States, Tensor Ms) StateSlots(Tensor like, long batch, long heads, long slots, long dk, long dv,
        Tensor? c0, Tensor? n0, Tensor? m0)
    {
        var states = empty(new[] { batch, heads, slots, dk, dv + 1 }, dtype: like.dtype, device: like.device);
        var ms = empty(new[] { batch, heads, slots }, dtype: like.dtype, device: like.device);
        var first = states.select(2, 0);
        if (c0 is null) first.zero_();
        else
        {
            first.narrow(-1, 0, dv).copy_(c0);
            first.select(-1, dv).copy_(n0!);
        }
        if (m0 is null) ms.select(2, 0).zero_(); else ms.select(2, 0).copy_(m0);
        return (states, ms);
    }

    /// <summary>
    /// <see cref="Forward"/> by the compiled CPU kernel (<see cref="MLSTMChunkCpu"/>) over contiguous inputs: the same
    /// results and, with <paramref name="keep"/>, the same saved layout (without it, two state slots: entering and final).
    /// </summary>
    private static ForwardResult CompiledForward(Tensor qs, Tensor ks, Tensor vs, Tensor ig, Tensor lf, Tensor? c0, Tensor? n0, Tensor? m0,
        long cs, double eps, bool keep)
    {
        using var scope = NewDisposeScope();
        long batch = qs.shape[0], heads = qs.shape[1], length = qs.shape[2], dk = qs.shape[3], dv = vs.shape[3];
        long nc = length / cs;
        long slots = keep ? nc + 1 : 2;
        var h = empty(new[] { batch, heads, length, dv }, dtype: qs.dtype, device: qs.device);
        var den = empty(new[] { batch, heads, length }, dtype: qs.dtype, device: qs.device);
        var (states, ms) = StateSlots(qs, batch, heads, slots, dk, dv, c0, n0, m0);
        MLSTMChunkCpu.Forward(qs, ks, vs, ig, lf, (int)cs, eps, keep, states, ms, h, den);
        long fin = keep ? nc : 1;
        return Result(h, den, states, ms, fin, dv);
    }

    /// <summary>The causal masks of one chunk length.</summary>
    private sealed class Masks
    {
        internal Tensor Upper { get; }
        internal Tensor NotStrictLower { get; }

        internal Masks(long cs, Device device)
        {
            Upper = ones(cs, cs, dtype: ScalarType.Bool, device: device).triu(1);
            NotStrictLower = ones(cs, cs, dtype: ScalarType.Bool, device: device).tril(-1).logical_not();
        }
    }

    /// <summary>One segment's inputs as contiguous chunks, and its recomputed gate matrix.</summary>
    private sealed class Segment
    {
        internal Tensor Q = null!, K = null!, Vh = null!, I = null!, Lf = null!, B = null!;
        /// <summary><c>D [B, NH, g, c, c]</c>; <see cref="Stabilize"/> turns it into E in place.</summary>
        internal Tensor D = null!;
        internal Tensor RowMax = null!, Mt = null!, InterLog = null!;
        /// <summary>The argmax j* of every row of D (only when <see cref="Stabilize"/> is asked for indices).</summary>
        internal Tensor? ArgMax;

        internal static Segment Load(Tensor qs, Tensor ks, Tensor vs, Tensor ig, Tensor lf, long c, long g, long cs, Masks masks)
        {
            long batch = qs.shape[0], heads = qs.shape[1], dv = vs.shape[3];
            Tensor Chunks(Tensor t) => t.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs, t.shape[3]).contiguous();
            var x = new Segment
            {
                Q = Chunks(qs),
                K = Chunks(ks),
                I = ig.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs),
                Lf = lf.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs),
            };
            // V̂ = [V | 1], written in one pass (no separate contiguous copy of V).
            x.Vh = empty(new[] { batch, heads, g, cs, dv + 1 }, dtype: vs.dtype, device: vs.device);
            x.Vh.narrow(-1, 0, dv).copy_(vs.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs, dv));
            x.Vh.select(-1, dv).fill_(1.0);
            x.B = x.Lf.cumsum(-1);
            // D_tj = i_j + f'_{j+1} + ... + f'_t: column sums of [s, j] = f'_s (s > j), i_j (s = j), 0 (s < j).
            var rows = x.Lf.unsqueeze(-1).expand(batch, heads, g, cs, cs);
            var d = rows.masked_fill(masks.NotStrictLower, 0.0);
            d.diagonal(0, -2, -1).copy_(x.I);
            x.D = d.cumsum(-2).masked_fill_(masks.Upper, double.NegativeInfinity);
            return x;
        }

        /// <summary>
        /// Row maxima, the entering stabilizers (mst[0] given; fills mst[1..g] with m' = max(b_last + m, max_j D_last,j)),
        /// m_t, and E = exp(D - m_t) in place; returns e_t = exp(b_t + m - m_t).
        /// </summary>
        internal Tensor Stabilize(Tensor mst, long cs, bool indices = false)
        {
            if (indices)
            {
                var (values, idx) = D.max(-1);   // the backward routes each row's stabilizer gradient to its argmax
                RowMax = values;
                ArgMax = idx;
            }
            else RowMax = D.amax(new long[] { -1 });
            var gl = B.select(-1, cs - 1);
            var aMax = RowMax.select(-1, cs - 1);
            long g = D.shape[2];
            for (long j = 0; j < g; j++) mst.select(2, j + 1).copy_(maximum(gl.select(2, j) + mst.select(2, j), aMax.select(2, j)));
            InterLog = B + mst.narrow(2, 0, g).unsqueeze(-1);
            Mt = maximum(InterLog, RowMax);
            D.sub_(Mt.unsqueeze(-1)).exp_();
            return (InterLog - Mt).exp_();
        }
    }

    /// <inheritdoc/>
    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var qs = (Tensor)vars[0];
        var ks = (Tensor)vars[1];
        var vs = (Tensor)vars[2];
        var ig = (Tensor)vars[3];
        var lf = (Tensor)vars[4];
        var c0 = vars[5] as Tensor;
        var n0 = vars[6] as Tensor;
        var m0 = vars[7] as Tensor;
        long cs = Convert.ToInt64(vars[8]);
        double eps = (double)vars[9];
        bool compiled = (bool)vars[10];
        using var scope = NewDisposeScope();
        if (compiled)
        {
            // The compiled kernel reads contiguous memory; the contiguous inputs are what the backward reads too.
            qs = qs.contiguous().MoveToOuterDisposeScope();
            ks = ks.contiguous().MoveToOuterDisposeScope();
            vs = vs.contiguous().MoveToOuterDisposeScope();
            ig = ig.contiguous().MoveToOuterDisposeScope();
            lf = lf.contiguous().MoveToOuterDisposeScope();
        }
        var f = compiled
            ? CompiledForward(qs, ks, vs, ig, lf, c0, n0, m0, cs, eps, keep: true)
            : Forward(qs, ks, vs, ig, lf, c0, n0, m0, cs, eps, keep: true);
        var saved = new List<Tensor> { qs, ks, vs, ig, lf, f.H, f.Den, f.States, f.Ms };
        ctx.save_for_backward(saved);
        LastSaved = (saved.Count, saved.Sum(t => t.numel()));
        ctx.save_data("sizes", new Sizes(cs, eps, c0 is not null, compiled));
        ctx.set_materialize_grads(false);
        f.Den.MoveToOuterDisposeScope();
        f.States.MoveToOuterDisposeScope();
        f.Ms.MoveToOuterDisposeScope();
        return new List<Tensor> { f.H.MoveToOuterDisposeScope(), f.C.MoveToOuterDisposeScope(), f.N.MoveToOuterDisposeScope(),
            f.M.MoveToOuterDisposeScope() };
    }

    private static bool Defined(Tensor? t) => t is not null && !t.IsInvalid;

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        AutogradBuffers.Flush();
        var sizes = (Sizes)ctx.get_data("sizes");
        Tensor dq, dk, dv, di, dlf;
        Tensor? dc0 = null, dn0 = null, dm0 = null;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var saved = ctx.get_saved_variables();
            var (qs, ks, vs, ig, lf, h, den, states, ms) = (saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], saved[7], saved[8]);
            long cs = sizes.ChunkSize;
            double eps = sizes.Eps;
            long batch = qs.shape[0], heads = qs.shape[1], length = qs.shape[2], dkd = qs.shape[3], dvd = vs.shape[3];
            long nc = length / cs;
            long group = SequenceSegments.Length((int)cs) / cs;
            var dt = qs.dtype;
            var dev = qs.device;
            var masks = new Masks(cs, dev);

            var dh = Defined(gradOutputs[0]) ? gradOutputs[0] : null;
            if (sizes.Compiled)
            {
                dq = empty_like(qs); dk = empty_like(ks); dv = empty_like(vs); di = empty_like(ig); dlf = empty_like(lf);
                var dc = empty(new[] { batch, heads, dkd, dvd }, dtype: dt, device: dev);
                var dnz = empty(new[] { batch, heads, dkd }, dtype: dt, device: dev);
                var dmz = empty(new[] { batch, heads }, dtype: dt, device: dev);
                MLSTMChunkCpu.Backward(qs, ks, vs, ig, lf, h, den, states, ms, (int)cs, eps, dh?.contiguous(),
                    Defined(gradOutputs[1]) ? gradOutputs[1].contiguous() : null, Defined(gradOutputs[2]) ? gradOutputs[2].contiguous() : null,
                    Defined(gradOutputs[3]) ? gradOutputs[3].contiguous() : null, dq, dk, dv, di, dlf, dc, dnz, dmz);
                if (sizes.HasState) (dc0, dn0, dm0) = (dc.MoveToOuterDisposeScope(), dnz.MoveToOuterDisposeScope(), dmz.MoveToOuterDisposeScope());
                foreach (var t in new[] { dq, dk, dv, di, dlf }) t.MoveToOuterDisposeScope();
                goto done;
            }
            // The gradient of the final state, [dC | dn], and of its m.
            var dState = zeros(new[] { batch, heads, dkd, dvd + 1 }, dtype: dt, device: dev);
            if (Defined(gradOutputs[1])) dState.narrow(-1, 0, dvd).copy_(gradOutputs[1]);
            if (Defined(gradOutputs[2])) dState.select(-1, dvd).copy_(gradOutputs[2]);
            var r = Defined(gradOutputs[3]) ? gradOutputs[3].clone() : zeros(new[] { batch, heads }, dtype: dt, device: dev);
            r.sub_((dState * states.select(2, nc)).sum(new long[] { -1, -2 }));   // R_final = dm_final - X_final

            dq = zeros_like(qs);
            dk = zeros_like(ks);
            dv = zeros_like(vs);
            di = zeros_like(ig);
            dlf = zeros_like(lf);
            long segments = (nc + group - 1) / group;
            for (long sIdx = segments - 1; sIdx >= 0; sIdx--)
            {
                using var seg = NewDisposeScope();
                long c = sIdx * group;
                long g = Math.Min(group, nc - c);
                var st = states.narrow(2, c, g + 1);
                var mst = ms.narrow(2, c, g + 1).clone();                 // Stabilize rewrites mst[1..g] (same values)
                var x = Segment.Load(qs, ks, vs, ig, lf, c, g, cs, masks);
                var inter = x.Stabilize(mst, cs, indices: true);
                var e = x.D;                                              // E
                var stIn = st.narrow(2, 0, g);

                var s = x.Q.matmul(x.K.transpose(-1, -2)).mul_(e).masked_fill_(masks.Upper, 0.0);

                // Output gradients per step.
                var dn = den.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs);
                var expNegM = x.Mt.neg().exp();
                var absDen = dn.abs();
                var z = maximum(absDen, expNegM).add_(eps);
                Tensor dnumH;                                             // [dnum, dden]  [B, NH, g, c, Dv + 1]
                Tensor dmt;
                if (dh is not null)
                {
                    var dhs = dh.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs, dvd);
                    var hs = h.narrow(2, c * cs, g * cs).reshape(batch, heads, g, cs, dvd);
                    var hdot = (dhs * hs).sum(-1);
                    var dz = -hdot / z;
                    var dden = where(absDen > expNegM, dz * dn.sign(), zeros_like(dz));
                    dnumH = cat(new[] { dhs / z.unsqueeze(-1), dden.unsqueeze(-1) }, -1);
                    dmt = hdot.mul_(-eps).div_(z);
                }
                else
                {
                    dnumH = zeros(new[] { batch, heads, g, cs, dvd + 1 }, dtype: dt, device: dev);
                    dmt = zeros(new[] { batch, heads, g, cs }, dtype: dt, device: dev);
                }
                var idn = dnumH * inter.unsqueeze(-1);                   // diag(e) [dnum, dden]

                // Reverse pass over the chunks for dĈ: dĈ_j = e_last dĈ_{j+1} + q^T idn.
                var dStates = empty(new[] { batch, heads, g + 1, dkd, dvd + 1 }, dtype: dt, device: dev);
                dStates.select(2, g).copy_(dState);
                dStates.narrow(2, 0, g).copy_(x.Q.transpose(-1, -2).matmul(idn));
                var decay = inter.select(-1, cs - 1).unsqueeze(-1).unsqueeze(-1);
                for (long j = g - 1; j >= 0; j--) dStates.select(2, j).addcmul_(dStates.select(2, j + 1), decay.select(2, j), 1);
                var dNext = dStates.narrow(2, 1, g);

                // q, k, v.
                var gm = dnumH.matmul(x.Vh.transpose(-1, -2)).mul_(e);        // G = (dnum V^T + dden) ∘ E
                var dQ = gm.matmul(x.K).add_(idn.matmul(stIn.transpose(-1, -2)));
                var eLast = e.select(-2, cs - 1).unsqueeze(-1);          // [B, NH, g, c, 1]
                var dK = gm.transpose(-1, -2).matmul(x.Q).add_(x.Vh.matmul(dNext.transpose(-1, -2)).mul_(eLast));
                var dVh = s.transpose(-1, -2).matmul(dnumH).add_(x.K.matmul(dNext).mul_(eLast));

                // Stabilizer recursion: R_j = W_j + [b_last + m wins] R_{j+1}.
                var xs = (dStates * st).sum(new long[] { -1, -2 });       // [B, NH, g + 1]
                var win = (x.InterLog >= x.RowMax).to(dt);                // [B, NH, g, c]
                var w = (win * dmt).sum(-1);                               // [B, NH, g]
                var rs = empty(new[] { batch, heads, g + 1 }, dtype: dt, device: dev);
                rs.select(2, g).copy_(r);
                rs.narrow(2, 0, g).copy_(w);
                var winLast = win.select(-1, cs - 1);
                for (long j = g - 1; j >= 0; j--) rs.select(2, j).addcmul_(rs.select(2, j + 1), winLast.select(2, j), 1);
                dmt.select(-1, cs - 1).add_(rs.narrow(2, 1, g));

                // Gates.
                var kdk = (x.K * dK).sum(-1);
                var db = (x.Q * dQ).sum(-1).sub_(kdk).add_(dmt);
                db.select(-1, cs - 1).add_(xs.narrow(2, 1, g));
                var routed = win.neg().add_(1).mul_(dmt);
                db.scatter_add_(-1, x.ArgMax!, routed.neg());
                var dI = kdk.scatter_add_(-1, x.ArgMax!, routed);
                var dLf = db.flip(-1).cumsum(-1).flip(-1);

                dq.narrow(2, c * cs, g * cs).copy_(dQ.view(batch, heads, g * cs, dkd));
                dk.narrow(2, c * cs, g * cs).copy_(dK.view(batch, heads, g * cs, dkd));
                dv.narrow(2, c * cs, g * cs).copy_(dVh.narrow(-1, 0, dvd).reshape(batch, heads, g * cs, dvd));
                di.narrow(2, c * cs, g * cs).copy_(dI.view(batch, heads, g * cs));
                dlf.narrow(2, c * cs, g * cs).copy_(dLf.reshape(batch, heads, g * cs));

                dState.copy_(dStates.select(2, 0));
                r.copy_(rs.select(2, 0));
                if (sIdx == 0 && sizes.HasState)
                {
                    dc0 = dState.narrow(-1, 0, dvd).clone().MoveToOuterDisposeScope();
                    dn0 = dState.select(-1, dvd).clone().MoveToOuterDisposeScope();
                    dm0 = (xs.select(2, 0) + rs.select(2, 0)).MoveToOuterDisposeScope();
                }
            }
            // The initial-state gradients were moved out of the segment's scope into this one: once more.
            dc0?.MoveToOuterDisposeScope();
            dn0?.MoveToOuterDisposeScope();
            dm0?.MoveToOuterDisposeScope();
            dq.MoveToOuterDisposeScope();
            dk.MoveToOuterDisposeScope();
            dv.MoveToOuterDisposeScope();
            di.MoveToOuterDisposeScope();
            dlf.MoveToOuterDisposeScope();
        done:;
        }
        AutogradBuffers.Release(gradOutputs.ToArray());
        // Null for the non-tensor arguments (chunk size, eps) and for an absent initial state.
        return AutogradBuffers.Return(dq, dk, dv, di, dlf, dc0, dn0, dm0, null, null, null);
    }
}
