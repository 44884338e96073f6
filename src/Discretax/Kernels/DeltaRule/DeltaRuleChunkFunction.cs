using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function of <see cref="DeltaRule.Chunked"/>: a forward that keeps no autograd graph and a
/// hand-written backward that recomputes every chunk's matrices from the inputs and the saved chunk-entering states.
/// </summary>
/// <remarks>
/// <para>Per (batch, head) and chunk of C rows, with the state <c>S</c> entering the chunk (see <see cref="DeltaRule"/>):</para>
/// <code>
/// Kb = diag(beta) K,  Vb = diag(beta) V,  A = tril(Kb K^T, -1),  T = (I + A)^{-1},  W = T Kb,  U = T Vb,
/// U' = U - W S,  P = tril(Q K^T),  O = Q S + P U',  S' = S + K^T U'.
/// </code>
/// <para>Backward of one chunk, given <c>dO</c> and <c>dS'</c> (the gradient of the state after it), in this order:</para>
/// <code>
/// dU' = P^T dO + K dS'                      dPm = tril(dO U'^T)
/// dQ  = dO S^T + dPm K                      dK  = dPm^T Q + U' dS'^T
/// dS  = dS' + Q^T dO - W^T dU'     (the gradient entering the chunk before)
/// dVb = T^T dU',  dKb = -dVb S^T            dA  = -tril(dVb U'^T, -1)
/// dKb += dA K,   dK += dA^T Kb              dK += diag(beta) dKb,  dV = diag(beta) dVb,
/// dbeta_i = dKb_i . K_i + dVb_i . V_i.
/// </code>
/// <para>(With <c>dW = -dU' S^T</c>: <c>dKb = T^T dW = -dVb S^T</c>; the inverse's derivative gives
/// <c>dA = -tril(T^T dT T^T, -1)</c> with <c>dT = dW Kb^T + dU' Vb^T</c>, and <c>T^T dT T^T = dKb W^T + dVb U^T =
/// dVb (U - W S)^T = dVb U'^T</c>.)
/// The gradient of the initial state is the <c>dS</c> entering the first chunk. Only <c>dS</c> is carried sequentially,
/// over the chunks in reverse; everything else is per chunk.</para>
/// <para>Saved for the backward: the (padded) inputs and the state entering every chunk, <c>[BH, N, Dk, Dv]</c>: saved
/// memory O(L D + (L / C) Dk Dv) per head, nothing of size C x C per chunk. The backward does about 2.3x the forward's
/// arithmetic (the forward's products are recomputed once).</para>
/// <para>Two implementations of one math: on CPU (float32 / float64, x64 with AVX2 and FMA) the compiled C# kernel
/// <see cref="DeltaRuleChunkCpu"/> (parallel over B x NH, whole chunks in cache); elsewhere tensor operations, per
/// segment of about 1024 steps (<see cref="SequenceSegments"/>) with the chunks of a segment batched.
/// Called as <c>apply(q, k, v, beta, s0, chunk, path)</c> with contiguous <c>[BH, Lp, D]</c> inputs of the compute
/// dtype, <c>Lp</c> a multiple of <c>chunk</c>, <c>s0 [BH, Dk, Dv]</c>; returns <c>[O [BH, Lp, Dv], S_final [BH, Dk, Dv]]</c>.
/// The gradient of an output the loss does not use arrives undefined (gradients are not materialized) and counts as
/// zero. No double backward.</para>
/// </remarks>
internal sealed class DeltaRuleChunkFunction : MultiTensorFunction<DeltaRuleChunkFunction>
{
    private sealed record Sizes(int Chunk, bool Compiled);

    /// <inheritdoc/>
    public override string Name => "DeltaRuleChunkedBackward";

    /// <summary>The number of elements the last forward on this thread saved for its backward (the memory test reads it).</summary>
    [ThreadStatic] internal static long LastSavedElements;

    /// <summary>
    /// The chunkwise delta rule over contiguous padded inputs <c>[BH, Lp, D]</c>, through the autograd function when a
    /// gradient is needed and by the forward alone otherwise.
    /// </summary>
    internal static (Tensor Output, Tensor FinalState) Run(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor s0, int chunk, KernelPath path)
    {
        bool grad = is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad || beta.requires_grad || s0.requires_grad);
        using var scope = NewDisposeScope();
        Tensor o, s;
        if (!grad)
        {
            using var noGrad = no_grad();
            (o, s, _) = Forward(q, k, v, beta, s0, chunk, Compiled(q, path), saveStates: false);
        }
        else
        {
            var r = apply(q, k, v, beta, s0, chunk, path);
            (o, s) = (r[0], r[1]);
        }
        return (o.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope());
    }

    private static bool Compiled(Tensor q, KernelPath path) => path == KernelPath.Auto && DeltaRuleChunkCpu.Supports(q);

    private static (Tensor O, Tensor S, Tensor? SEnter) Forward(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor s0, int chunk,
        bool compiled, bool saveStates)
    {
        long bh = q.shape[0], lp = q.shape[1], dk = q.shape[2], dv = v.shape[2], n = lp / chunk;
        if (compiled)
        {
            var o = empty(new[] { bh, lp, dv }, dtype: q.dtype, device: q.device);
            var s = empty(new[] { bh, dk, dv }, dtype: q.dtype, device: q.device);
            var sEnter = saveStates ? empty(new[] { bh, n, dk, dv }, dtype: q.dtype, device: q.device) : null;
            DeltaRuleChunkCpu.Forward(q, k, v, beta, s0, chunk, o, s, sEnter);
            return (o, s, sEnter);
        }
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        var entering = new List<Tensor>();
        var state = s0;
        long segment = SequenceSegments.Length(chunk);
        for (long start = 0; start < lp; start += segment)
        {
            long len = Math.Min(segment, lp - start);
            long chunks = len / chunk;
            var o = DeltaRule.ChunkCore(q.narrow(1, start, len), k.narrow(1, start, len), v.narrow(1, start, len),
                beta.narrow(1, start, len), bh, chunks, chunk, dk, dv, ref state, null, null, out var sEnter);
            parts.Add(o.reshape(bh, len, dv));
            if (saveStates) entering.Add(sEnter);
        }
        var output = parts.Count == 1 ? parts[0] : cat(parts, 1);
        var final = ReferenceEquals(state, s0) ? s0.clone() : state;
        var enter = saveStates ? (entering.Count == 1 ? entering[0] : cat(entering, 1)).MoveToOuterDisposeScope() : null;
        return (output.MoveToOuterDisposeScope(), final.MoveToOuterDisposeScope(), enter);
    }

    /// <summary>The UT transform of all chunks of a segment: Q, K, K^T, Kb as <c>[BH, n, C, D]</c>, T, W and U.</summary>
    internal static (Tensor Q, Tensor K, Tensor Kt, Tensor Kb, Tensor T, Tensor W, Tensor U) Transform(Tensor q, Tensor k, Tensor v, Tensor beta, long c)
    {
        long bh = q.shape[0], n = q.shape[1] / c, dk = q.shape[2], dv = v.shape[2];
        var qs = q.reshape(bh, n, c, dk);
        var ks = k.reshape(bh, n, c, dk);
        var vs = v.reshape(bh, n, c, dv);
        var bs = beta.reshape(bh, n, c, 1);
        var kb = ks * bs;
        var kt = ks.transpose(-1, -2);
        var tInv = UnitLowerInverse.Invert(kb.matmul(kt));                           // reads the strictly lower part
        return (qs, ks, kt, kb, tInv, tInv.matmul(kb), tInv.matmul(vs * bs));
    }

    /// <inheritdoc/>
    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var q = (Tensor)vars[0];
        var k = (Tensor)vars[1];
        var v = (Tensor)vars[2];
        var beta = (Tensor)vars[3];
        var s0 = (Tensor)vars[4];
        int chunk = (int)vars[5];
        var path = (KernelPath)vars[6];
        bool compiled = Compiled(q, path);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (o, s, sEnter) = Forward(q, k, v, beta, s0, chunk, compiled, saveStates: true);
        // Saved after this method returns (TorchSharp takes the list then): the states outlive this scope.
        sEnter!.MoveToOuterDisposeScope();
        ctx.save_for_backward(new List<Tensor> { q, k, v, beta, sEnter });
        LastSavedElements = q.numel() + k.numel() + v.numel() + beta.numel() + sEnter.numel();
        ctx.save_data("sizes", new Sizes(chunk, compiled));
        ctx.set_materialize_grads(false);
        return new List<Tensor> { o.MoveToOuterDisposeScope(), s.MoveToOuterDisposeScope() };
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> gradOutputs)
    {
        AutogradBuffers.Flush();
        var sizes = (Sizes)ctx.get_data("sizes");
        Tensor dq, dk, dv, dbeta, ds0;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            // The unpacked saved tensors are new wrappers: inside the scope, so that they are released here.
            var saved = ctx.get_saved_variables();
            Tensor q = saved[0], k = saved[1], v = saved[2], beta = saved[3], sEnter = saved[4];
            dq = empty_like(q); dk = empty_like(k); dv = empty_like(v); dbeta = empty_like(beta);
            ds0 = empty(new[] { q.shape[0], q.shape[2], v.shape[2] }, dtype: q.dtype, device: q.device);
            var dO = gradOutputs[0] is { IsInvalid: false } go ? go : null;
            var dS = gradOutputs[1] is { IsInvalid: false } gs ? gs : null;
            if (sizes.Compiled)
                DeltaRuleChunkCpu.Backward(q, k, v, beta, sEnter, sizes.Chunk, dO?.contiguous(), dS?.contiguous(), dq, dk, dv, dbeta, ds0);
            else
                TensorBackward(q, k, v, beta, sEnter, sizes.Chunk, dO, dS, dq, dk, dv, dbeta, ds0);
            foreach (var g in new[] { dq, dk, dv, dbeta, ds0 }) g.MoveToOuterDisposeScope();
        }
        AutogradBuffers.Release(gradOutputs.ToArray());
        // Null for the two non-tensor arguments (chunk, path).
        return AutogradBuffers.Return(dq, dk, dv, dbeta, ds0, null, null);
    }

    /// <summary>The backward by tensor operations, segment by segment in reverse, the chunks of a segment batched.</summary>
    private static void TensorBackward(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor sEnterAll, int chunk, Tensor? dOAll, Tensor? dSFinal,
        Tensor dq, Tensor dk, Tensor dv, Tensor dbeta, Tensor ds0)
    {
        long bh = q.shape[0], lp = q.shape[1], dkk = q.shape[2], dvv = v.shape[2];
        long c = chunk;
        long segment = SequenceSegments.Length(chunk);
        var ds = dSFinal is null ? zeros(new[] { bh, dkk, dvv }, dtype: q.dtype, device: q.device) : dSFinal.clone();
        long segments = (lp + segment - 1) / segment;
        for (long si = segments - 1; si >= 0; si--)
        {
            using var inner = NewDisposeScope();
            long start = si * segment, len = Math.Min(segment, lp - start), n = len / c;
            var (qs, ks, kt, kb, tInv, w, u) = Transform(q.narrow(1, start, len), k.narrow(1, start, len), v.narrow(1, start, len),
                beta.narrow(1, start, len), c);
            var vs = v.narrow(1, start, len).reshape(bh, n, c, dvv);
            var bs = beta.narrow(1, start, len).reshape(bh, n, c, 1);
            var sEnter = sEnterAll.narrow(1, start / c, n);                          // [BH, n, Dk, Dv]
            var up = u - w.matmul(sEnter);                                           // U'
            var dO = dOAll is null ? zeros(new[] { bh, n, c, dvv }, dtype: q.dtype, device: q.device)
                : dOAll.narrow(1, start, len).reshape(bh, n, c, dvv);
            var p = qs.matmul(kt).tril(0);
            var x = p.transpose(-1, -2).matmul(dO);                                  // P^T dO    [BH, n, C, Dv]
            var y = qs.transpose(-1, -2).matmul(dO);                                 // Q^T dO    [BH, n, Dk, Dv]
            var xs = x.unbind(1);
            var ys = y.unbind(1);
            var kss = ks.unbind(1);
            var wts = w.transpose(-1, -2).unbind(1);
            var dUp = new Tensor[n];
            var dNext = new Tensor[n];
            for (long j = n - 1; j >= 0; j--)
            {
                dNext[j] = ds;
                dUp[j] = AddBmm(xs[j], kss[j], ds, 1);                               // dU' = P^T dO + K dS'
                ds = AddBmm(ds + ys[j], wts[j], dUp[j], -1);                         // dS = dS' + Q^T dO - W^T dU'
            }
            var dup = stack(dUp, 1);                                                 // [BH, n, C, Dv]
            var dsNext = stack(dNext, 1);                                            // [BH, n, Dk, Dv]
            var dpm = dO.matmul(up.transpose(-1, -2)).tril(0);
            var sT = sEnter.transpose(-1, -2);
            var dQ = dO.matmul(sT) + dpm.matmul(ks);
            var dK = dpm.transpose(-1, -2).matmul(qs) + up.matmul(dsNext.transpose(-1, -2));
            var dVb = tInv.transpose(-1, -2).matmul(dup);                          // T^T dU'
            var dKb = dVb.matmul(sT).neg_();                                         // T^T dW with dW = -dU' S^T
            var dA = dVb.matmul(up.transpose(-1, -2)).tril(-1).neg_();               // -tril(dVb U'^T, -1)
            dKb = dKb + dA.matmul(ks);
            dK = dK + dA.transpose(-1, -2).matmul(kb) + dKb * bs;
            var dB = (dKb * ks).sum(-1) + (dVb * vs).sum(-1);                       // [BH, n, C]
            dq.narrow(1, start, len).copy_(dQ.reshape(bh, len, dkk));
            dk.narrow(1, start, len).copy_(dK.reshape(bh, len, dkk));
            dv.narrow(1, start, len).copy_((dVb * bs).reshape(bh, len, dvv));
            dbeta.narrow(1, start, len).copy_(dB.reshape(bh, len));
            ds.MoveToOuterDisposeScope();
        }
        ds0.copy_(ds);
    }

    /// <summary><c>input + alpha * (batch1 @ batch2)</c> as one fused <c>baddbmm</c> (see <see cref="DeltaRule"/>).</summary>
    private static Tensor AddBmm(Tensor input, Tensor batch1, Tensor batch2, float alpha) =>
        batch1.baddbmm(batch2, input, beta: 1, alpha: alpha);
}
