using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The compiled CPU path of <see cref="GatedDeltaRuleChunkFunction"/>: the gated delta rule's chunkwise forward and
/// backward in C# over the memory of contiguous float32 / float64 tensors <c>[BH, L, D]</c>, one (batch, head) pair per
/// task (parallel over B x NH), the products by <see cref="SmallGemm"/> on cache-resident blocks, the decay matrices
/// by vectorized exponentials. The math (forward and backward) is the one written on
/// <see cref="GatedDeltaRuleChunkFunction"/>, with two of its quantities formed by fewer products: <c>dX = T^T dW =
/// -dVb S^T</c> and <c>dA = -tril(T^T dT T^T, -1) = -tril(dVb U'^T, -1)</c> (as <c>U' = U - W S</c>); sequences (packed, chunk-aligned) start and end at chunk boundaries given
/// per chunk.
/// </summary>
internal static unsafe class GatedDeltaRuleChunkCpu
{
    /// <summary>Whether the compiled path runs for tensors of this dtype on this machine.</summary>
    internal static bool Supports(Tensor t) => DeltaRuleChunkCpu.Supports(t);

    private readonly record struct Dims(int BH, int N, int C, int Dk, int Dv)
    {
        public long L => (long)N * C;
    }

    /// <summary>
    /// Forward. Inputs <c>q, k [BH, L, Dk]</c>, <c>v [BH, L, Dv]</c>, <c>g, beta [BH, L]</c>, the sequences' initial states
    /// <c>init [S, BH, Dk, Dv]</c>; <paramref name="startsAt"/> / <paramref name="endsAt"/> give per chunk the sequence
    /// starting / ending there (or -1; chunk 0 always starts one). Writes <c>output [BH, L, Dv]</c>, <c>finals
    /// [S, BH, Dk, Dv]</c> and, when not null, every chunk's entering state <c>states [BH, N, Dk, Dv]</c>.
    /// </summary>
    internal static void Forward(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor init, long[] startsAt, long[] endsAt,
        int chunk, Tensor output, Tensor finals, Tensor? states)
    {
        if (q.dtype == ScalarType.Float32) Forward<float>(q, k, v, g, beta, init, startsAt, endsAt, chunk, output, finals, states);
        else Forward<double>(q, k, v, g, beta, init, startsAt, endsAt, chunk, output, finals, states);
    }

    /// <summary>
    /// Backward from the saved inputs and entering states and the gradients <paramref name="dO"/> <c>[BH, L, Dv]</c> and
    /// <paramref name="dFinals"/> <c>[S, BH, Dk, Dv]</c> (either null: zero). Writes dq, dk, dv, dg, dbeta and
    /// <c>dInit [S, BH, Dk, Dv]</c> (all preallocated, contiguous).
    /// </summary>
    internal static void Backward(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor states, Tensor? dO, Tensor? dFinals,
        long[] startsAt, long[] endsAt, int chunk, Tensor dq, Tensor dk, Tensor dv, Tensor dg, Tensor dbeta, Tensor dInit)
    {
        if (q.dtype == ScalarType.Float32)
            Backward<float>(q, k, v, g, beta, states, dO, dFinals, startsAt, endsAt, chunk, dq, dk, dv, dg, dbeta, dInit);
        else
            Backward<double>(q, k, v, g, beta, states, dO, dFinals, startsAt, endsAt, chunk, dq, dk, dv, dg, dbeta, dInit);
    }

    private static Dims Sizes(Tensor q, Tensor v, int chunk) =>
        new((int)q.shape[0], (int)(q.shape[1] / chunk), chunk, (int)q.shape[2], (int)v.shape[2]);

    private static nint Ptr<T>(Tensor? t) where T : unmanaged => (nint)CpuTensorMemory.Pointer<T>(t, "GatedDeltaRule.Chunked");

    /// <summary>
    /// The chunk's UT transform: decays, <c>Kb = diag(beta) K</c>, <c>Vb</c>, <c>K^T</c>, <c>M = Kb K^T</c> (lower part),
    /// <c>T = (I + tril(M Gamma, -1))^{-1}</c>, <c>X = diag(e) Kb</c>, <c>W = T X</c>, <c>U = T Vb</c>. Returns <c>e_C</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static T Prepare<T>(int c, int dk, int dv, T* kj, T* vj, T* gj, T* bj, T* gamma, T* e, T* f, T* kb, T* vb, T* kt,
        T* m, T* a, T* t, T* x, T* scratch, T* w, T* u) where T : unmanaged, INumber<T>
    {
        T ec = KernelVectors.SegmentDecays(c, gj, gamma, e, f);
        KernelVectors.ScaleRows(c, dk, bj, kj, kb);
        KernelVectors.ScaleRows(c, dv, bj, vj, vb);
        SmallGemm.Transpose(c, dk, kj, dk, kt, c);
        SmallGemm.Gemm(c, c, dk, kb, dk, kt, c, m, c, false, T.One, lowerOutput: true);
        SmallGemm.MaskUpper(c, c, m, c, 0);          // the backward multiplies all of M (scratch is not zeroed)
        for (int i = 0; i < c; i++)
            for (int j = 0; j < i; j++) a[i * c + j] = m[i * c + j] * gamma[i * c + j];   // only the strict lower part is read
        DeltaRuleChunkCpu.InvertUnitLower(c, a, t, scratch);
        KernelVectors.ScaleRows(c, dk, e, kb, x);
        SmallGemm.Gemm(c, dk, c, t, c, x, dk, w, dk, false, T.One, Triangle.Lower);
        SmallGemm.Gemm(c, dv, c, t, c, vb, dv, u, dv, false, T.One, Triangle.Lower);
        return ec;
    }

    private static void Forward<T>(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor init, long[] startsAt, long[] endsAt,
        int chunk, Tensor output, Tensor finals, Tensor? states) where T : unmanaged, INumber<T>
    {
        var d = Sizes(q, v, chunk);
        nint pq = Ptr<T>(q), pk = Ptr<T>(k), pv = Ptr<T>(v), pg = Ptr<T>(g), pb = Ptr<T>(beta), pi = Ptr<T>(init),
            po = Ptr<T>(output), pf = Ptr<T>(finals), ps = Ptr<T>(states);
        KernelParallel.For(d.BH, h =>
        {
            int c = d.C, dk = d.Dk, dv = d.Dv;
            long cc = (long)c * c, kv = (long)dk * dv, largest = Math.Max(cc, Math.Max((long)c * Math.Max(dk, dv), kv));
            using var scratch = new KernelScratch<T>(16, largest);
            T* gamma = scratch.Take(cc), e = scratch.Take(c), f = scratch.Take(c), kb = scratch.Take(c * dk), vb = scratch.Take(c * dv),
                kt = scratch.Take(dk * c), m = scratch.Take(cc), a = scratch.Take(cc), t = scratch.Take(cc), x = scratch.Take(c * dk),
                tmp = scratch.Take(cc), w = scratch.Take(c * dk), up = scratch.Take(c * dv), p = scratch.Take(cc), s = scratch.Take(kv),
                qg = scratch.Take(c * dk);
            T* qh = (T*)pq + h * d.L * dk, kh = (T*)pk + h * d.L * dk, vh = (T*)pv + h * d.L * dv, gh = (T*)pg + h * d.L,
                bh = (T*)pb + h * d.L, oh = (T*)po + h * d.L * dv;
            for (int j = 0; j < d.N; j++)
            {
                if (startsAt[j] >= 0)
                    new Span<T>((T*)pi + (startsAt[j] * d.BH + h) * kv, (int)kv).CopyTo(new Span<T>(s, (int)kv));
                long r0 = (long)j * c;
                T* qj = qh + r0 * dk, kj = kh + r0 * dk, vj = vh + r0 * dv, gj = gh + r0, bj = bh + r0, oj = oh + r0 * dv;
                T ec = Prepare(c, dk, dv, kj, vj, gj, bj, gamma, e, f, kb, vb, kt, m, a, t, x, tmp, w, up);
                if (ps != 0) new Span<T>(s, (int)kv).CopyTo(new Span<T>((T*)ps + (h * (long)d.N + j) * kv, (int)kv));
                SmallGemm.Gemm(c, dv, dk, w, dk, s, dv, up, dv, true, -T.One);                      // U' = U - W S
                KernelVectors.ScaleRows(c, dk, e, qj, qg);
                SmallGemm.Gemm(c, dv, dk, qg, dk, s, dv, oj, dv, false, T.One);                     // O = diag(e) Q S
                SmallGemm.Gemm(c, c, dk, qj, dk, kt, c, p, c, false, T.One, lowerOutput: true);     // P = tril(Q K^T) Gamma
                SmallGemm.MaskUpper(c, c, p, c, 0);
                KernelVectors.MulInPlace(c * c, p, gamma);
                SmallGemm.Gemm(c, dv, c, p, c, up, dv, oj, dv, true, T.One, Triangle.Lower);       //   + P U'
                // S' = e_C S + (diag(f) K)^T U'
                for (long i = 0; i < kv; i++) s[i] *= ec;
                KernelVectors.ScaleRows(c, dk, f, kj, x);
                SmallGemm.Gemm(dk, dv, c, x, dk, up, dv, s, dv, true, T.One, transA: true);
                if (endsAt[j] >= 0)
                    new Span<T>(s, (int)kv).CopyTo(new Span<T>((T*)pf + (endsAt[j] * d.BH + h) * kv, (int)kv));
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(g); GC.KeepAlive(beta); GC.KeepAlive(init);
        GC.KeepAlive(output); GC.KeepAlive(finals); GC.KeepAlive(states);
    }

    private static void Backward<T>(Tensor q, Tensor k, Tensor v, Tensor g, Tensor beta, Tensor states, Tensor? dO, Tensor? dFinals,
        long[] startsAt, long[] endsAt, int chunk, Tensor dq, Tensor dk, Tensor dv, Tensor dg, Tensor dbeta, Tensor dInit)
        where T : unmanaged, INumber<T>
    {
        var d = Sizes(q, v, chunk);
        nint pq = Ptr<T>(q), pk = Ptr<T>(k), pv = Ptr<T>(v), pg = Ptr<T>(g), pb = Ptr<T>(beta), pst = Ptr<T>(states),
            pdo = Ptr<T>(dO), pdf = Ptr<T>(dFinals), pdq = Ptr<T>(dq), pdk = Ptr<T>(dk), pdv = Ptr<T>(dv), pdg = Ptr<T>(dg),
            pdb = Ptr<T>(dbeta), pdi = Ptr<T>(dInit);
        KernelParallel.For(d.BH, h =>
        {
            int c = d.C, dkk = d.Dk, dvv = d.Dv;
            long cc = (long)c * c, kv = (long)dkk * dvv, largest = Math.Max(cc, Math.Max((long)c * Math.Max(dkk, dvv), kv));
            using var scratch = new KernelScratch<T>(36, largest);
            T* gamma = scratch.Take(cc), e = scratch.Take(c), f = scratch.Take(c), kb = scratch.Take(c * dkk), vb = scratch.Take(c * dvv),
                kt = scratch.Take(dkk * c), m = scratch.Take(cc), a = scratch.Take(cc), t = scratch.Take(cc), x = scratch.Take(c * dkk),
                tmp = scratch.Take(cc), w = scratch.Take(c * dkk), u = scratch.Take(c * dvv), up = scratch.Take(c * dvv),
                qk = scratch.Take(cc), p = scratch.Take(cc), kd = scratch.Take(c * dkk), qg = scratch.Take(c * dkk),
                dup = scratch.Take(c * dvv), ut = scratch.Take(c * dvv), st = scratch.Take(kv), dst = scratch.Take(kv),
                dkd = scratch.Take(c * dkk), dqg = scratch.Take(c * dkk), dpg = scratch.Take(cc), dgam = scratch.Take(cc),
                dx = scratch.Take(c * dkk), dvb = scratch.Take(c * dvv),
                da = scratch.Take(cc), dkb = scratch.Take(c * dkk), ds = scratch.Take(kv), zero = scratch.Take(c * dvv),
                de = scratch.Take(c), dG = scratch.Take(c);
            new Span<T>(zero, c * dvv).Clear();
            new Span<T>(ds, (int)kv).Clear();
            T* qh = (T*)pq + h * d.L * dkk, kh = (T*)pk + h * d.L * dkk, vh = (T*)pv + h * d.L * dvv, gh = (T*)pg + h * d.L,
                bh = (T*)pb + h * d.L;
            for (int j = d.N - 1; j >= 0; j--)
            {
                long r0 = (long)j * c;
                T* qj = qh + r0 * dkk, kj = kh + r0 * dkk, vj = vh + r0 * dvv, gj = gh + r0, bj = bh + r0;
                T* doj = pdo != 0 ? (T*)pdo + h * d.L * dvv + r0 * dvv : zero;
                T* dqj = (T*)pdq + h * d.L * dkk + r0 * dkk, dkj = (T*)pdk + h * d.L * dkk + r0 * dkk,
                    dvj = (T*)pdv + h * d.L * dvv + r0 * dvv, dgj = (T*)pdg + h * d.L + r0, dbj = (T*)pdb + h * d.L + r0;
                T* s = (T*)pst + (h * (long)d.N + j) * kv;
                if (endsAt[j] >= 0 && pdf != 0)
                {
                    T* fin = (T*)pdf + (endsAt[j] * d.BH + h) * kv;
                    for (long i = 0; i < kv; i++) ds[i] += fin[i];
                }

                // Recompute the chunk's forward.
                T ec = Prepare(c, dkk, dvv, kj, vj, gj, bj, gamma, e, f, kb, vb, kt, m, a, t, x, tmp, w, u);
                new Span<T>(u, c * dvv).CopyTo(new Span<T>(up, c * dvv));
                SmallGemm.Gemm(c, dvv, dkk, w, dkk, s, dvv, up, dvv, true, -T.One);                      // U'
                SmallGemm.Gemm(c, c, dkk, qj, dkk, kt, c, qk, c, false, T.One, lowerOutput: true);      // tril(Q K^T)
                SmallGemm.MaskUpper(c, c, qk, c, 0);
                for (long i = 0; i < cc; i++) p[i] = qk[i] * gamma[i];                                  // P
                KernelVectors.ScaleRows(c, dkk, f, kj, kd);                                                           // Kd = diag(f) K
                KernelVectors.ScaleRows(c, dkk, e, qj, qg);                                                           // Qg = diag(e) Q

                // dU' = P^T dO + Kd dS'    (ds holds dS', the gradient of the state after the chunk)
                SmallGemm.Gemm(c, dvv, c, p, c, doj, dvv, dup, dvv, false, T.One, Triangle.Upper, transA: true);
                SmallGemm.Gemm(c, dvv, dkk, kd, dkk, ds, dvv, dup, dvv, true, T.One);
                // Through S' = e_C S + Kd^T U': dKd = U' dS'^T, df_i = dKd_i . K_i, de_C = sum(dS' S).
                SmallGemm.Transpose(dkk, dvv, ds, dvv, dst, dkk);
                SmallGemm.Gemm(c, dkk, dvv, up, dvv, dst, dkk, dkd, dkk, false, T.One);
                T dec = KernelVectors.Dot((int)kv, ds, s);
                // Through O = Qg S + P U': dQg = dO S^T, dP = dO U'^T (lower part).
                SmallGemm.Transpose(dkk, dvv, s, dvv, st, dkk);
                SmallGemm.Gemm(c, dkk, dvv, doj, dvv, st, dkk, dqg, dkk, false, T.One);
                SmallGemm.Transpose(c, dvv, up, dvv, ut, c);
                SmallGemm.Gemm(c, c, dvv, doj, dvv, ut, c, dpg, c, false, T.One, lowerOutput: true);
                SmallGemm.MaskUpper(c, c, dpg, c, 0);
                for (long i = 0; i < cc; i++) { dgam[i] = dpg[i] * qk[i]; dpg[i] *= gamma[i]; }       // dGamma, dP Gamma
                // dS = e_C dS' + Qg^T dO - W^T dU'   (in place, after every use of dS')
                for (long i = 0; i < kv; i++) ds[i] *= ec;
                SmallGemm.Gemm(dkk, dvv, c, qg, dkk, doj, dvv, ds, dvv, true, T.One, transA: true);
                SmallGemm.Gemm(dkk, dvv, c, w, dkk, dup, dvv, ds, dvv, true, -T.One, transA: true);
                if (startsAt[j] >= 0)
                {
                    new Span<T>(ds, (int)kv).CopyTo(new Span<T>((T*)pdi + (startsAt[j] * d.BH + h) * kv, (int)kv));
                    new Span<T>(ds, (int)kv).Clear();
                }

                // dQ = diag(e) dQg + (dP Gamma) K;  dK = diag(f) dKd + (dP Gamma)^T Q
                for (int i = 0; i < c; i++) de[i] = KernelVectors.Dot(dkk, dqg + i * dkk, qj + i * dkk);
                KernelVectors.ScaleRows(c, dkk, e, dqg, dqj);
                SmallGemm.Gemm(c, dkk, c, dpg, c, kj, dkk, dqj, dkk, true, T.One, Triangle.Lower);
                KernelVectors.ScaleRows(c, dkk, f, dkd, dkj);
                SmallGemm.Gemm(c, dkk, c, dpg, c, qj, dkk, dkj, dkk, true, T.One, Triangle.Upper, transA: true);

                // The UT transform: dVb = T^T dU', dX = T^T dW = -dVb S^T (dW = -dU' S^T),
                // dA = -tril(dX W^T + dVb U^T, -1) = -tril(dVb U'^T, -1) (U' = U - W S).
                SmallGemm.Gemm(c, dvv, c, t, c, dup, dvv, dvb, dvv, false, T.One, Triangle.Upper, transA: true);
                SmallGemm.Gemm(c, dkk, dvv, dvb, dvv, st, dkk, dx, dkk, false, -T.One);
                SmallGemm.Gemm(c, c, dvv, dvb, dvv, ut, c, da, c, false, -T.One, lowerOutput: true);      // ut holds U'^T
                SmallGemm.MaskUpper(c, c, da, c, -1);
                // dGamma += dA M;  dM = dA Gamma;  dKb = dM K;  dK += dM^T Kb
                for (long i = 0; i < cc; i++) { dgam[i] += da[i] * m[i]; da[i] *= gamma[i]; }
                SmallGemm.Gemm(c, dkk, c, da, c, kj, dkk, dkb, dkk, false, T.One, Triangle.Lower);
                SmallGemm.Gemm(c, dkk, c, da, c, kb, dkk, dkj, dkk, true, T.One, Triangle.Upper, transA: true);
                // Through X = diag(beta e) K, Kb = diag(beta) K, Vb = diag(beta) V.
                for (int i = 0; i < c; i++)
                {
                    T bi = bj[i], ei = e[i];
                    T* dxi = dx + i * dkk, dkbi = dkb + i * dkk, ki = kj + i * dkk, dki = dkj + i * dkk;
                    T xk = KernelVectors.Dot(dkk, dxi, ki);
                    for (int z = 0; z < dkk; z++) dki[z] += bi * (ei * dxi[z] + dkbi[z]);
                    T dvbv = KernelVectors.Dot(dvv, dvb + i * dvv, vj + i * dvv);
                    dbj[i] = ei * xk + KernelVectors.Dot(dkk, dkbi, ki) + dvbv;
                    de[i] += bi * xk;
                    T* dvbi = dvb + i * dvv, dvi = dvj + i * dvv;
                    for (int z = 0; z < dvv; z++) dvi[z] = bi * dvbi[z];
                }
                // The decays: dD = dGamma Gamma (+ df f on the last row), dG_i = rowsum_i - colsum_i + e_i de_i (+ e_C de_C),
                // dg_r = sum_{i >= r} dG_i.
                for (long i = 0; i < cc; i++) dgam[i] *= gamma[i];
                T* last = dgam + (c - 1) * c;
                for (int i = 0; i < c; i++) last[i] += KernelVectors.Dot(dkk, dkd + i * dkk, kj + i * dkk) * f[i];
                for (int i = 0; i < c; i++) dG[i] = e[i] * de[i];
                for (int i = 0; i < c; i++)
                {
                    T* row = dgam + i * c;
                    T rs = T.Zero;
                    for (int z = 0; z <= i; z++) { rs += row[z]; dG[z] -= row[z]; }
                    dG[i] += rs;
                }
                dG[c - 1] += ec * dec;
                T run = T.Zero;
                for (int i = c - 1; i >= 0; i--) { run += dG[i]; dgj[i] = run; }
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(g); GC.KeepAlive(beta); GC.KeepAlive(states);
        GC.KeepAlive(dO); GC.KeepAlive(dFinals); GC.KeepAlive(dq); GC.KeepAlive(dk); GC.KeepAlive(dv); GC.KeepAlive(dg);
        GC.KeepAlive(dbeta); GC.KeepAlive(dInit);
    }
}
