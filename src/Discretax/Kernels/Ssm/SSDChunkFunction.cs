using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function of <see cref="SSD.Chunked"/>: the chunkwise forward without an autograd graph, saving
/// only its (padded) inputs and the state entering every chunk, and a hand-written chunkwise backward that recomputes
/// the in-chunk decay matrices segment by segment from them. No double backward.
/// </summary>
/// <remarks>
/// <para>
/// Called as <c>apply(x, a, b, c, initial, bounds, chunkSize)</c> with inputs in the compute dtype (float32 /
/// float64), <c>x [B, NH, L, P]</c>, <c>a [B, NH, L]</c>, <c>b, c [B, G, L, N]</c> (head h uses group
/// <c>h / (NH / G)</c>), L a whole number of chunks, and the entering states <c>initial</c> of the sequences whose
/// first and last chunks <c>bounds</c> names (<see cref="GatedDeltaRuleChunkFunction.Bounds"/>): <c>[B, NH, P, N]</c>
/// for the ordinary batch (one sequence), <c>[S, NH, P, N]</c> for S packed, chunk-aligned sequences (B = 1). Returns
/// the outputs <c>[B, NH, L, P]</c> and the states after each sequence's last chunk, shaped as <c>initial</c>.
/// </para>
/// <para>
/// Forward, per chunk entered with state <c>S</c> (the sequence's initial state at its first chunk), per batch and
/// head, with <c>A_i = a_1 + ... + a_i</c>, <c>Ld = exp(segsum)</c> (<c>Ld_ij = exp(a_{j+1} + ... + a_i)</c> for
/// <c>j &lt;= i</c>, 0 above the diagonal), <c>e = exp(A)</c>, <c>e_C = exp(A_C)</c>, <c>w = exp(A_C - A)</c> (the
/// last row of <c>Ld</c>) and the group's <c>CB = tril(C B^T)</c> (see <see cref="SSD"/>):
/// <code>
/// Y = (CB ⊙ Ld) X + diag(e) C S^T,      S' = e_C S + X^T diag(w) B.
/// </code>
/// Saved: the inputs and every chunk's entering state (<c>[B, NH, L / C, P, N]</c>): O(L D + (L / C) P N) per head.
/// </para>
/// <para>
/// Backward. The reverse pass over chunks from the gradient <c>dS'</c> of the state after the chunk (the final-state
/// gradient at a sequence's last chunk, zero after it), one fused multiply-add per chunk:
/// <code>
/// dS = e_C dS' + dY^T diag(e) C
/// </code>
/// (at a sequence's first chunk <c>dS</c> is the initial state's gradient, and zero is carried to the chunk before).
/// The rest is batched over a segment's chunks, with <c>dM = dY X^T</c> per head and the sums over the heads of a group
/// for <c>b</c> and <c>c</c>:
/// <code>
/// dX   = (CB ⊙ Ld)^T dY + diag(w) B dS'^T,
/// dCB  = tril(sum_heads dM ⊙ Ld),
/// dC   = dCB B + sum_heads diag(e) dY S,
/// dB   = dCB^T C + sum_heads diag(w) X dS',
/// </code>
/// and for the decays, <c>dLd = dM ⊙ CB</c> (plus <c>dw_j = (B dS'^T X^T)_jj</c> on its last row),
/// <c>de_i = (dY S C^T)_ii</c>, <c>de_C = sum(dS' ⊙ S)</c>: with <c>dD = dLd ⊙ Ld</c> (zero above the diagonal, where the
/// forward's <c>-inf</c> select stops the gradient),
/// <code>
/// dA_i = e_i de_i + sum_j dD_ij - sum_j dD_ji  (+ e_C de_C for i = C),      da_r = sum_{i &gt;= r} dA_i.
/// </code>
/// Every factor is an exponential of a sum of non-positive steps, so strong decays give finite gradients. Incoming
/// gradients of an unused output may be undefined (treated as zero, nothing allocated for them).
/// </para>
/// </remarks>
internal sealed class SSDChunkFunction : MultiTensorFunction<SSDChunkFunction>
{
    private sealed record Sizes(long B, long G, long R, long L, long P, long N, long C,
        GatedDeltaRuleChunkFunction.Bounds Bounds, long[] StateShape, bool[] NeedsGrad, bool Compiled);

    /// <inheritdoc/>
    public override string Name => "SSDChunkBackward";

    /// <summary>The number of elements the last forward with autograd on this thread saved for backward (tests).</summary>
    [ThreadStatic] internal static long LastSavedElements;

    /// <summary>
    /// The outputs and final states (see the class remarks), through the function when autograd needs them, else the
    /// forward alone (nothing saved).
    /// </summary>
    internal static (Tensor Output, Tensor Finals) Run(Tensor x, Tensor a, Tensor b, Tensor c, Tensor initial,
        GatedDeltaRuleChunkFunction.Bounds bounds, int chunkSize, KernelPath path = KernelPath.Auto)
    {
        using var scope = NewDisposeScope();
        bool compiled = path == KernelPath.Auto && SSDChunkCpu.Supports(x);
        var inputs = new[] { x, a, b, c, initial };
        if (!is_grad_enabled() || !inputs.Any(t => t.requires_grad))
        {
            using var ng = no_grad();
            var (o, s, _) = Forward(x, a, b, c, initial, bounds, chunkSize, keepStates: false, compiled);
            return (o.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope());
        }
        var r = apply(x, a, b, c, initial, bounds, chunkSize, compiled);
        return (r[0].MoveToOuterDisposeScope(), r[1].MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var t = vars.Take(5).Cast<Tensor>().ToArray();
        var bounds = (GatedDeltaRuleChunkFunction.Bounds)vars[5];
        int cs = (int)vars[6];
        bool compiled = (bool)vars[7];
        using var scope = NewDisposeScope();
        // The compiled kernel reads contiguous memory; the contiguous inputs are what the backward reads too.
        var needs = t.Select(v => v.requires_grad).ToArray();
        if (compiled) for (int i = 0; i < 4; i++) t[i] = t[i].contiguous().MoveToOuterDisposeScope();
        var (o, s, states) = Forward(t[0], t[1], t[2], t[3], t[4], bounds, cs, keepStates: true, compiled);
        // Saved after this method returns (TorchSharp takes the list then): the states must outlive this scope.
        states!.MoveToOuterDisposeScope();
        var saved = new List<Tensor> { t[0], t[1], t[2], t[3], states };
        ctx.save_for_backward(saved);
        LastSavedElements = saved.Sum(v => v.numel());
        long g = t[2].shape[1];
        ctx.save_data("sizes", new Sizes(t[0].shape[0], g, t[0].shape[1] / g, t[0].shape[2], t[0].shape[3], t[2].shape[3], cs,
            bounds, t[4].shape, needs, compiled));
        ctx.set_materialize_grads(false);
        return new List<Tensor> { o.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope() };
    }

    /// <summary>
    /// The in-chunk decays of <paramref name="steps"/> <c>[..., C]</c>: <c>Ld = exp(segsum)</c> <c>[..., C, C]</c>,
    /// <c>e = exp(A)</c> <c>[..., C, 1]</c>, <c>e_C</c> <c>[..., 1, 1]</c> and <c>w = exp(A_C - A)</c> <c>[..., C]</c>.
    /// </summary>
    private static (Tensor Ld, Tensor E, Tensor EC, Tensor W) Decays(Tensor steps)
    {
        // The sums are cumulative sums of the step matrix masked below the diagonal (exact for a chunk of zeros, no
        // cancellation), and the upper triangle is -inf before the exponential, so no positive sum is exponentiated.
        long cs = steps.shape[^1];
        var all = ones(new[] { cs, cs }, dtype: ScalarType.Bool, device: steps.device);
        var matrix = steps.unsqueeze(-1).expand(steps.shape.Append(cs).ToArray());   // entry (i, j) = a_i
        var sums = matrix.masked_fill(all.triu(0), 0.0).cumsum(-2);                  // a_{j+1} + ... + a_i
        var ld = sums.masked_fill_(all.triu(1), double.NegativeInfinity).exp_();
        var cumulative = steps.cumsum(-1);
        var e = cumulative.exp().unsqueeze(-1);
        var ec = cumulative.narrow(-1, cs - 1, 1).exp().unsqueeze(-1);
        return (ld, e, ec, ld.select(-2, cs - 1));
    }

    /// <summary>
    /// The forward over whole chunks, segment by segment (<see cref="SequenceSegments"/>); with
    /// <paramref name="keepStates"/> also every chunk's entering state <c>[B, G, L / C, r, P, N]</c>.
    /// </summary>
    internal static (Tensor Output, Tensor Finals, Tensor? States) Forward(Tensor x, Tensor a, Tensor b, Tensor c,
        Tensor initial, GatedDeltaRuleChunkFunction.Bounds bounds, int chunkSize, bool keepStates, bool compiled = false)
    {
        if (compiled) return CompiledForward(x, a, b, c, initial, bounds, chunkSize, keepStates);
        long bsz = x.shape[0], nh = x.shape[1], l = x.shape[2], p = x.shape[3], g = b.shape[1], ns = b.shape[3];
        long r = nh / g, cs = chunkSize, n = l / cs, count = bounds.First.Length;
        using var outer = NewDisposeScope();
        var xf = x.reshape(bsz, g, r, l, p);
        var af = a.reshape(bsz, g, r, l);
        var init = initial.reshape(count, bsz, g, r, p, ns);
        var startsAt = bounds.StartsAt(n);
        var endsAt = bounds.EndsAt(n);
        var output = empty(new[] { bsz, g, r, l, p }, dtype: x.dtype, device: x.device);
        var states = keepStates ? empty(new[] { bsz, g, n, r, p, ns }, dtype: x.dtype, device: x.device) : null;
        var finals = new Tensor[count];
        long group = SequenceSegments.Length(chunkSize) / cs;
        Tensor state = init[startsAt[0]];
        for (long c0 = 0; c0 < n; c0 += group)
        {
            using var segmentScope = NewDisposeScope();
            long m = Math.Min(group, n - c0), bgm = bsz * g * m;
            var xs = xf.narrow(3, c0 * cs, m * cs).reshape(bsz, g, r, m, cs, p);
            var b3 = b.narrow(2, c0 * cs, m * cs).reshape(bgm, cs, ns);
            var c3 = c.narrow(2, c0 * cs, m * cs).reshape(bgm, cs, ns);
            var (ld, e, ec, w) = Decays(af.narrow(3, c0 * cs, m * cs).reshape(bsz, g, r, m, cs));

            // Y_diag = ((C B^T) ⊙ Ld) X, C B^T once per group; the triangle zeroed with a select (not only by Ld), so a
            // non-finite b at step t does not reach earlier rows.
            var cb = c3.bmm(b3.transpose(1, 2)).tril_().reshape(bsz, g, 1, m, cs, cs);
            var yDiag = (cb * ld).matmul(xs);                                        // [B, G, r, m, C, P]

            // Chunk states X^T diag(w) B, the r heads of a group in one product (their P columns side by side).
            var weighted = xs * w.unsqueeze(-1);
            var merged = r == 1 ? weighted.reshape(bgm, cs, p) : weighted.permute(0, 1, 3, 4, 2, 5).reshape(bgm, cs, r * p);
            var chunkStates = merged.transpose(1, 2).bmm(b3).reshape(bsz, g, m, r, p, ns).unbind(2);   // each [B, G, r, P, N]
            var ecs = ec.unbind(3);                                                  // each [B, G, r, 1, 1]

            var entering = new Tensor[m];
            for (long j = 0; j < m; j++)
            {
                long at = c0 + j;
                if (startsAt[at] >= 0 && at > 0) state = init[startsAt[at]];
                entering[j] = state;
                state = chunkStates[j].addcmul(state, ecs[j], 1);                   // e_C S + X^T diag(w) B
                if (endsAt[at] >= 0) finals[endsAt[at]] = KeepIn(outer, state);
            }
            KeepIn(outer, state);

            // All chunks' readouts at once: Y_off = diag(e) C S^T, per group for its r heads together.
            var sEnter = stack(entering, 2);                                         // [B, G, m, r, P, N]
            if (states is not null) states.narrow(2, c0, m).copy_(sEnter);
            var merge = sEnter.reshape(bgm, r * p, ns);
            var yOff = c3.bmm(merge.transpose(1, 2)).reshape(bsz, g, m, cs, r, p).permute(0, 1, 4, 2, 3, 5);
            output.narrow(3, c0 * cs, m * cs).copy_(yDiag.addcmul_(yOff, e, 1).reshape(bsz, g, r, m * cs, p));
        }
        var final = stack(finals, 0).reshape(initial.shape);
        return (output.reshape(bsz, nh, l, p).MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope(), states?.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> gradOutputs)
    {
        AutogradBuffers.Flush();
        var z = (Sizes)ctx.get_data("sizes");
        var grads = new Tensor?[5];
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var saved = ctx.get_saved_variables();
            var gradY = gradOutputs[0] is { IsInvalid: false } gy ? gy : null;
            var gradS = gradOutputs[1] is { IsInvalid: false } gs ? gs : null;
            var r = z.Compiled
                ? CompiledBackward(saved[0], saved[1], saved[2], saved[3], saved[4], gradY, gradS, z)
                : Backward(saved[0], saved[1], saved[2], saved[3], saved[4], gradY, gradS, z);
            var shapes = new[] { saved[0].shape, saved[1].shape, saved[2].shape, saved[3].shape, z.StateShape };
            for (int i = 0; i < 5; i++)
                grads[i] = z.NeedsGrad[i] ? r[i].reshape(shapes[i]).MoveToOuterDisposeScope() : null;
        }
        AutogradBuffers.Release(gradOutputs.ToArray());
        // Two entries for the non-tensor arguments (the bounds and the chunk size).
        return AutogradBuffers.Return(grads[0], grads[1], grads[2], grads[3], grads[4], null, null, null);
    }

    /// <summary><see cref="Forward"/> by the compiled CPU kernel (<see cref="SSDChunkCpu"/>).</summary>
    private static (Tensor Output, Tensor Finals, Tensor? States) CompiledForward(Tensor x, Tensor a, Tensor b, Tensor c,
        Tensor initial, GatedDeltaRuleChunkFunction.Bounds bounds, int chunkSize, bool keepStates)
    {
        long bsz = x.shape[0], nh = x.shape[1], l = x.shape[2], p = x.shape[3], g = b.shape[1], ns = b.shape[3];
        long r = nh / g, n = l / chunkSize, count = bounds.First.Length;
        using var outer = NewDisposeScope();
        var y = empty(new[] { bsz, nh, l, p }, dtype: x.dtype, device: x.device);
        var finals = empty(new[] { count, bsz * nh, p, ns }, dtype: x.dtype, device: x.device);
        var states = keepStates ? empty(new[] { bsz, g, n, r, p, ns }, dtype: x.dtype, device: x.device) : null;
        SSDChunkCpu.Forward(x.contiguous(), a.contiguous(), b.contiguous(), c.contiguous(),
            initial.reshape(count, bsz * nh, p, ns).contiguous(), bounds.StartsAt(n), bounds.EndsAt(n), chunkSize, y, finals, states);
        return (y.MoveToOuterDisposeScope(), finals.reshape(initial.shape).MoveToOuterDisposeScope(), states?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <see cref="Backward"/> by the compiled CPU kernel, on the contiguous saved inputs; the per-head shares of the
    /// gradients of b and c are summed over the heads of each group here.
    /// </summary>
    private static Tensor[] CompiledBackward(Tensor x, Tensor a, Tensor b, Tensor c, Tensor states, Tensor? gradY, Tensor? gradS, Sizes z)
    {
        long bsz = z.B, g = z.G, r = z.R, l = z.L, p = z.P, ns = z.N, n = l / z.C, count = z.Bounds.First.Length, nh = g * r;
        using var outer = NewDisposeScope();
        var dx = empty(new[] { bsz, nh, l, p }, dtype: x.dtype, device: x.device);
        var da = empty(new[] { bsz, nh, l }, dtype: x.dtype, device: x.device);
        var dbHeads = empty(new[] { bsz, nh, l, ns }, dtype: x.dtype, device: x.device);
        var dcHeads = empty(new[] { bsz, nh, l, ns }, dtype: x.dtype, device: x.device);
        var dinit = empty(new[] { count, bsz * nh, p, ns }, dtype: x.dtype, device: x.device);
        SSDChunkCpu.Backward(x, a, b, c, states, gradY?.contiguous(), gradS?.reshape(count, bsz * nh, p, ns).contiguous(),
            z.Bounds.StartsAt(n), z.Bounds.EndsAt(n), (int)z.C, dx, da, dbHeads, dcHeads, dinit);
        var db = r == 1 ? dbHeads : dbHeads.view(bsz, g, r, l, ns).sum(2);
        var dc = r == 1 ? dcHeads : dcHeads.view(bsz, g, r, l, ns).sum(2);
        return new[] { dx, da, db, dc, dinit }.Select(t => t.MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>The gradients of x, a, b, c and the initial states (see the class remarks).</summary>
    private static Tensor[] Backward(Tensor x, Tensor a, Tensor b, Tensor c, Tensor states, Tensor? gradY, Tensor? gradS, Sizes z)
    {
        long bsz = z.B, g = z.G, r = z.R, l = z.L, p = z.P, ns = z.N, cs = z.C, n = l / cs, count = z.Bounds.First.Length;
        using var outer = NewDisposeScope();
        var xf = x.reshape(bsz, g, r, l, p);
        var af = a.reshape(bsz, g, r, l);
        var dyf = gradY?.reshape(bsz, g, r, l, p);
        var dfin = gradS?.reshape(count, bsz, g, r, p, ns);
        var startsAt = z.Bounds.StartsAt(n);
        var endsAt = z.Bounds.EndsAt(n);

        var dx = empty(new[] { bsz, g, r, l, p }, dtype: x.dtype, device: x.device);
        var da = empty(new[] { bsz, g, r, l }, dtype: x.dtype, device: x.device);
        var db = empty(new[] { bsz, g, l, ns }, dtype: x.dtype, device: x.device);
        var dc = empty(new[] { bsz, g, l, ns }, dtype: x.dtype, device: x.device);
        var dinit = zeros(new[] { count, bsz, g, r, p, ns }, dtype: x.dtype, device: x.device);
        var zero = zeros(new[] { bsz, g, r, p, ns }, dtype: x.dtype, device: x.device);

        long group = SequenceSegments.Length((int)cs) / cs;
        long segments = (n + group - 1) / group;
        Tensor dS = zero;                                                            // the gradient of the state after the chunk
        for (long sg = segments - 1; sg >= 0; sg--)
        {
            using var segmentScope = NewDisposeScope();
            long c0 = sg * group, m = Math.Min(group, n - c0);
            long bgm = bsz * g * m;
            var xs = xf.narrow(3, c0 * cs, m * cs).reshape(bsz, g, r, m, cs, p);
            var b3 = b.narrow(2, c0 * cs, m * cs).reshape(bgm, cs, ns);
            var c3 = c.narrow(2, c0 * cs, m * cs).reshape(bgm, cs, ns);
            var dys = dyf?.narrow(3, c0 * cs, m * cs).reshape(bsz, g, r, m, cs, p);
            var sv = states.narrow(2, c0, m).reshape(bgm, r * p, ns);               // the entering states, the r heads stacked
            var (ld, e, ec, w) = Decays(af.narrow(3, c0 * cs, m * cs).reshape(bsz, g, r, m, cs));
            var cb = c3.bmm(b3.transpose(1, 2)).tril_().reshape(bsz, g, 1, m, cs, cs);
            // The group's r heads side by side (their P columns), as in the forward: [B G m, C, r P].
            Tensor Merge(Tensor t) => r == 1 ? t.reshape(bgm, cs, p) : t.permute(0, 1, 3, 4, 2, 5).reshape(bgm, cs, r * p);
            Tensor Unmerge(Tensor t) => t.reshape(bsz, g, m, cs, r, p).permute(0, 1, 4, 2, 3, 5);   // back to [B, G, r, m, C, P]
            Tensor PerHead(Tensor t) => t.reshape(bsz, g, m, cs, r, p).sum(-1).permute(0, 1, 4, 2, 3);  // [B, G, r, m, C]
            var em = Merge(e.expand(bsz, g, r, m, cs, p));
            var dyem = dys is null ? null : Merge(dys) * em;                        // diag(e) dY per head, merged

            // The reverse pass: dS = e_C dS' + dY^T diag(e) C.
            var readout = dyem?.transpose(1, 2).bmm(c3).reshape(bsz, g, m, r, p, ns).unbind(2);   // each [B, G, r, P, N]
            var ecs = ec.unbind(3);
            var dExits = new Tensor[m];
            for (long j = m - 1; j >= 0; j--)
            {
                long at = c0 + j;
                if (endsAt[at] >= 0 && dfin is not null) dS = dS.add(dfin[endsAt[at]]);
                dExits[j] = dS;
                dS = readout is null ? dS * ecs[j] : readout[j].addcmul(dS, ecs[j], 1);
                if (startsAt[at] >= 0)
                {
                    dinit[startsAt[at]].copy_(dS);
                    dS = zero;
                }
            }
            KeepIn(outer, dS);
            var ev = stack(dExits, 2).reshape(bgm, r * p, ns);                      // dS' per chunk, the r heads stacked

            // The chunk states S' = e_C S + X^T diag(w) B.
            var xm = Merge(xs);
            var wm = Merge(w.unsqueeze(-1).expand(bsz, g, r, m, cs, p));
            var bdE = b3.bmm(ev.transpose(1, 2));                                   // B dS'^T  [B G m, C, r P]
            var dw = PerHead(bdE * xm);                                             // [B, G, r, m, C]
            var dXm = bdE.mul_(wm);
            var dB = (xm * wm).bmm(ev);                                             // summed over the group's heads  [B G m, C, N]
            var dec = (ev * sv).reshape(bsz, g, m, r, p * ns).sum(-1).permute(0, 1, 3, 2);   // [B, G, r, m]

            // The output Y = (CB ⊙ Ld) X + diag(e) C S^T.
            Tensor dLd, de, dC, dX;
            if (dys is not null)
            {
                dX = (cb * ld).transpose(-1, -2).matmul(dys).add_(Unmerge(dXm));     // [B, G, r, m, C, P]
                var dM = dys.matmul(xs.transpose(-1, -2));                           // dY X^T  [B, G, r, m, C, C]
                var dCB = (dM * ld).sum(2).tril_().reshape(bgm, cs, cs);
                dLd = dM.mul_(cb);
                de = PerHead(Merge(dys) * c3.bmm(sv.transpose(1, 2)));              // (dY (C S^T)^T)_ii per head
                dC = dyem!.baddbmm(sv, dCB.bmm(b3), beta: 1, alpha: 1);             // dCB B + sum_heads diag(e) dY S
                dB = dCB.transpose(1, 2).baddbmm(c3, dB, beta: 1, alpha: 1);
            }
            else
            {
                dX = Unmerge(dXm);
                dLd = zeros(new[] { bsz, g, r, m, cs, cs }, dtype: x.dtype, device: x.device);
                de = zeros(new[] { bsz, g, r, m, cs }, dtype: x.dtype, device: x.device);
                dC = zeros(new[] { bgm, cs, ns }, dtype: x.dtype, device: x.device);
            }

            // The decays: dD = dLd ⊙ Ld (+ the last row's dw ⊙ w), dA_i = e_i de_i + rowsum_i - colsum_i (+ e_C de_C).
            var dD = dLd.mul_(ld);
            dD.select(-2, cs - 1).add_(dw.mul_(w));
            var dA = dD.sum(-1).sub_(dD.sum(-2)).add_(de.mul_(e.squeeze(-1)));
            dA.select(-1, cs - 1).add_(dec.mul_(ec.reshape(bsz, g, r, m)));
            var das = dA.flip(-1).cumsum(-1).flip(-1);                               // da_r = sum_{i >= r} dA_i

            dx.narrow(3, c0 * cs, m * cs).copy_(dX.reshape(bsz, g, r, m * cs, p));
            da.narrow(3, c0 * cs, m * cs).copy_(das.reshape(bsz, g, r, m * cs));
            db.narrow(2, c0 * cs, m * cs).copy_(dB.reshape(bsz, g, m * cs, ns));
            dc.narrow(2, c0 * cs, m * cs).copy_(dC.reshape(bsz, g, m * cs, ns));
        }
        return new[] { dx, da, db, dc, dinit }.Select(t => t.MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>
    /// Moves <paramref name="t"/> into <paramref name="scope"/> unless it is there already (TorchSharp 0.107's move to
    /// the scope a tensor is in drops it from that scope without re-adding it, leaving it to the finalizer).
    /// </summary>
    private static Tensor KeepIn(DisposeScope scope, Tensor t) => scope.Contains(t) ? t : t.MoveToOtherDisposeScope(scope);
}
