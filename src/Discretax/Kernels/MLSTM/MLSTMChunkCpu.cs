using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The compiled CPU path of <see cref="MLSTMChunkFunction"/>: the chunkwise mLSTM forward and backward in C# over the
/// memory of contiguous float32 / float64 tensors, one (batch, head) pair per task (parallel over B x NH up to libtorch's
/// thread count), every chunk's products by <see cref="SmallGemm"/> on cache-resident blocks and the gate matrices by
/// vectorized exponentials. The math, forward and backward (denominator branch, eps, the stabilizers' routing through
/// their maxima), is the one written on <see cref="MLSTMChunkFunction"/>; the state is kept as <c>C [Dk, Dv]</c> and
/// <c>n [Dk]</c> apart (no extra value column) and stored in the function's <c>[Dk, Dv + 1]</c> layout.
/// </summary>
internal static unsafe class MLSTMChunkCpu
{
    /// <summary>Whether the compiled path runs for tensors of this dtype on this machine.</summary>
    internal static bool Supports(Tensor t) => DeltaRuleChunkCpu.Supports(t);

    private readonly record struct Dims(int BH, int N, int C, int Dk, int Dv, int Slots)
    {
        public long L => (long)N * C;
        public long StateSize => (long)Dk * (Dv + 1);
    }

    private static nint Ptr<T>(Tensor? t) where T : unmanaged => (nint)CpuTensorMemory.Pointer<T>(t, "MLSTMKernel.Chunked");

    /// <summary>
    /// Forward over <c>q, k [BH.., L, Dk]</c> (q scaled), <c>v [.., L, Dv]</c>, input gates and log forget gates
    /// <c>[.., L]</c>, all contiguous. <paramref name="states"/> <c>[.., slots, Dk, Dv + 1]</c> and <paramref name="ms"/>
    /// <c>[.., slots]</c> hold the entering state in slot 0; with <paramref name="keep"/> (slots = N + 1) the state entering
    /// chunk j + 1 goes to slot j + 1, else (slots = 2) only the final state, to slot 1. Writes h <c>[.., L, Dv]</c> and the
    /// denominators <c>[.., L]</c>.
    /// </summary>
    internal static void Forward(Tensor q, Tensor k, Tensor v, Tensor ig, Tensor lf, int chunk, double eps, bool keep,
        Tensor states, Tensor ms, Tensor h, Tensor den)
    {
        if (q.dtype == ScalarType.Float32) Forward<float>(q, k, v, ig, lf, chunk, (float)eps, keep, states, ms, h, den);
        else Forward<double>(q, k, v, ig, lf, chunk, eps, keep, states, ms, h, den);
    }

    /// <summary>
    /// Backward from the saved inputs, output, denominators and states (slots = N + 1) and the gradients of the output
    /// <paramref name="dh"/> (null: zero) and of the final state <c>dC [.., Dk, Dv]</c>, <c>dn [.., Dk]</c>, <c>dm [..]</c>
    /// (each null: zero). Writes dq, dk, dv, di, dlf and the initial state's gradients dc0, dn0, dm0 (preallocated).
    /// </summary>
    internal static void Backward(Tensor q, Tensor k, Tensor v, Tensor ig, Tensor lf, Tensor h, Tensor den, Tensor states, Tensor ms,
        int chunk, double eps, Tensor? dh, Tensor? dcF, Tensor? dnF, Tensor? dmF,
        Tensor dq, Tensor dk, Tensor dv, Tensor di, Tensor dlf, Tensor dc0, Tensor dn0, Tensor dm0)
    {
        if (q.dtype == ScalarType.Float32)
            Backward<float>(q, k, v, ig, lf, h, den, states, ms, chunk, (float)eps, dh, dcF, dnF, dmF, dq, dk, dv, di, dlf, dc0, dn0, dm0);
        else
            Backward<double>(q, k, v, ig, lf, h, den, states, ms, chunk, eps, dh, dcF, dnF, dmF, dq, dk, dv, di, dlf, dc0, dn0, dm0);
    }

    /// <summary>
    /// The chunk's gate matrices from its input gates <paramref name="ij"/> and log forget gates <paramref name="fj"/> and
    /// the entering stabilizer <paramref name="m"/>: <c>b</c> (cumulative log forget), the row maxima of
    /// <c>D_tj = i_j + f'_{j+1} + ... + f'_t</c> (j &lt;= t; summed down the columns, no differences) and their argmax,
    /// <c>InterLog_t = b_t + m</c>, <c>m_t = max(InterLog_t, RowMax_t)</c>, <c>E = exp(D - m_t)</c> in place of D (0 above
    /// the diagonal) and <c>e_t = exp(InterLog_t - m_t)</c>. Returns <c>m' = m_{c-1}</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static T Gates<T>(int c, T* ij, T* fj, T m, T* d, T* b, T* rowMax, int* argMax, T* interLog, T* mt, T* e)
        where T : unmanaged, INumber<T>
    {
        T negInf = T.CreateTruncating(double.NegativeInfinity);
        T cum = T.Zero;
        for (int t = 0; t < c; t++)
        {
            T* row = d + t * c;
            if (t > 0)
            {
                T* prev = d + (t - 1) * c;
                int j = 0;
                if (Vector.IsHardwareAccelerated)
                {
                    var vf = new Vector<T>(fj[t]);
                    for (; j + Vector<T>.Count <= t; j += Vector<T>.Count) (Vector.Load(prev + j) + vf).Store(row + j);
                }
                for (; j < t; j++) row[j] = prev[j] + fj[t];
            }
            row[t] = ij[t];
            if (t + 1 < c) new Span<T>(row + t + 1, c - t - 1).Fill(negInf);
            cum += fj[t];
            b[t] = cum;
            T best;
            if (argMax is not null)
            {
                // The first maximal index (as torch.max): strict comparison.
                best = row[0];
                int at = 0;
                for (int j = 1; j <= t; j++) if (row[j] > best) { best = row[j]; at = j; }
                argMax[t] = at;
            }
            else best = KernelVectors.Max(t + 1, row);
            rowMax[t] = best;
            interLog[t] = cum + m;
            mt[t] = T.Max(interLog[t], best);
            if (T.IsNaN(interLog[t]) || T.IsNaN(best)) mt[t] = T.CreateTruncating(double.NaN);
        }
        for (int t = 0; t < c; t++)
        {
            KernelVectors.ExpShifted(c, d + t * c, mt[t]);
            e[t] = KernelVectors.Exp(interLog[t] - mt[t]);
        }
        return mt[c - 1];
    }

    /// <summary><c>S = tril(Q K^T) E</c> <c>[C, C]</c> (zeros above the diagonal), with <c>K^T</c> formed in <paramref name="kt"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<T>(int c, int dk, T* qj, T* kj, T* e, T* kt, T* s) where T : unmanaged, INumber<T>
    {
        SmallGemm.Transpose(c, dk, kj, dk, kt, c);
        SmallGemm.Gemm(c, c, dk, qj, dk, kt, c, s, c, false, T.One, lowerOutput: true);
        SmallGemm.MaskUpper(c, c, s, c, 0);
        KernelVectors.MulInPlace(c * c, s, e);
    }

    private static void Forward<T>(Tensor q, Tensor k, Tensor v, Tensor ig, Tensor lf, int chunk, T eps, bool keep,
        Tensor states, Tensor ms, Tensor h, Tensor den) where T : unmanaged, INumber<T>
    {
        var d = new Dims((int)(q.numel() / (q.shape[^2] * q.shape[^1])), (int)(q.shape[^2] / chunk), chunk, (int)q.shape[^1],
            (int)v.shape[^1], (int)states.shape[^3]);
        nint pq = Ptr<T>(q), pk = Ptr<T>(k), pv = Ptr<T>(v), pi = Ptr<T>(ig), pf = Ptr<T>(lf), pst = Ptr<T>(states),
            pms = Ptr<T>(ms), ph = Ptr<T>(h), pden = Ptr<T>(den);
        KernelParallel.For(d.BH, hd =>
        {
            int c = d.C, dk = d.Dk, dv = d.Dv;
            long cc = (long)c * c, kv = (long)dk * dv, ss = d.StateSize;
            long largest = Math.Max(cc, Math.Max((long)c * Math.Max(dk, dv), kv));
            using var scratch = new KernelScratch<T>(14, largest);
            T* dm = scratch.Take(cc), b = scratch.Take(c), rowMax = scratch.Take(c), interLog = scratch.Take(c), mt = scratch.Take(c),
                e = scratch.Take(c), kt = scratch.Take(c * dk), s = scratch.Take(cc), cs = scratch.Take(kv), ns = scratch.Take(dk),
                kl = scratch.Take(c * dk), qn = scratch.Take(c), ones = scratch.Take(c), tmp = scratch.Take(dk);
            for (int i = 0; i < c; i++) ones[i] = T.One;
            T* qh = (T*)pq + hd * d.L * dk, kh = (T*)pk + hd * d.L * dk, vh = (T*)pv + hd * d.L * dv, ih = (T*)pi + hd * d.L,
                fh = (T*)pf + hd * d.L, hh = (T*)ph + hd * d.L * dv, denh = (T*)pden + hd * d.L;
            T* sth = (T*)pst + hd * d.Slots * ss, msh = (T*)pms + hd * d.Slots;
            LoadState(dk, dv, sth, cs, ns);
            T m = msh[0];
            for (int j = 0; j < d.N; j++)
            {
                long r0 = (long)j * c;
                T* qj = qh + r0 * dk, kj = kh + r0 * dk, vj = vh + r0 * dv, hj = hh + r0 * dv, denj = denh + r0;
                T mNew = Gates<T>(c, ih + r0, fh + r0, m, dm, b, rowMax, null, interLog, mt, e);
                // S = tril(Q K^T) E
                Scores(c, dk, qj, kj, dm, kt, s);
                // num = diag(e) Q C + S V;  den = e (Q n) + S 1
                SmallGemm.Gemm(c, dv, dk, qj, dk, cs, dv, hj, dv, false, T.One);
                for (int t = 0; t < c; t++) qn[t] = KernelVectors.Dot(dk, qj + t * dk, ns);
                for (int t = 0; t < c; t++) KernelVectors.Scale(dv, e[t], hj + t * dv, hj + t * dv);
                SmallGemm.Gemm(c, dv, c, s, c, vj, dv, hj, dv, true, T.One, Triangle.Lower);
                for (int t = 0; t < c; t++)
                {
                    T dn = e[t] * qn[t] + KernelVectors.Dot(t + 1, s + t * c, ones);
                    denj[t] = dn;
                    T z = T.Max(T.Abs(dn), KernelVectors.Exp(-mt[t])) + eps;
                    KernelVectors.Scale(dv, T.One / z, hj + t * dv, hj + t * dv);
                }
                // Hand-off: C' = e_last C + K^T diag(E_last) V,  n' = e_last n + K^T E_last.
                T* eLast = dm + (c - 1) * c;
                for (int t = 0; t < c; t++)
                {
                    T* src = kj + t * dk, dst = kl + t * dk;
                    for (int x = 0; x < dk; x++) dst[x] = eLast[t] * src[x];
                }
                T decay = e[c - 1];
                KernelVectors.Scale((int)kv, decay, cs, cs);
                SmallGemm.Gemm(dk, dv, c, kl, dk, vj, dv, cs, dv, true, T.One, transA: true);
                KernelVectors.Scale(dk, decay, ns, ns);
                for (int t = 0; t < c; t++) KernelVectors.Axpy(dk, T.One, kl + t * dk, ns);
                m = mNew;
                if (keep || j == d.N - 1)
                {
                    int slot = keep ? j + 1 : 1;
                    StoreState(dk, dv, cs, ns, sth + slot * ss);
                    msh[slot] = m;
                }
            }
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(ig); GC.KeepAlive(lf); GC.KeepAlive(states);
        GC.KeepAlive(ms); GC.KeepAlive(h); GC.KeepAlive(den);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LoadState<T>(int dk, int dv, T* src, T* c, T* n) where T : unmanaged
    {
        for (int i = 0; i < dk; i++)
        {
            new Span<T>(src + i * (dv + 1), dv).CopyTo(new Span<T>(c + i * dv, dv));
            n[i] = src[i * (dv + 1) + dv];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StoreState<T>(int dk, int dv, T* c, T* n, T* dst) where T : unmanaged
    {
        for (int i = 0; i < dk; i++)
        {
            new Span<T>(c + i * dv, dv).CopyTo(new Span<T>(dst + i * (dv + 1), dv));
            dst[i * (dv + 1) + dv] = n[i];
        }
    }

    private static void Backward<T>(Tensor q, Tensor k, Tensor v, Tensor ig, Tensor lf, Tensor h, Tensor den, Tensor states, Tensor ms,
        int chunk, T eps, Tensor? dh, Tensor? dcF, Tensor? dnF, Tensor? dmF,
        Tensor dq, Tensor dk, Tensor dv, Tensor di, Tensor dlf, Tensor dc0, Tensor dn0, Tensor dm0) where T : unmanaged, INumber<T>
    {
        var d = new Dims((int)(q.numel() / (q.shape[^2] * q.shape[^1])), (int)(q.shape[^2] / chunk), chunk, (int)q.shape[^1],
            (int)v.shape[^1], (int)states.shape[^3]);
        nint pq = Ptr<T>(q), pk = Ptr<T>(k), pv = Ptr<T>(v), pi = Ptr<T>(ig), pf = Ptr<T>(lf), ph = Ptr<T>(h), pden = Ptr<T>(den),
            pst = Ptr<T>(states), pms = Ptr<T>(ms), pdh = Ptr<T>(dh), pdcF = Ptr<T>(dcF), pdnF = Ptr<T>(dnF), pdmF = Ptr<T>(dmF),
            pdq = Ptr<T>(dq), pdk = Ptr<T>(dk), pdv = Ptr<T>(dv), pdi = Ptr<T>(di), pdlf = Ptr<T>(dlf), pdc0 = Ptr<T>(dc0),
            pdn0 = Ptr<T>(dn0), pdm0 = Ptr<T>(dm0);
        KernelParallel.For(d.BH, hd =>
        {
            int c = d.C, dkk = d.Dk, dvv = d.Dv;
            long cc = (long)c * c, kv = (long)dkk * dvv, ss = d.StateSize;
            long largest = Math.Max(cc, Math.Max((long)c * Math.Max(dkk, dvv), kv));
            using var scratch = new KernelScratch<T>(40, largest);
            T* em = scratch.Take(cc), b = scratch.Take(c), rowMax = scratch.Take(c), interLog = scratch.Take(c), mt = scratch.Take(c),
                e = scratch.Take(c), kt = scratch.Take(c * dkk), s = scratch.Take(cc), cin = scratch.Take(kv), nin = scratch.Take(dkk),
                cex = scratch.Take(kv), nex = scratch.Take(dkk), dC = scratch.Take(kv), dn = scratch.Take(dkk), dCn = scratch.Take(kv),
                dnn = scratch.Take(dkk), dnum = scratch.Take(c * dvv), dden = scratch.Take(c), dmt = scratch.Take(c),
                idnum = scratch.Take(c * dvv), idden = scratch.Take(c), vt = scratch.Take(c * dvv), gm = scratch.Take(cc),
                ct = scratch.Take(kv), dCt = scratch.Take(kv), tmp = scratch.Take(c * dkk), db = scratch.Take(c), win = scratch.Take(c),
                zero = scratch.Take(c * dvv), tmpk = scratch.Take(dkk);
            int* argMax = (int*)scratch.Take(c);             // c ints fit in c elements of T
            new Span<T>(zero, c * dvv).Clear();
            T* qh = (T*)pq + hd * d.L * dkk, kh = (T*)pk + hd * d.L * dkk, vh = (T*)pv + hd * d.L * dvv, ih = (T*)pi + hd * d.L,
                fh = (T*)pf + hd * d.L, hh = (T*)ph + hd * d.L * dvv, denh = (T*)pden + hd * d.L;
            T* sth = (T*)pst + hd * d.Slots * ss, msh = (T*)pms + hd * d.Slots;
            T* dqh = (T*)pdq + hd * d.L * dkk, dkh = (T*)pdk + hd * d.L * dkk, dvh = (T*)pdv + hd * d.L * dvv, dih = (T*)pdi + hd * d.L,
                dlfh = (T*)pdlf + hd * d.L;

            // The final state's gradient and R_final = dm_final - <dĈ_final, Ĉ_final>.
            if (pdcF != 0) new Span<T>((T*)pdcF + hd * kv, (int)kv).CopyTo(new Span<T>(dC, (int)kv)); else new Span<T>(dC, (int)kv).Clear();
            if (pdnF != 0) new Span<T>((T*)pdnF + hd * dkk, dkk).CopyTo(new Span<T>(dn, dkk)); else new Span<T>(dn, dkk).Clear();
            T r = pdmF != 0 ? ((T*)pdmF)[hd] : T.Zero;
            LoadState(dkk, dvv, sth + d.N * ss, cex, nex);
            r -= KernelVectors.Dot((int)kv, dC, cex) + KernelVectors.Dot(dkk, dn, nex);
            T xEnter = T.Zero;
            for (int j = d.N - 1; j >= 0; j--)
            {
                long r0 = (long)j * c;
                T* qj = qh + r0 * dkk, kj = kh + r0 * dkk, vj = vh + r0 * dvv, hj = hh + r0 * dvv, denj = denh + r0;
                T* dhj = pdh != 0 ? (T*)pdh + hd * d.L * dvv + r0 * dvv : zero;
                T* dqj = dqh + r0 * dkk, dkj = dkh + r0 * dkk, dvj = dvh + r0 * dvv, dij = dih + r0, dlfj = dlfh + r0;
                LoadState(dkk, dvv, sth + j * ss, cin, nin);
                LoadState(dkk, dvv, sth + (j + 1) * ss, cex, nex);
                T m = msh[j];
                Gates<T>(c, ih + r0, fh + r0, m, em, b, rowMax, argMax, interLog, mt, e);
                Scores(c, dkk, qj, kj, em, kt, s);

                // Per step: dnum = dh / z, dden = [|den| > exp(-m_t)] sign(den) dz with dz = -(dh . h) / z, dm_t = -eps (dh . h) / z.
                for (int t = 0; t < c; t++)
                {
                    T dnv = denj[t], expNeg = KernelVectors.Exp(-mt[t]);
                    T z = T.Max(T.Abs(dnv), expNeg) + eps;
                    T hdot = KernelVectors.Dot(dvv, dhj + t * dvv, hj + t * dvv);
                    T dz = -hdot / z;
                    dden[t] = T.Abs(dnv) > expNeg ? dz * T.CreateTruncating(T.Sign(dnv)) : T.Zero;
                    T inv = T.One / z;
                    T* dnt = dnum + t * dvv, dht = dhj + t * dvv, idt = idnum + t * dvv;
                    for (int x = 0; x < dvv; x++) { dnt[x] = dht[x] * inv; idt[x] = dnt[x] * e[t]; }
                    idden[t] = dden[t] * e[t];
                    dmt[t] = -eps * hdot / z;
                }
                T xExit = KernelVectors.Dot((int)kv, dC, cex) + KernelVectors.Dot(dkk, dn, nex);

                // dĈ_j = e_last dĈ' + Q^T idn
                T decay = e[c - 1];
                for (long x = 0; x < kv; x++) dCn[x] = decay * dC[x];
                SmallGemm.Gemm(dkk, dvv, c, qj, dkk, idnum, dvv, dCn, dvv, true, T.One, transA: true);
                for (int x = 0; x < dkk; x++) dnn[x] = decay * dn[x];
                for (int t = 0; t < c; t++) KernelVectors.Axpy(dkk, idden[t], qj + t * dkk, dnn);

                // G = (dnum V^T + dden) E  (lower)
                SmallGemm.Transpose(c, dvv, vj, dvv, vt, c);
                SmallGemm.Gemm(c, c, dvv, dnum, dvv, vt, c, gm, c, false, T.One, lowerOutput: true);
                for (int t = 0; t < c; t++)
                {
                    T* row = gm + t * c, er = em + t * c;
                    for (int j2 = 0; j2 <= t; j2++) row[j2] = (row[j2] + dden[t]) * er[j2];
                    for (int j2 = t + 1; j2 < c; j2++) row[j2] = T.Zero;
                }
                // dQ = G K + idnum C^T + idden n^T
                SmallGemm.Transpose(dkk, dvv, cin, dvv, ct, dkk);
                SmallGemm.Gemm(c, dkk, dvv, idnum, dvv, ct, dkk, dqj, dkk, false, T.One);
                SmallGemm.Gemm(c, dkk, c, gm, c, kj, dkk, dqj, dkk, true, T.One, Triangle.Lower);
                for (int t = 0; t < c; t++) KernelVectors.Axpy(dkk, idden[t], nin, dqj + t * dkk);
                // dK = G^T Q + diag(E_last) (V dC'^T + 1 dn'^T)
                T* eLast = em + (c - 1) * c;
                SmallGemm.Transpose(dkk, dvv, dC, dvv, dCt, dkk);
                SmallGemm.Gemm(c, dkk, dvv, vj, dvv, dCt, dkk, tmp, dkk, false, T.One);
                for (int t = 0; t < c; t++)
                {
                    T* row = tmp + t * dkk, dkr = dkj + t * dkk;
                    T el = eLast[t];
                    for (int x = 0; x < dkk; x++) dkr[x] = el * (row[x] + dn[x]);
                }
                SmallGemm.Gemm(c, dkk, c, gm, c, qj, dkk, dkj, dkk, true, T.One, Triangle.Upper, transA: true);
                // dV = S^T dnum + diag(E_last) K dC'
                SmallGemm.Gemm(c, dvv, dkk, kj, dkk, dC, dvv, dvj, dvv, false, T.One);
                for (int t = 0; t < c; t++) KernelVectors.Scale(dvv, eLast[t], dvj + t * dvv, dvj + t * dvv);
                SmallGemm.Gemm(c, dvv, c, s, c, dnum, dvv, dvj, dvv, true, T.One, Triangle.Upper, transA: true);

                // Stabilizers: R_j = sum_t win_t dm_t + win_last R_{j+1}; the last step's dm_t takes R_{j+1}.
                T w = T.Zero;
                for (int t = 0; t < c; t++)
                {
                    win[t] = interLog[t] >= rowMax[t] ? T.One : T.Zero;
                    w += win[t] * dmt[t];
                }
                T rj = w + win[c - 1] * r;
                dmt[c - 1] += r;
                // Gates: db_t = q_t . dq_t - k_t . dk_t + dm_t (+ X' at the last step), di_j = k_j . dk_j, the routed maxima.
                for (int t = 0; t < c; t++)
                {
                    T kdk = KernelVectors.Dot(dkk, kj + t * dkk, dkj + t * dkk);
                    db[t] = KernelVectors.Dot(dkk, qj + t * dkk, dqj + t * dkk) - kdk + dmt[t];
                    dij[t] = kdk;
                }
                db[c - 1] += xExit;
                for (int t = 0; t < c; t++)
                {
                    T routed = (T.One - win[t]) * dmt[t];
                    db[argMax[t]] -= routed;
                    dij[argMax[t]] += routed;
                }
                T run = T.Zero;
                for (int t = c - 1; t >= 0; t--) { run += db[t]; dlfj[t] = run; }

                xEnter = KernelVectors.Dot((int)kv, dCn, cin) + KernelVectors.Dot(dkk, dnn, nin);
                new Span<T>(dCn, (int)kv).CopyTo(new Span<T>(dC, (int)kv));
                new Span<T>(dnn, dkk).CopyTo(new Span<T>(dn, dkk));
                r = rj;
            }
            new Span<T>(dC, (int)kv).CopyTo(new Span<T>((T*)pdc0 + hd * kv, (int)kv));
            new Span<T>(dn, dkk).CopyTo(new Span<T>((T*)pdn0 + hd * dkk, dkk));
            ((T*)pdm0)[hd] = xEnter + r;
        });
        GC.KeepAlive(q); GC.KeepAlive(k); GC.KeepAlive(v); GC.KeepAlive(ig); GC.KeepAlive(lf); GC.KeepAlive(h); GC.KeepAlive(den);
        GC.KeepAlive(states); GC.KeepAlive(ms); GC.KeepAlive(dh); GC.KeepAlive(dcF); GC.KeepAlive(dnF); GC.KeepAlive(dmF);
        GC.KeepAlive(dq); GC.KeepAlive(dk); GC.KeepAlive(dv); GC.KeepAlive(di); GC.KeepAlive(dlf); GC.KeepAlive(dc0);
        GC.KeepAlive(dn0); GC.KeepAlive(dm0);
    }
}
