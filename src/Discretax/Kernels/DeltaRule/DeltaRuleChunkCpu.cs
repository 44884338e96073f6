using System.Runtime.CompilerServices;
using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The compiled CPU path of <see cref="DeltaRuleChunkFunction"/>: the whole chunkwise delta rule, forward and
/// backward, in C# over the memory of contiguous float32 / float64 tensors <c>[BH, Lp, D]</c>, one (batch, head) pair
/// per task (parallel over B x NH), every chunk's products done by <see cref="SmallGemm"/> on cache-resident blocks.
/// The math is the one written on <see cref="DeltaRuleChunkFunction"/>; the triangular operands (<c>T</c>,
/// <c>tril(Q K^T)</c>, their transposes, <c>dA</c>) are multiplied over their non-zero triangle only.
/// </summary>
internal static unsafe class DeltaRuleChunkCpu
{
    /// <summary>Whether the compiled path runs for tensors of this dtype on this machine.</summary>
    internal static bool Supports(Tensor t) =>
        t.device_type == DeviceType.CPU && t.dtype is ScalarType.Float32 or ScalarType.Float64 && SmallGemm.IsSupported;

    /// <summary>The sizes of one call.</summary>
    private readonly record struct Dims(int BH, int N, int C, int Dk, int Dv)
    {
        public long Lp => (long)N * C;
    }

    /// <summary>
    /// Forward from <paramref name="s0"/> <c>[BH, Dk, Dv]</c> into the outputs <paramref name="o"/> <c>[BH, Lp, Dv]</c> and
    /// the final states <paramref name="sFinal"/> <c>[BH, Dk, Dv]</c>. The state entering every chunk goes to
    /// <paramref name="sEnter"/> <c>[BH, N, Dk, Dv]</c> when it is not null. All tensors contiguous, of one dtype,
    /// preallocated.
    /// </summary>
    internal static void Forward(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor s0, int chunk, Tensor o, Tensor sFinal, Tensor? sEnter)
    {
        if (q.dtype == ScalarType.Float32) Forward<float>(q, k, v, beta, s0, chunk, o, sFinal, sEnter);
        else Forward<double>(q, k, v, beta, s0, chunk, o, sFinal, sEnter);
    }

    /// <summary>
    /// Backward from the saved inputs and entering states: the gradients of q, k, v, beta and the initial state
    /// (preallocated, contiguous) from the gradients <paramref name="dO"/> <c>[BH, Lp, Dv]</c> of the outputs and
    /// <paramref name="dSFinal"/> <c>[BH, Dk, Dv]</c> of the final states (either null: zero).
    /// </summary>
    internal static void Backward(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor sEnter, int chunk, Tensor? dO, Tensor? dSFinal,
        Tensor dq, Tensor dk, Tensor dv, Tensor dbeta, Tensor ds0)
    {
        if (q.dtype == ScalarType.Float32) Backward<float>(q, k, v, beta, sEnter, chunk, dO, dSFinal, dq, dk, dv, dbeta, ds0);
        else Backward<double>(q, k, v, beta, sEnter, chunk, dO, dSFinal, dq, dk, dv, dbeta, ds0);
    }

    private static Dims Sizes(Tensor q, Tensor v, int chunk) =>
        new((int)q.shape[0], (int)(q.shape[1] / chunk), chunk, (int)q.shape[2], (int)v.shape[2]);

    private static nint Ptr<T>(Tensor? t) where T : unmanaged => (nint)CpuTensorMemory.Pointer<T>(t, "DeltaRule.Chunked");

    /// <summary>The largest block a task takes: C x C, C x D or Dk x Dv.</summary>
    private static long Largest(Dims d) => Math.Max((long)d.C * d.C, Math.Max((long)d.C * Math.Max(d.Dk, d.Dv), (long)d.Dk * d.Dv));

    private static void Forward<T>(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor s0, int chunk,
        Tensor o, Tensor sFinal, Tensor? sEnter) where T : unmanaged, INumber<T>
    {
        var d = Sizes(q, v, chunk);
        nint pq = Ptr<T>(q), pk = Ptr<T>(k), pv = Ptr<T>(v), pb = Ptr<T>(beta), ps0 = Ptr<T>(s0),
            po = Ptr<T>(o), psf = Ptr<T>(sFinal), pse = Ptr<T>(sEnter);
        KernelParallel.For(d.BH, h =>
        {
            int c = d.C, dk = d.Dk, dv = d.Dv;
            long cc = (long)c * c, kv = (long)dk * dv;
            using var scratch = new KernelScratch<T>(10, Largest(d));
            T* kb = scratch.Take(c * dk), vb = scratch.Take(c * dv), kt = scratch.Take(dk * c), a = scratch.Take(cc),
                t = scratch.Take(cc), x = scratch.Take(cc), w = scratch.Take(c * dk), up = scratch.Take(c * dv), p = scratch.Take(cc), s = scratch.Take(kv);
            T* qh = (T*)pq + h * d.Lp * dk, kh = (T*)pk + h * d.Lp * dk, vh = (T*)pv + h * d.Lp * dv, bh = (T*)pb + h * d.Lp;
            T* oh = (T*)po + h * d.Lp * dv;
            new Span<T>((T*)ps0 + h * kv, (int)kv).CopyTo(new Span<T>(s, (int)kv));
            for (int j = 0; j < d.N; j++)
            {
                long r0 = (long)j * c;
                T* qj = qh + r0 * dk, kj = kh + r0 * dk, vj = vh + r0 * dv, bj = bh + r0, oj = oh + r0 * dv;
                Prepare(c, dk, dv, kj, vj, bj, kb, vb, kt, a, t, x, w, up);
                if (pse != 0) new Span<T>(s, (int)kv).CopyTo(new Span<T>((T*)pse + (h * (long)d.N + j) * kv, (int)kv));
                SmallGemm.Gemm(c, dv, dk, w, dk, s, dv, up, dv, true, -T.One);                          // U' = U - W S
                SmallGemm.Gemm(c, dv, dk, qj, dk, s, dv, oj, dv, false, T.One);                         // O = Q S
                SmallGemm.Gemm(c, c, dk, qj, dk, kt, c, p, c, false, T.One, lowerOutput: true);         // tril(Q K^T)
                SmallGemm.MaskUpper(c, c, p, c, 0);
                SmallGemm.Gemm(c, dv, c, p, c, up, dv, oj, dv, true, T.One, Triangle.Lower);           //   + P U'
                SmallGemm.Gemm(dk, dv, c, kj, dk, up, dv, s, dv, true, T.One, transA: true);            // S += K^T U'
            }
            new Span<T>(s, (int)kv).CopyTo(new Span<T>((T*)psf + h * kv, (int)kv));
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(beta); GC.KeepAlive(s0);
        GC.KeepAlive(o); GC.KeepAlive(sFinal); GC.KeepAlive(sEnter);
    }

    /// <summary>
    /// The chunk's UT transform: <c>Kb = diag(beta) K</c>, <c>Vb = diag(beta) V</c>, <c>K^T</c>,
    /// <c>A = Kb K^T</c> (its strictly lower part is read), <c>T = (I + tril(A, -1))^{-1}</c>, <c>W = T Kb</c> and
    /// <c>U = T Vb</c> (into <paramref name="u"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Prepare<T>(int c, int dk, int dv, T* kj, T* vj, T* bj, T* kb, T* vb, T* kt, T* a, T* t, T* x, T* w, T* u)
        where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < c; i++)
        {
            KernelVectors.Scale(dk, bj[i], kj + i * dk, kb + i * dk);
            KernelVectors.Scale(dv, bj[i], vj + i * dv, vb + i * dv);
        }
        SmallGemm.Transpose(c, dk, kj, dk, kt, c);
        SmallGemm.Gemm(c, c, dk, kb, dk, kt, c, a, c, false, T.One, lowerOutput: true);
        InvertUnitLower(c, a, t, x);
        SmallGemm.Gemm(c, dk, c, t, c, kb, dk, w, dk, false, T.One, Triangle.Lower);
        SmallGemm.Gemm(c, dv, c, t, c, vb, dv, u, dv, false, T.One, Triangle.Lower);
    }

    /// <summary>
    /// <c>T = (I + tril(A, -1))^{-1}</c> into <paramref name="t"/> (zeros above the diagonal; only the strictly lower part of
    /// <paramref name="a"/> is read), blocked: the 16 x 16 diagonal blocks by row-wise forward substitution
    /// (<c>T[i, :] = e_i - sum_{l &lt; i} A[i, l] T[l, :]</c>), then levels that join neighbouring inverted blocks
    /// <c>T11</c>, <c>T22</c> by <c>T21 = -T22 (A21 T11)</c> with <see cref="SmallGemm"/> (exact, the blocked form of the
    /// same substitution). <paramref name="x"/> is <c>C x C</c> scratch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void InvertUnitLower<T>(int c, T* a, T* t, T* x) where T : unmanaged, INumber<T>
    {
        const int block = 16;
        new Span<T>(t, c * c).Clear();
        for (int b0 = 0; b0 < c; b0 += block)
        {
            int b1 = Math.Min(c, b0 + block);
            for (int i = b0; i < b1; i++)
            {
                T* ti = t + i * c;
                T* ai = a + i * c;
                ti[i] = T.One;
                for (int l = b0; l < i; l++)
                {
                    T coef = ai[l];
                    if (coef == T.Zero) continue;
                    T* tl = t + l * c;
                    for (int j = b0; j <= l; j++) ti[j] -= coef * tl[j];     // T[l, j] = 0 for j > l
                }
            }
        }
        for (int s = block; s < c; s *= 2)
            for (int r0 = 0; r0 + s < c; r0 += 2 * s)
            {
                int r1 = r0 + s, m2 = Math.Min(s, c - r1);
                // X = A21 T11   [m2, s];   T21 = -T22 X   (T22 lower triangular)
                SmallGemm.Gemm(m2, s, s, a + r1 * c + r0, c, t + r0 * c + r0, c, x, s, false, T.One);
                SmallGemm.Gemm(m2, s, m2, t + r1 * c + r1, c, x, s, t + r1 * c + r0, c, false, -T.One, Triangle.Lower);
            }
    }

    private static void Backward<T>(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor sEnter, int chunk, Tensor? dO, Tensor? dSFinal,
        Tensor dq, Tensor dk, Tensor dv, Tensor dbeta, Tensor ds0) where T : unmanaged, INumber<T>
    {
        var d = Sizes(q, v, chunk);
        nint pq = Ptr<T>(q), pk = Ptr<T>(k), pv = Ptr<T>(v), pb = Ptr<T>(beta), pse = Ptr<T>(sEnter),
            pdo = Ptr<T>(dO), pdsf = Ptr<T>(dSFinal), pdq = Ptr<T>(dq), pdk = Ptr<T>(dk), pdv = Ptr<T>(dv),
            pdb = Ptr<T>(dbeta), pds0 = Ptr<T>(ds0);
        KernelParallel.For(d.BH, h =>
        {
            int c = d.C, dkk = d.Dk, dvv = d.Dv;
            long cc = (long)c * c, kv = (long)dkk * dvv, cdk = (long)c * dkk, cdv = (long)c * dvv;
            using var scratch = new KernelScratch<T>(20, Largest(d));
            T* kb = scratch.Take(cdk), vb = scratch.Take(cdv), kt = scratch.Take(cdk), a = scratch.Take(cc), t = scratch.Take(cc),
                x = scratch.Take(cc), w = scratch.Take(cdk), u = scratch.Take(cdv), up = scratch.Take(cdv), p = scratch.Take(cc),
                dup = scratch.Take(cdv), ut = scratch.Take(cdv), dpm = scratch.Take(cc), st = scratch.Take(kv),
                dst = scratch.Take(kv),
                dkb = scratch.Take(cdk), dvb = scratch.Take(cdv), da = scratch.Take(cc), ds = scratch.Take(kv),
                zero = scratch.Take(cdv);
            new Span<T>(zero, (int)cdv).Clear();
            T* qh = (T*)pq + h * d.Lp * dkk, kh = (T*)pk + h * d.Lp * dkk, vh = (T*)pv + h * d.Lp * dvv, bh = (T*)pb + h * d.Lp;
            T* dqh = (T*)pdq + h * d.Lp * dkk, dkh = (T*)pdk + h * d.Lp * dkk, dvh = (T*)pdv + h * d.Lp * dvv, dbh = (T*)pdb + h * d.Lp;
            if (pdsf != 0) new Span<T>((T*)pdsf + h * kv, (int)kv).CopyTo(new Span<T>(ds, (int)kv));
            else new Span<T>(ds, (int)kv).Clear();
            for (int j = d.N - 1; j >= 0; j--)
            {
                long r0 = (long)j * c;
                T* qj = qh + r0 * dkk, kj = kh + r0 * dkk, vj = vh + r0 * dvv, bj = bh + r0;
                T* doj = pdo != 0 ? (T*)pdo + h * d.Lp * dvv + r0 * dvv : zero;
                T* dqj = dqh + r0 * dkk, dkj = dkh + r0 * dkk, dvj = dvh + r0 * dvv, dbj = dbh + r0;
                T* s = (T*)pse + (h * (long)d.N + j) * kv;

                // Recompute the chunk's forward: T, W, U, U' = U - W S and P = tril(Q K^T).
                Prepare(c, dkk, dvv, kj, vj, bj, kb, vb, kt, a, t, x, w, u);
                new Span<T>(u, (int)cdv).CopyTo(new Span<T>(up, (int)cdv));
                SmallGemm.Gemm(c, dvv, dkk, w, dkk, s, dvv, up, dvv, true, -T.One);
                SmallGemm.Gemm(c, c, dkk, qj, dkk, kt, c, p, c, false, T.One, lowerOutput: true);
                SmallGemm.MaskUpper(c, c, p, c, 0);

                // dU' = P^T dO + K dS'   (ds holds dS', the gradient of the state after the chunk)
                SmallGemm.Gemm(c, dvv, c, p, c, doj, dvv, dup, dvv, false, T.One, Triangle.Upper, transA: true);
                SmallGemm.Gemm(c, dvv, dkk, kj, dkk, ds, dvv, dup, dvv, true, T.One);
                // dPm = tril(dO U'^T)
                SmallGemm.Transpose(c, dvv, up, dvv, ut, c);
                SmallGemm.Gemm(c, c, dvv, doj, dvv, ut, c, dpm, c, false, T.One, lowerOutput: true);
                SmallGemm.MaskUpper(c, c, dpm, c, 0);
                // dQ = dO S^T + dPm K
                SmallGemm.Transpose(dkk, dvv, s, dvv, st, dkk);
                SmallGemm.Gemm(c, dkk, dvv, doj, dvv, st, dkk, dqj, dkk, false, T.One);
                SmallGemm.Gemm(c, dkk, c, dpm, c, kj, dkk, dqj, dkk, true, T.One, Triangle.Lower);
                // dK = dPm^T Q + U' dS'^T
                SmallGemm.Gemm(c, dkk, c, dpm, c, qj, dkk, dkj, dkk, false, T.One, Triangle.Upper, transA: true);
                SmallGemm.Transpose(dkk, dvv, ds, dvv, dst, dkk);
                SmallGemm.Gemm(c, dkk, dvv, up, dvv, dst, dkk, dkj, dkk, true, T.One);
                // dS = dS' + Q^T dO - W^T dU'
                SmallGemm.Gemm(dkk, dvv, c, qj, dkk, doj, dvv, ds, dvv, true, T.One, transA: true);
                SmallGemm.Gemm(dkk, dvv, c, w, dkk, dup, dvv, ds, dvv, true, -T.One, transA: true);
                // dVb = T^T dU';  dKb = T^T dW = -dVb S^T (dW = -dU' S^T);  dA = -tril(dKb W^T + dVb U^T, -1) = -tril(dVb U'^T, -1)
                SmallGemm.Gemm(c, dvv, c, t, c, dup, dvv, dvb, dvv, false, T.One, Triangle.Upper, transA: true);
                SmallGemm.Gemm(c, dkk, dvv, dvb, dvv, st, dkk, dkb, dkk, false, -T.One);
                SmallGemm.Gemm(c, c, dvv, dvb, dvv, ut, c, da, c, false, -T.One, lowerOutput: true);      // ut holds U'^T
                SmallGemm.MaskUpper(c, c, da, c, -1);
                // Through A = tril(Kb K^T, -1): dKb += dA K, dK += dA^T Kb.
                SmallGemm.Gemm(c, dkk, c, da, c, kj, dkk, dkb, dkk, true, T.One, Triangle.Lower);
                SmallGemm.Gemm(c, dkk, c, da, c, kb, dkk, dkj, dkk, true, T.One, Triangle.Upper, transA: true);
                // Through Kb = diag(beta) K and Vb = diag(beta) V.
                for (int i = 0; i < c; i++)
                {
                    T bi = bj[i];
                    T* dkbi = dkb + i * dkk, dvbi = dvb + i * dvv, ki = kj + i * dkk, vi = vj + i * dvv, dki = dkj + i * dkk, dvi = dvj + i * dvv;
                    T acc = T.Zero;
                    for (int e = 0; e < dkk; e++) { dki[e] += bi * dkbi[e]; acc += dkbi[e] * ki[e]; }
                    for (int e = 0; e < dvv; e++) { dvi[e] = bi * dvbi[e]; acc += dvbi[e] * vi[e]; }
                    dbj[i] = acc;
                }
            }
            new Span<T>(ds, (int)kv).CopyTo(new Span<T>((T*)pds0 + h * kv, (int)kv));
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(beta); GC.KeepAlive(sEnter); GC.KeepAlive(dO); GC.KeepAlive(dSFinal);
        GC.KeepAlive(dq); GC.KeepAlive(dk); GC.KeepAlive(dv); GC.KeepAlive(dbeta); GC.KeepAlive(ds0);
    }
}
