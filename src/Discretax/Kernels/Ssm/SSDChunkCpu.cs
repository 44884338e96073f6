using System.Numerics;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The compiled CPU path of <see cref="SSDChunkFunction"/>: the SSD chunkwise forward and backward in C# over the memory
/// of contiguous float32 / float64 tensors, one (batch, head) pair per task (parallel over B x NH up to libtorch's thread
/// count), the products by <see cref="SmallGemm"/> on cache-resident blocks, the decay matrix by vectorized
/// exponentials of column-summed log decays. The math is the one written on <see cref="SSDChunkFunction"/>. A head
/// reads the <c>b</c>, <c>c</c> rows of its group <c>h / (NH / G)</c>; the backward writes each head's share of their
/// gradients (<c>[B, NH, L, N]</c>), which the caller sums over the heads of a group. Sequences (packed, chunk-aligned)
/// start and end at chunk boundaries given per chunk.
/// </summary>
internal static unsafe class SSDChunkCpu
{
    /// <summary>Whether the compiled path runs for tensors of this dtype on this machine.</summary>
    internal static bool Supports(Tensor t) => DeltaRuleChunkCpu.Supports(t);

    private readonly record struct Dims(int B, int NH, int G, int N, int C, int P, int Ns)
    {
        public long L => (long)N * C;
        public int R => NH / G;
        public long Largest => Math.Max((long)C * C, Math.Max((long)C * Math.Max(P, Ns), (long)P * Ns));
    }

    private static Dims Sizes(Tensor x, Tensor b, int chunk) =>
        new((int)x.shape[0], (int)x.shape[1], (int)b.shape[1], (int)(x.shape[2] / chunk), chunk, (int)x.shape[3], (int)b.shape[3]);

    private static nint Ptr<T>(Tensor? t) where T : unmanaged => (nint)CpuTensorMemory.Pointer<T>(t, "SSD.Chunked");

    /// <summary>
    /// Forward. <c>x [B, NH, L, P]</c>, <c>a [B, NH, L]</c>, <c>b, c [B, G, L, N]</c>, the sequences' initial states
    /// <c>init [S, B NH, P, N]</c>; <paramref name="startsAt"/> / <paramref name="endsAt"/> give per chunk the sequence
    /// starting / ending there (or -1). Writes <c>y [B, NH, L, P]</c>, <c>finals [S, B NH, P, N]</c> and, when not null,
    /// the state entering every chunk, <c>states [B, G, L / C, NH / G, P, N]</c>.
    /// </summary>
    internal static void Forward(Tensor x, Tensor a, Tensor b, Tensor c, Tensor init, long[] startsAt, long[] endsAt, int chunk,
        Tensor y, Tensor finals, Tensor? states)
    {
        if (x.dtype == ScalarType.Float32) Forward<float>(x, a, b, c, init, startsAt, endsAt, chunk, y, finals, states);
        else Forward<double>(x, a, b, c, init, startsAt, endsAt, chunk, y, finals, states);
    }

    /// <summary>
    /// Backward from the saved inputs and entering states and the gradients <paramref name="dY"/> and
    /// <paramref name="dFinals"/> (either null: zero). Writes dx, da, each head's share of db and dc (<c>[B, NH, L, N]</c>)
    /// and <c>dInit [S, B NH, P, N]</c> (all preallocated, contiguous).
    /// </summary>
    internal static void Backward(Tensor x, Tensor a, Tensor b, Tensor c, Tensor states, Tensor? dY, Tensor? dFinals,
        long[] startsAt, long[] endsAt, int chunk, Tensor dx, Tensor da, Tensor dbHeads, Tensor dcHeads, Tensor dInit)
    {
        if (x.dtype == ScalarType.Float32)
            Backward<float>(x, a, b, c, states, dY, dFinals, startsAt, endsAt, chunk, dx, da, dbHeads, dcHeads, dInit);
        else
            Backward<double>(x, a, b, c, states, dY, dFinals, startsAt, endsAt, chunk, dx, da, dbHeads, dcHeads, dInit);
    }

    /// <summary>The chunk's <c>CB = tril(C B^T)</c> (masked) and <c>M = CB Ld</c>, from <c>B^T</c> into <paramref name="bt"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Mix<T>(int c, int ns, T* bj, T* cj, T* ld, T* bt, T* cb, T* m) where T : unmanaged, INumber<T>
    {
        SmallGemm.Transpose(c, ns, bj, ns, bt, c);
        SmallGemm.Gemm(c, c, ns, cj, ns, bt, c, cb, c, false, T.One, lowerOutput: true);
        SmallGemm.MaskUpper(c, c, cb, c, 0);
        for (long i = 0; i < (long)c * c; i++) m[i] = cb[i] * ld[i];
    }

    private static void Forward<T>(Tensor x, Tensor a, Tensor b, Tensor c, Tensor init, long[] startsAt, long[] endsAt, int chunk,
        Tensor y, Tensor finals, Tensor? states) where T : unmanaged, INumber<T>
    {
        var d = Sizes(x, b, chunk);
        nint px = Ptr<T>(x), pa = Ptr<T>(a), pb = Ptr<T>(b), pc = Ptr<T>(c), pi = Ptr<T>(init), py = Ptr<T>(y),
            pf = Ptr<T>(finals), ps = Ptr<T>(states);
        KernelParallel.For(d.B * d.NH, task =>
        {
            int bi = task / d.NH, h = task % d.NH, g = h / d.R, ri = h % d.R;
            int cs = d.C, p = d.P, ns = d.Ns;
            long pn = (long)p * ns;
            using var scratch = new KernelScratch<T>(10, d.Largest);
            T* ld = scratch.Take((long)cs * cs), e = scratch.Take(cs), w = scratch.Take(cs), bt = scratch.Take((long)ns * cs),
                cb = scratch.Take((long)cs * cs), m = scratch.Take((long)cs * cs), st = scratch.Take(pn), s = scratch.Take(pn),
                ce = scratch.Take((long)cs * ns), bw = scratch.Take((long)cs * ns);
            T* xh = (T*)px + (long)task * d.L * p, ah = (T*)pa + (long)task * d.L, yh = (T*)py + (long)task * d.L * p;
            T* bg = (T*)pb + ((long)bi * d.G + g) * d.L * ns, cg = (T*)pc + ((long)bi * d.G + g) * d.L * ns;
            for (int j = 0; j < d.N; j++)
            {
                if (startsAt[j] >= 0) new Span<T>((T*)pi + (startsAt[j] * d.B * d.NH + task) * pn, (int)pn).CopyTo(new Span<T>(s, (int)pn));
                long r0 = (long)j * cs;
                T* xj = xh + r0 * p, yj = yh + r0 * p, bj = bg + r0 * ns, cj = cg + r0 * ns;
                T ec = KernelVectors.SegmentDecays(cs, ah + r0, ld, e, w);
                Mix(cs, ns, bj, cj, ld, bt, cb, m);
                if (ps != 0)
                {
                    long slot = (((long)bi * d.G + g) * d.N + j) * d.R + ri;
                    new Span<T>(s, (int)pn).CopyTo(new Span<T>((T*)ps + slot * pn, (int)pn));
                }
                // Y = M X + diag(e) C S^T
                SmallGemm.Gemm(cs, p, cs, m, cs, xj, p, yj, p, false, T.One, Triangle.Lower);
                KernelVectors.ScaleRows(cs, ns, e, cj, ce);
                SmallGemm.Transpose(p, ns, s, ns, st, p);
                SmallGemm.Gemm(cs, p, ns, ce, ns, st, p, yj, p, true, T.One);
                // S' = e_C S + X^T diag(w) B
                KernelVectors.Scale((int)pn, ec, s, s);
                KernelVectors.ScaleRows(cs, ns, w, bj, bw);
                SmallGemm.Gemm(p, ns, cs, xj, p, bw, ns, s, ns, true, T.One, transA: true);
                if (endsAt[j] >= 0) new Span<T>(s, (int)pn).CopyTo(new Span<T>((T*)pf + (endsAt[j] * d.B * d.NH + task) * pn, (int)pn));
            }
        });
        GC.KeepAlive(x); GC.KeepAlive(a); GC.KeepAlive(b); GC.KeepAlive(c); GC.KeepAlive(init); GC.KeepAlive(y);
        GC.KeepAlive(finals); GC.KeepAlive(states);
    }

    private static void Backward<T>(Tensor x, Tensor a, Tensor b, Tensor c, Tensor states, Tensor? dY, Tensor? dFinals,
        long[] startsAt, long[] endsAt, int chunk, Tensor dx, Tensor da, Tensor dbHeads, Tensor dcHeads, Tensor dInit)
        where T : unmanaged, INumber<T>
    {
        var d = Sizes(x, b, chunk);
        nint px = Ptr<T>(x), pa = Ptr<T>(a), pb = Ptr<T>(b), pc = Ptr<T>(c), pst = Ptr<T>(states), pdy = Ptr<T>(dY),
            pdf = Ptr<T>(dFinals), pdx = Ptr<T>(dx), pda = Ptr<T>(da), pdb = Ptr<T>(dbHeads), pdc = Ptr<T>(dcHeads),
            pdi = Ptr<T>(dInit);
        KernelParallel.For(d.B * d.NH, task =>
        {
            int bi = task / d.NH, h = task % d.NH, g = h / d.R, ri = h % d.R;
            int cs = d.C, p = d.P, ns = d.Ns;
            long pn = (long)p * ns, cc = (long)cs * cs;
            using var scratch = new KernelScratch<T>(22, d.Largest);
            T* ld = scratch.Take(cc), e = scratch.Take(cs), w = scratch.Take(cs), bt = scratch.Take((long)ns * cs),
                cb = scratch.Take(cc), m = scratch.Take(cc), xt = scratch.Take((long)p * cs), dm = scratch.Take(cc),
                dst = scratch.Take(pn), tmp = scratch.Take((long)cs * Math.Max(p, ns)), dys = scratch.Take((long)cs * ns),
                xds = scratch.Take((long)cs * ns), ce = scratch.Take((long)cs * ns), ds = scratch.Take(pn),
                zero = scratch.Take((long)cs * p), de = scratch.Take(cs), dw = scratch.Take(cs), dA = scratch.Take(cs);
            new Span<T>(zero, cs * p).Clear();
            new Span<T>(ds, (int)pn).Clear();
            T* xh = (T*)px + (long)task * d.L * p, ah = (T*)pa + (long)task * d.L;
            T* bg = (T*)pb + ((long)bi * d.G + g) * d.L * ns, cg = (T*)pc + ((long)bi * d.G + g) * d.L * ns;
            for (int j = d.N - 1; j >= 0; j--)
            {
                long r0 = (long)j * cs;
                T* xj = xh + r0 * p, bj = bg + r0 * ns, cj = cg + r0 * ns;
                T* dyj = pdy != 0 ? (T*)pdy + (long)task * d.L * p + r0 * p : zero;
                T* dxj = (T*)pdx + (long)task * d.L * p + r0 * p, daj = (T*)pda + (long)task * d.L + r0;
                T* dbj = (T*)pdb + (long)task * d.L * ns + r0 * ns, dcj = (T*)pdc + (long)task * d.L * ns + r0 * ns;
                T* s = (T*)pst + ((((long)bi * d.G + g) * d.N + j) * d.R + ri) * pn;
                if (endsAt[j] >= 0 && pdf != 0)
                {
                    T* fin = (T*)pdf + (endsAt[j] * d.B * d.NH + task) * pn;
                    for (long i = 0; i < pn; i++) ds[i] += fin[i];
                }
                T ec = KernelVectors.SegmentDecays(cs, ah + r0, ld, e, w);
                Mix(cs, ns, bj, cj, ld, bt, cb, m);

                // dM = dY X^T (lower part);  dX = M^T dY + diag(w) B dS'^T
                SmallGemm.Transpose(cs, p, xj, p, xt, cs);
                SmallGemm.Gemm(cs, cs, p, dyj, p, xt, cs, dm, cs, false, T.One, lowerOutput: true);
                SmallGemm.MaskUpper(cs, cs, dm, cs, 0);
                SmallGemm.Gemm(cs, p, cs, m, cs, dyj, p, dxj, p, false, T.One, Triangle.Upper, transA: true);
                SmallGemm.Transpose(p, ns, ds, ns, dst, p);
                SmallGemm.Gemm(cs, p, ns, bj, ns, dst, p, tmp, p, false, T.One);
                for (int i = 0; i < cs; i++) KernelVectors.Axpy(p, w[i], tmp + i * p, dxj + i * p);
                // dCB = dM Ld (into dm), dLd = dM CB (into cb)
                for (long i = 0; i < cc; i++) { T v = dm[i]; dm[i] = v * ld[i]; cb[i] = v * cb[i]; }
                // dC (this head's share) = dCB B + diag(e) dY S;  de_i = (dY S)_i . C_i
                SmallGemm.Gemm(cs, ns, p, dyj, p, s, ns, dys, ns, false, T.One);
                SmallGemm.Gemm(cs, ns, cs, dm, cs, bj, ns, dcj, ns, false, T.One, Triangle.Lower);
                for (int i = 0; i < cs; i++)
                {
                    de[i] = KernelVectors.Dot(ns, dys + i * ns, cj + i * ns);
                    KernelVectors.Axpy(ns, e[i], dys + i * ns, dcj + i * ns);
                }
                // dB (this head's share) = dCB^T C + diag(w) X dS';  dw_i = (X dS')_i . B_i
                SmallGemm.Gemm(cs, ns, p, xj, p, ds, ns, xds, ns, false, T.One);
                SmallGemm.Gemm(cs, ns, cs, dm, cs, cj, ns, dbj, ns, false, T.One, Triangle.Upper, transA: true);
                for (int i = 0; i < cs; i++)
                {
                    dw[i] = KernelVectors.Dot(ns, xds + i * ns, bj + i * ns);
                    KernelVectors.Axpy(ns, w[i], xds + i * ns, dbj + i * ns);
                }
                T dec = KernelVectors.Dot((int)pn, ds, s);
                // dS = e_C dS' + dY^T diag(e) C
                KernelVectors.Scale((int)pn, ec, ds, ds);
                KernelVectors.ScaleRows(cs, ns, e, cj, ce);
                SmallGemm.Gemm(p, ns, cs, dyj, p, ce, ns, ds, ns, true, T.One, transA: true);
                if (startsAt[j] >= 0)
                {
                    new Span<T>(ds, (int)pn).CopyTo(new Span<T>((T*)pdi + (startsAt[j] * d.B * d.NH + task) * pn, (int)pn));
                    new Span<T>(ds, (int)pn).Clear();
                }
                // The decays: dD = dLd Ld (+ dw w on the last row), dA_i = rowsum_i - colsum_i + e_i de_i (+ e_C de_C).
                KernelVectors.MulInPlace((int)cc, cb, ld);
                T* last = cb + (cs - 1) * cs;
                for (int i = 0; i < cs; i++) last[i] += dw[i] * w[i];
                for (int i = 0; i < cs; i++) dA[i] = e[i] * de[i];
                for (int i = 0; i < cs; i++)
                {
                    T* row = cb + i * cs;
                    T rs = T.Zero;
                    for (int z = 0; z <= i; z++) { rs += row[z]; dA[z] -= row[z]; }
                    dA[i] += rs;
                }
                dA[cs - 1] += ec * dec;
                T run = T.Zero;
                for (int i = cs - 1; i >= 0; i--) { run += dA[i]; daj[i] = run; }
            }
        });
        GC.KeepAlive(x); GC.KeepAlive(a); GC.KeepAlive(b); GC.KeepAlive(c); GC.KeepAlive(states); GC.KeepAlive(dY);
        GC.KeepAlive(dFinals); GC.KeepAlive(dx); GC.KeepAlive(da); GC.KeepAlive(dbHeads); GC.KeepAlive(dcHeads); GC.KeepAlive(dInit);
    }
}
