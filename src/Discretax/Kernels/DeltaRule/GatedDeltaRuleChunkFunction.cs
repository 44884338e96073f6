using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function of <see cref="GatedDeltaRule.Chunked"/>: the chunkwise forward without an autograd
/// graph, saving only its (padded) inputs and the state entering every chunk, and a hand-written chunkwise backward
/// that recomputes the in-chunk matrices segment by segment from them. No double backward.
/// </summary>
/// <remarks>
/// <para>
/// Called as <c>apply(q, k, v, g, beta, initial, bounds, chunkSize)</c> with inputs in the compute dtype (float32 /
/// float64), <c>q, k [B, NH, L, Dk]</c>, <c>v [B, NH, L, Dv]</c>, <c>g, beta [B, NH, L]</c>, L a whole number of chunks,
/// and the entering states <c>initial [N, B NH, Dk, Dv]</c> (any shape that reshapes to it) of N sequences whose first
/// and last chunks <c>bounds</c> names: the ordinary batch is N = 1 (first chunk 0, last chunk L / C - 1);
/// packed sequences (B = 1) are chunk-aligned, every chunk holding the steps of one sequence. Returns the outputs
/// <c>[B, NH, L, Dv]</c> and the states after each sequence's last chunk, shaped as <c>initial</c>.
/// </para>
/// <para>
/// Forward, per chunk entered with state <c>S</c> (or the sequence's initial state at a sequence's first chunk), per
/// batch and head, with the in-chunk cumulative log decay <c>G</c>, the segment sums <c>D_ij = g_{j+1} + ... + g_i</c>
/// (<c>-inf</c> above the diagonal), <c>Gamma = exp(D)</c>, <c>e = exp(G)</c>, <c>e_C = exp(G_C)</c>,
/// <c>f = exp(G_C - G)</c> (the last row of <c>Gamma</c>), <c>Kb = diag(beta) K</c>, <c>Vb = diag(beta) V</c>,
/// <c>M = Kb K^T</c>, <c>X = diag(e) Kb</c>, <c>Kd = diag(f) K</c>, <c>Qg = diag(e) Q</c> and
/// <c>P = tril(Q K^T) ⊙ Gamma</c> (see <see cref="GatedDeltaRule"/>):
/// <code>
/// T = (I + tril(M ⊙ Gamma, -1))^{-1},   W = T X,   U = T Vb,   U' = U - W S,
/// O = Qg S + P U',                      S' = e_C S + Kd^T U'.
/// </code>
/// Saved: the inputs and every chunk's entering state <c>S</c> (<c>[B NH, L / C, Dk, Dv]</c>), nothing of size
/// <c>L C</c> or <c>L Dk Dv</c>: saved memory O(L D + (L / C) Dk Dv) per head.
/// </para>
/// <para>
/// Backward. The reverse pass over chunks, from the incoming gradient <c>dS'</c> of the state after the chunk (the
/// final-state gradient at a sequence's last chunk, zero after it), the only sequential part (two fused
/// <c>baddbmm</c> per chunk):
/// <code>
/// dU' = P^T dO + Kd dS',        dS = e_C dS' + Qg^T dO - W^T dU'
/// </code>
/// (at a sequence's first chunk <c>dS</c> is the initial state's gradient, and zero is carried to the chunk before).
/// Everything else is batched over a segment's chunks, the matrices recomputed from the saved inputs and states:
/// <code>
/// dQ  = diag(e) dO S^T + (dP ⊙ Gamma) K,          dP = dO U'^T,
/// dW  = -dU' S^T,   dT = dW X^T + dU' Vb^T,   dX = T^T dW,   dVb = T^T dU',
/// dA  = -tril(T^T dT T^T, -1) = -tril((dX X^T + dVb Vb^T) T^T, -1),   dM = dA ⊙ Gamma,   dKb = dM K,   dKd = U' dS'^T,
/// dK  = (dP ⊙ Gamma)^T Q + diag(f) dKd + dM^T Kb + diag(beta e) dX + diag(beta) dKb,
/// dV  = diag(beta) dVb,
/// dbeta_i = e_i (dX K^T)_ii + (dKb K^T)_ii + (dVb V^T)_ii,
/// </code>
/// and for the decays, collected on <c>Gamma</c> (<c>dGamma = dP ⊙ tril(Q K^T) + dA ⊙ M</c>, plus <c>(dKd K^T)_ii</c>
/// on its last row through <c>f</c>), on <c>e</c> (<c>de_i = (dO S^T Q^T)_ii + beta_i (dX K^T)_ii</c>) and on
/// <c>e_C</c> (<c>de_C = sum(dS' ⊙ S)</c>): with <c>dD = dGamma ⊙ Gamma</c> (zero above the diagonal, where the
/// forward's <c>-inf</c> select stops the gradient),
/// <code>
/// dG_i = e_i de_i + sum_j dD_ij - sum_j dD_ji  (+ e_C de_C for i = C),     dg_r = sum_{i &gt;= r} dG_i,
/// </code>
/// since <c>D_ij = G_i - G_j</c> and <c>G</c> is the cumulative sum of <c>g</c>. Every factor is an exponential of a
/// sum of non-positive numbers, so <c>g = -inf</c> (exact zeros) and strong decays give finite gradients. Incoming
/// gradients of an unused output may be undefined (treated as zero, nothing allocated for them).
/// </para>
/// </remarks>
internal sealed class GatedDeltaRuleChunkFunction : MultiTensorFunction<GatedDeltaRuleChunkFunction>
{
    /// <summary>The sequences of one call: the first and the last chunk of each (N entries each).</summary>
    internal sealed record Bounds(long[] First, long[] Last)
    {
        /// <summary>The ordinary batch: one sequence over all <paramref name="chunks"/> chunks.</summary>
        internal static Bounds Single(long chunks) => new(new[] { 0L }, new[] { chunks - 1 });

        /// <summary>Per chunk, the sequence starting there, or -1.</summary>
        internal long[] StartsAt(long chunks) => Lookup(chunks, First);

        /// <summary>Per chunk, the sequence ending there, or -1.</summary>
        internal long[] EndsAt(long chunks) => Lookup(chunks, Last);

        private static long[] Lookup(long chunks, long[] at)
        {
            var r = new long[chunks];
            Array.Fill(r, -1L);
            for (int i = 0; i < at.Length; i++) r[at[i]] = i;
            return r;
        }
    }

    private sealed record Sizes(long BH, long L, long Dk, long Dv, long C, long[] StateShape,
        Bounds Bounds, bool[] NeedsGrad, bool Compiled);

    /// <inheritdoc/>
    public override string Name => "GatedDeltaRuleChunkBackward";

    /// <summary>The number of elements the last forward with autograd on this thread saved for backward (tests).</summary>
    [ThreadStatic] internal static long LastSavedElements;

    /// <summary>
    /// The outputs and final states (see the class remarks), through the function when autograd needs them, else the
    /// forward alone (nothing saved).
    /// </summary>
    internal static (Tensor Output, Tensor Finals) Run(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta,
        Tensor initial, Bounds bounds, int chunkSize, KernelPath path = KernelPath.Auto)
    {
        using var scope = NewDisposeScope();
        bool compiled = path == KernelPath.Auto && GatedDeltaRuleChunkCpu.Supports(q);
        var inputs = new[] { q, k, v, g, beta, initial };
        if (!is_grad_enabled() || !inputs.Any(t => t.requires_grad))
        {
            using var ng = no_grad();
            var (o, s, _) = Forward(q, k, v, g, beta, initial, bounds, chunkSize, keepStates: false, compiled);
            return (o.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope());
        }
        var r = apply(q, k, v, g, beta, initial, bounds, chunkSize, compiled);
        return (r[0].MoveToOuterDisposeScope(), r[1].MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var t = vars.Take(6).Cast<Tensor>().ToArray();
        var bounds = (Bounds)vars[6];
        int c = (int)vars[7];
        bool compiled = (bool)vars[8];
        using var scope = NewDisposeScope();
        // The compiled kernel reads contiguous memory; the contiguous inputs are what the backward reads too.
        if (compiled) for (int i = 0; i < 5; i++) t[i] = t[i].contiguous().MoveToOuterDisposeScope();
        var (o, s, states) = Forward(t[0], t[1], t[2], t[3], t[4], t[5], bounds, c, keepStates: true, compiled);
        // Saved after this method returns (TorchSharp takes the list then): the states must outlive this scope.
        states!.MoveToOuterDisposeScope();
        var saved = new List<Tensor> { t[0], t[1], t[2], t[3], t[4], states! };
        ctx.save_for_backward(saved);
        LastSavedElements = saved.Sum(x => x.numel());
        ctx.save_data("sizes", new Sizes(t[0].shape[0] * t[0].shape[1], t[0].shape[2], t[0].shape[3], t[2].shape[3], c,
            s.shape, bounds, vars.Take(6).Cast<Tensor>().Select(x => x.requires_grad).ToArray(), compiled));
        ctx.set_materialize_grads(false);
        return new List<Tensor> { o.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope() };
    }

    /// <summary>The in-chunk decays of a segment's chunks: <c>Gamma</c>, <c>e = exp(G)</c>, <c>f = exp(G_C - G)</c> and <c>e_C</c>.</summary>
    private static (Tensor Gamma, Tensor E, Tensor F, Tensor EC) Decays(Tensor gs, long c)
    {
        // G_i = g_1 + ... + g_i and D_ij = g_{j+1} + ... + g_i (j <= i) summed directly (a masked cumulative sum down the
        // columns), never as G_i - G_j; above the diagonal -inf (a select) before the exponential: Gamma is 0 there.
        long bh = gs.shape[0], n = gs.shape[1];
        var gcum = gs.cumsum(-1);                                                 // G  [BH, N, C]
        var above = ones(new[] { c, c }, dtype: ScalarType.Bool, device: gs.device).triu(1);
        var segment = gs.unsqueeze(-1).expand(bh, n, c, c).tril(-1).cumsum(-2);   // D  [BH, N, C, C]
        var gamma = segment.masked_fill_(above, double.NegativeInfinity).exp_();  // Gamma
        var e = gcum.exp().unsqueeze(-1);                                         // [BH, N, C, 1]
        var f = gamma.select(-2, c - 1).unsqueeze(-1);                            // [BH, N, C, 1]
        var ec = gcum.narrow(-1, c - 1, 1).exp().unsqueeze(-1);                   // [BH, N, 1, 1]
        return (gamma, e, f, ec);
    }

    /// <summary>
    /// The forward over whole chunks, segment by segment (<see cref="SequenceSegments"/>); with
    /// <paramref name="keepStates"/> also every chunk's entering state <c>[BH, L / C, Dk, Dv]</c>.
    /// </summary>
    internal static (Tensor Output, Tensor Finals, Tensor? States) Forward(Tensor q, Tensor k, Tensor v, Tensor g,
        Tensor beta, Tensor initial, Bounds bounds, int chunkSize, bool keepStates, bool compiled = false)
    {
        if (compiled) return CompiledForward(q, k, v, g, beta, initial, bounds, chunkSize, keepStates);
        long b = q.shape[0], nh = q.shape[1], l = q.shape[2], dk = q.shape[3], dv = v.shape[3], c = chunkSize;
        long bh = b * nh, n = l / c, count = bounds.First.Length;
        using var outer = NewDisposeScope();
        var qf = q.reshape(bh, l, dk);
        var kf = k.reshape(bh, l, dk);
        var vf = v.reshape(bh, l, dv);
        var gf = g.reshape(bh, l);
        var bf = beta.reshape(bh, l);
        var init = initial.reshape(count, bh, dk, dv);
        var startsAt = bounds.StartsAt(n);
        var endsAt = bounds.EndsAt(n);
        var output = empty(new[] { bh, l, dv }, dtype: q.dtype, device: q.device);
        var states = keepStates ? empty(new[] { bh, n, dk, dv }, dtype: q.dtype, device: q.device) : null;
        var finals = new Tensor[count];
        long group = SequenceSegments.Length(chunkSize) / c;
        Tensor s = init[startsAt[0]];
        for (long c0 = 0; c0 < n; c0 += group)
        {
            using var segmentScope = NewDisposeScope();
            long m = Math.Min(group, n - c0);
            var qs = qf.narrow(1, c0 * c, m * c).reshape(bh, m, c, dk);
            var ks = kf.narrow(1, c0 * c, m * c).reshape(bh, m, c, dk);
            var vs = vf.narrow(1, c0 * c, m * c).reshape(bh, m, c, dv);
            var bs = bf.narrow(1, c0 * c, m * c).reshape(bh, m, c, 1);
            var (gamma, e, f, ec) = Decays(gf.narrow(1, c0 * c, m * c).reshape(bh, m, c), c);

            var kb = ks * bs;
            var kt = ks.transpose(-1, -2);                                        // [BH, m, Dk, C]
            var tInv = UnitLowerInverse.Invert(kb.matmul(kt).mul_(gamma));        // only the strict lower part is read
            var w = tInv.matmul(kb * e);                                          // T diag(beta e) K
            var u = tInv.matmul(vs * bs);                                         // T diag(beta) V
            var kdt = (ks * f).transpose(-1, -2);                                 // Kd^T  [BH, m, Dk, C]

            var ws = w.unbind(1);
            var us = u.unbind(1);
            var kdts = kdt.unbind(1);
            var ecs = ec.unbind(1);
            var entering = new Tensor[m];
            var corrected = new Tensor[m];
            for (long j = 0; j < m; j++)
            {
                long at = c0 + j;
                if (startsAt[at] >= 0 && at > 0) s = init[startsAt[at]];
                entering[j] = s;
                var up = AddBmm(us[j], ws[j], s, -1);                             // U - W S
                corrected[j] = up;
                s = AddBmm(s * ecs[j], kdts[j], up, 1);                           // e_C S + Kd^T U'
                if (endsAt[at] >= 0) finals[endsAt[at]] = KeepIn(outer, s);
            }
            KeepIn(outer, s);

            // All chunks' outputs at once: O = diag(e) Q S + (tril(Q K^T) ⊙ Gamma) U'.
            var sEnter = stack(entering, 1);                                      // [BH, m, Dk, Dv]
            if (states is not null) states.narrow(1, c0, m).copy_(sEnter);
            var uCorr = stack(corrected, 1).reshape(bh * m, c, dv);
            var p = qs.matmul(kt).tril_().mul_(gamma).reshape(bh * m, c, c);
            var qg = (qs * e).reshape(bh * m, c, dk);
            var o = AddBmm(qg.bmm(sEnter.reshape(bh * m, dk, dv)), p, uCorr, 1);
            output.narrow(1, c0 * c, m * c).copy_(o.reshape(bh, m * c, dv));
        }
        var final = stack(finals, 0).reshape(initial.shape);
        return (output.reshape(b, nh, l, dv).MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope(), states?.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> gradOutputs)
    {
        AutogradBuffers.Flush();
        var z = (Sizes)ctx.get_data("sizes");
        Tensor? dq = null, dk = null, dv = null, dg = null, dbeta = null, dinit = null;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var saved = ctx.get_saved_variables();
            var gradO = gradOutputs[0] is { IsInvalid: false } go ? go : null;
            var gradS = gradOutputs[1] is { IsInvalid: false } gs ? gs : null;
            var r = z.Compiled
                ? CompiledBackward(saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], gradO, gradS, z)
                : Backward(saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], gradO, gradS, z);
            var shapes = new[] { saved[0].shape, saved[1].shape, saved[2].shape, saved[3].shape, saved[4].shape, z.StateShape };
            var grads = new Tensor?[6];
            for (int i = 0; i < 6; i++)
                grads[i] = z.NeedsGrad[i] ? r[i].reshape(shapes[i]).MoveToOuterDisposeScope() : null;
            (dq, dk, dv, dg, dbeta, dinit) = (grads[0], grads[1], grads[2], grads[3], grads[4], grads[5]);
        }
        AutogradBuffers.Release(gradOutputs.ToArray());
        // Three entries for the non-tensor arguments (the bounds, the chunk size and the path).
        return AutogradBuffers.Return(dq, dk, dv, dg, dbeta, dinit, null, null, null);
    }

    /// <summary>
    /// <see cref="Forward"/> by the compiled CPU kernel (<see cref="GatedDeltaRuleChunkCpu"/>), on any inputs (made
    /// contiguous here when they are not).
    /// </summary>
    private static (Tensor Output, Tensor Finals, Tensor? States) CompiledForward(Tensor q, Tensor k, Tensor v, Tensor g,
        Tensor beta, Tensor initial, Bounds bounds, int chunkSize, bool keepStates)
    {
        long b = q.shape[0], nh = q.shape[1], l = q.shape[2], dk = q.shape[3], dv = v.shape[3], c = chunkSize;
        long bh = b * nh, n = l / c, count = bounds.First.Length;
        using var outer = NewDisposeScope();
        var output = empty(new[] { bh, l, dv }, dtype: q.dtype, device: q.device);
        var finals = empty(new[] { count, bh, dk, dv }, dtype: q.dtype, device: q.device);
        var states = keepStates ? empty(new[] { bh, n, dk, dv }, dtype: q.dtype, device: q.device) : null;
        GatedDeltaRuleChunkCpu.Forward(q.reshape(bh, l, dk).contiguous(), k.reshape(bh, l, dk).contiguous(),
            v.reshape(bh, l, dv).contiguous(), g.reshape(bh, l).contiguous(), beta.reshape(bh, l).contiguous(),
            initial.reshape(count, bh, dk, dv).contiguous(), bounds.StartsAt(n), bounds.EndsAt(n), chunkSize, output, finals, states);
        return (output.reshape(b, nh, l, dv).MoveToOuterDisposeScope(), finals.reshape(initial.shape).MoveToOuterDisposeScope(),
            states?.MoveToOuterDisposeScope());
    }

    /// <summary><see cref="Backward"/> by the compiled CPU kernel, on the contiguous saved inputs.</summary>
    private static Tensor[] CompiledBackward(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor states,
        Tensor? gradO, Tensor? gradS, Sizes z)
    {
        long bh = z.BH, l = z.L, dkk = z.Dk, dvv = z.Dv, c = z.C, n = l / c, count = z.Bounds.First.Length;
        using var outer = NewDisposeScope();
        var dq = empty(new[] { bh, l, dkk }, dtype: q.dtype, device: q.device);
        var dk = empty(new[] { bh, l, dkk }, dtype: q.dtype, device: q.device);
        var dv = empty(new[] { bh, l, dvv }, dtype: q.dtype, device: q.device);
        var dg = empty(new[] { bh, l }, dtype: q.dtype, device: q.device);
        var dbeta = empty(new[] { bh, l }, dtype: q.dtype, device: q.device);
        var dinit = empty(new[] { count, bh, dkk, dvv }, dtype: q.dtype, device: q.device);
        GatedDeltaRuleChunkCpu.Backward(q.reshape(bh, l, dkk), k.reshape(bh, l, dkk), v.reshape(bh, l, dvv), g.reshape(bh, l),
            beta.reshape(bh, l), states, gradO?.reshape(bh, l, dvv).contiguous(), gradS?.reshape(count, bh, dkk, dvv).contiguous(),
            z.Bounds.StartsAt(n), z.Bounds.EndsAt(n), (int)c, dq, dk, dv, dg, dbeta, dinit);
        return new[] { dq, dk, dv, dg, dbeta, dinit }.Select(t => t.MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>The gradients of q, k, v, g, beta and the initial states (see the class remarks), flat per head.</summary>
    private static Tensor[] Backward(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor states,
        Tensor? gradO, Tensor? gradS, Sizes z)
    {
        long bh = z.BH, l = z.L, dkk = z.Dk, dvv = z.Dv, c = z.C, n = l / c, count = z.Bounds.First.Length;
        using var outer = NewDisposeScope();
        var opts = (dtype: q.dtype, device: q.device);
        var qf = q.reshape(bh, l, dkk);
        var kf = k.reshape(bh, l, dkk);
        var vf = v.reshape(bh, l, dvv);
        var gf = g.reshape(bh, l);
        var bf = beta.reshape(bh, l);
        var dof = gradO?.reshape(bh, l, dvv);
        var dfin = gradS?.reshape(count, bh, dkk, dvv);
        var startsAt = z.Bounds.StartsAt(n);
        var endsAt = z.Bounds.EndsAt(n);

        var dq = empty(new[] { bh, l, dkk }, dtype: opts.dtype, device: opts.device);
        var dk = empty(new[] { bh, l, dkk }, dtype: opts.dtype, device: opts.device);
        var dv = empty(new[] { bh, l, dvv }, dtype: opts.dtype, device: opts.device);
        var dg = empty(new[] { bh, l }, dtype: opts.dtype, device: opts.device);
        var dbeta = empty(new[] { bh, l }, dtype: opts.dtype, device: opts.device);
        var dinit = zeros(new[] { count, bh, dkk, dvv }, dtype: opts.dtype, device: opts.device);
        var zero = zeros(new[] { bh, dkk, dvv }, dtype: opts.dtype, device: opts.device);

        long group = SequenceSegments.Length((int)c) / c;
        long segments = (n + group - 1) / group;
        Tensor dS = zero;                                                        // the gradient of the state after the chunk
        for (long sg = segments - 1; sg >= 0; sg--)
        {
            using var segmentScope = NewDisposeScope();
            long c0 = sg * group, m = Math.Min(group, n - c0);
            var qs = qf.narrow(1, c0 * c, m * c).reshape(bh, m, c, dkk);
            var ks = kf.narrow(1, c0 * c, m * c).reshape(bh, m, c, dkk);
            var vs = vf.narrow(1, c0 * c, m * c).reshape(bh, m, c, dvv);
            var bs = bf.narrow(1, c0 * c, m * c).reshape(bh, m, c, 1);
            var dos = dof?.narrow(1, c0 * c, m * c).reshape(bh, m, c, dvv);
            var sEnter = states.narrow(1, c0, m);                                 // [BH, m, Dk, Dv]
            var sEnterT = sEnter.transpose(-1, -2);

            // Recomputed: the decays, T, W, U and U' = U - W S (batched: the entering states are saved).
            var (gamma, e, f, ec) = Decays(gf.narrow(1, c0 * c, m * c).reshape(bh, m, c), c);
            var kb = ks * bs;
            var kt = ks.transpose(-1, -2);
            var mm = kb.matmul(kt);                                               // M = Kb K^T
            var tInv = UnitLowerInverse.Invert(mm * gamma);
            var x = kb * e;                                                       // X = diag(beta e) K
            var vb = vs * bs;
            var w = tInv.matmul(x);
            var up = tInv.matmul(vb).sub_(w.matmul(sEnter));                      // U'
            var kd = ks * f;
            var qk = qs.matmul(kt).tril_();                                       // tril(Q K^T)

            // The reverse pass over the segment's chunks: dU' = P^T dO + Kd dS', dS = e_C dS' + Qg^T dO - W^T dU'.
            Tensor[]? ptdo = null, qgtdo = null;
            if (dos is not null)
            {
                ptdo = (qk * gamma).transpose(-1, -2).matmul(dos).unbind(1);
                qgtdo = (qs * e).transpose(-1, -2).matmul(dos).unbind(1);
            }
            var kds = kd.unbind(1);
            var wts = w.transpose(-1, -2).unbind(1);
            var ecs = ec.unbind(1);
            var dUps = new Tensor[m];
            var dExits = new Tensor[m];
            for (long j = m - 1; j >= 0; j--)
            {
                long at = c0 + j;
                if (endsAt[at] >= 0 && dfin is not null) dS = dS.add(dfin[endsAt[at]]);
                dExits[j] = dS;
                var dup = ptdo is null ? kds[j].bmm(dS) : AddBmm(ptdo[j], kds[j], dS, 1);
                dUps[j] = dup;
                var carried = qgtdo is null ? dS * ecs[j] : qgtdo[j].addcmul(dS, ecs[j], 1);
                dS = AddBmm(carried, wts[j], dup, -1);
                if (startsAt[at] >= 0)
                {
                    dinit[startsAt[at]].copy_(dS);
                    dS = zero;
                }
            }
            KeepIn(outer, dS);

            var dUp = stack(dUps, 1);                                             // [BH, m, C, Dv]
            var dExit = stack(dExits, 1);                                         // [BH, m, Dk, Dv]
            var tT = tInv.transpose(-1, -2);

            // The state hand-off S' = e_C S + Kd^T U'.
            var dKd = up.matmul(dExit.transpose(-1, -2));                         // [BH, m, C, Dk]
            var dK = dKd * f;
            var df = (dKd * ks).sum(-1);                                          // [BH, m, C]
            var dec = (dExit * sEnter).sum(new long[] { -1, -2 });                // [BH, m]

            // The output O = Qg S + P U'.
            Tensor dQ, dGamma, de;
            if (dos is not null)
            {
                var dQg = dos.matmul(sEnterT);                                    // [BH, m, C, Dk]
                var dPG = dos.matmul(up.transpose(-1, -2));                       // dP  [BH, m, C, C]
                dGamma = dPG * qk;
                dPG.mul_(gamma);                                                  // dP ⊙ Gamma (0 above the diagonal)
                de = (dQg * qs).sum(-1);                                          // [BH, m, C]
                dQ = dQg.mul_(e).add_(dPG.matmul(ks));
                dK.add_(dPG.transpose(-1, -2).matmul(qs));
            }
            else
            {
                dQ = zeros(new[] { bh, m, c, dkk }, dtype: opts.dtype, device: opts.device);
                dGamma = zeros(new[] { bh, m, c, c }, dtype: opts.dtype, device: opts.device);
                de = zeros(new[] { bh, m, c }, dtype: opts.dtype, device: opts.device);
            }

            // The UT transform: W = T X, U = T Vb, T = (I + tril(M ⊙ Gamma, -1))^{-1}.
            // dT = dW X^T + dU' Vb^T and dA = -tril(T^T dT T^T, -1) = -tril((dX X^T + dVb Vb^T) T^T, -1).
            var dW = dUp.matmul(sEnterT).neg_();                                  // [BH, m, C, Dk]
            var dX = tT.matmul(dW);
            var dVb = tT.matmul(dUp);
            var dA = Flat(dVb).baddbmm(Flat(vb).transpose(1, 2), Flat(dX).bmm(Flat(x).transpose(1, 2)), beta: 1, alpha: 1)
                .reshape(bh, m, c, c).matmul(tT).tril_(-1).neg_();
            dGamma.add_(dA * mm);
            var dM = dA.mul_(gamma);
            var dKb = dM.matmul(ks);
            dK.add_(dM.transpose(-1, -2).matmul(kb));
            var xk = (dX * ks).sum(-1);                                           // (dX K^T)_ii  [BH, m, C]
            var bsq = bs.squeeze(-1);
            var eq = e.squeeze(-1);
            dK.add_(dX.mul_(bs * e)).add_(dKb * bs);
            var dBeta = xk * eq + (dKb * ks).sum(-1) + (dVb * vs).sum(-1);
            de.add_(xk * bsq);
            var dV = dVb.mul_(bs);

            // The decays: dD = dGamma ⊙ Gamma (+ the last row's df ⊙ f), dG_i = e_i de_i + rowsum_i - colsum_i (+ e_C de_C).
            var dD = dGamma.mul_(gamma);
            dD.select(-2, c - 1).add_(df * f.squeeze(-1));
            var dG = dD.sum(-1).sub_(dD.sum(-2)).add_(de.mul_(eq));
            dG.select(-1, c - 1).add_(dec * ec.reshape(bh, m));
            var dgs = dG.flip(-1).cumsum(-1).flip(-1);                            // dg_r = sum_{i >= r} dG_i

            dq.narrow(1, c0 * c, m * c).copy_(dQ.reshape(bh, m * c, dkk));
            dk.narrow(1, c0 * c, m * c).copy_(dK.reshape(bh, m * c, dkk));
            dv.narrow(1, c0 * c, m * c).copy_(dV.reshape(bh, m * c, dvv));
            dg.narrow(1, c0 * c, m * c).copy_(dgs.reshape(bh, m * c));
            dbeta.narrow(1, c0 * c, m * c).copy_(dBeta.reshape(bh, m * c));
        }
        return new[] { dq, dk, dv, dg, dbeta, dinit }.Select(t => t.MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>
    /// Moves <paramref name="t"/> into <paramref name="scope"/> unless it is there already (TorchSharp 0.107's move to
    /// the scope a tensor is in drops it from that scope without re-adding it, leaving it to the finalizer).
    /// </summary>
    private static Tensor KeepIn(DisposeScope scope, Tensor t) => scope.Contains(t) ? t : t.MoveToOtherDisposeScope(scope);

    /// <summary><paramref name="t"/> <c>[BH, m, R, S]</c> as <c>[BH m, R, S]</c> (a view when contiguous).</summary>
    private static Tensor Flat(Tensor t) => t.reshape(-1, t.shape[^2], t.shape[^1]);

    /// <summary><c>input + alpha * (batch1 @ batch2)</c> as one fused <c>baddbmm</c>.</summary>
    private static Tensor AddBmm(Tensor input, Tensor batch1, Tensor batch2, float alpha) =>
        batch1.baddbmm(batch2, input, beta: 1, alpha: alpha);
}
