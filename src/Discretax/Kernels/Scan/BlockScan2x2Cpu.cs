using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The CPU path of <see cref="BlockScan2x2"/>: compiled loops over the contiguous memory of CPU tensors.
/// </summary>
/// <remarks>
/// <para>Layout. <c>F</c>, <c>h</c> and the gradient buffers are row-major <c>[B, L, N, 2]</c>: one time step of one batch
/// entry is a row of <c>2N</c> scalars <c>(z_0, y_0, z_1, y_1, ...)</c>. <c>M</c> is <c>[N, 2, 2]</c> (mode 0),
/// <c>[L, N, 2, 2]</c> (mode 1) or <c>[B, L, N, 2, 2]</c> (mode 2), four scalars <c>(m11, m12, m21, m22)</c> per channel.</para>
/// <para>Parallelism. The <c>B x N</c> channels are independent: tasks of one batch entry and one contiguous block of
/// channels walk time and update their block of each row; the previous state is the row just written (an L1 hit).
/// Small problems run on the calling thread.</para>
/// <para>Pointers are taken right before a loop from tensors kept alive (<see cref="GC.KeepAlive"/>) until it ends.</para>
/// </remarks>
internal static unsafe class BlockScan2x2Cpu
{
    /// <summary>Smallest block of channels a task gets when a row is split.</summary>
    private const int MinBlock = 32;

    /// <summary><c>h_t = M_t h_{t-1} + F_t</c> for contiguous CPU tensors of one dtype (float32 or float64).</summary>
    /// <param name="m">Matrices <c>[N, 2, 2]</c>, <c>[L, N, 2, 2]</c> or <c>[B, L, N, 2, 2]</c>, contiguous.</param>
    /// <param name="f">Forcing <c>[B, L, N, 2]</c>, contiguous.</param>
    /// <param name="h0">Initial state <c>[B, N, 2]</c>, contiguous, or null for zeros.</param>
    /// <returns>All states <c>[B, L, N, 2]</c>.</returns>
    public static Tensor Forward(Tensor m, Tensor f, Tensor? h0)
    {
        var h = empty(f.shape, dtype: f.dtype, device: f.device);
        int bsz = (int)f.shape[0], len = (int)f.shape[1], n = (int)f.shape[2];
        int mode = (int)m.dim() - 3;
        if (f.dtype == ScalarType.Float32)
            ForwardTyped<float>(m, f, h0, h, mode, bsz, len, n);
        else
            ForwardTyped<double>(m, f, h0, h, mode, bsz, len, n);
        return h;
    }

    /// <summary>
    /// The reverse scan: <c>d_L = g_L</c>, <c>d_t = g_t + M_{t+1}^T d_{t+1}</c>; grad <c>F_t = d_t</c>,
    /// grad <c>M_t = d_t h_{t-1}^T</c> (summed over the broadcast dimensions of <c>M</c>), grad <c>h_0 = M_1^T d_1</c>.
    /// </summary>
    /// <param name="m">Matrices as in <see cref="Forward"/>.</param>
    /// <param name="g">Incoming gradient <c>[B, L, N, 2]</c>, contiguous.</param>
    /// <param name="h">The forward's states <c>[B, L, N, 2]</c>; needed only when <paramref name="needM"/>.</param>
    /// <param name="h0">The forward's initial state <c>[B, N, 2]</c> or null (zeros).</param>
    /// <param name="needM">Whether to compute the gradient of <paramref name="m"/>.</param>
    /// <param name="needH0">Whether to compute the gradient of the initial state.</param>
    /// <returns>grad F <c>[B, L, N, 2]</c>, grad M (the shape of <paramref name="m"/>, or null), grad h0 (or null).</returns>
    public static (Tensor GradF, Tensor? GradM, Tensor? GradH0) Backward(Tensor m, Tensor g, Tensor? h, Tensor? h0, bool needM, bool needH0)
    {
        long bsz = g.shape[0], len = g.shape[1], n = g.shape[2];
        int mode = (int)m.dim() - 3;
        var d = empty(g.shape, dtype: g.dtype, device: g.device);
        Tensor? dm = null, dh0 = null;
        if (needM)
            dm = mode == 0 ? empty(new[] { bsz, n, 2, 2 }, dtype: g.dtype, device: g.device)
                           : empty(new[] { bsz, len, n, 2, 2 }, dtype: g.dtype, device: g.device);
        if (needH0)
            dh0 = empty(new[] { bsz, n, 2 }, dtype: g.dtype, device: g.device);
        if (g.dtype == ScalarType.Float32)
            BackwardTyped<float>(m, g, h, h0, d, dm, dh0, mode, (int)bsz, (int)len, (int)n);
        else
            BackwardTyped<double>(m, g, h, h0, d, dm, dh0, mode, (int)bsz, (int)len, (int)n);

        Tensor? gradM = null;
        if (dm is not null)
        {
            // Modes 0 and 1 still sum over the batch (an int 0 would bind to sum(ScalarType?)).
            gradM = mode == 2 ? dm : dm.sum(0L, keepdim: false);
            if (mode != 2) dm.Dispose();
        }
        return (d, gradM, dh0);
    }

    private static T* Ptr<T>(Tensor? t) where T : unmanaged => CpuTensorMemory.Pointer<T>(t, "BlockScan2x2");

    private static void Run(int bsz, int len, int n, Action<int, int, int> block) =>
        CpuChannelBlocks.Run(bsz, n, (long)bsz * len * n * 2, MinBlock, 1, block);

    private static long MRow(int mode, int bi, int t, int len, int n) => mode switch
    {
        0 => 0,
        1 => (long)t * n * 4,
        _ => ((long)bi * len + t) * n * 4,
    };

    private static void ForwardTyped<T>(Tensor m, Tensor f, Tensor? h0, Tensor h, int mode, int bsz, int len, int n)
        where T : unmanaged, INumber<T>
    {
        nint pm = (nint)Ptr<T>(m), pf = (nint)Ptr<T>(f), ph0 = (nint)Ptr<T>(h0), ph = (nint)Ptr<T>(h);
        Run(bsz, len, n, (bi, c0, c1) => ForwardBlock((T*)pm, mode, (T*)pf, (T*)ph0, (T*)ph, bi, len, n, c0, c1));
        GC.KeepAlive(m);
        GC.KeepAlive(f);
        GC.KeepAlive(h0);
        GC.KeepAlive(h);
    }

    private static void BackwardTyped<T>(Tensor m, Tensor g, Tensor? h, Tensor? h0, Tensor d, Tensor? dm, Tensor? dh0,
        int mode, int bsz, int len, int n)
        where T : unmanaged, INumber<T>
    {
        nint pm = (nint)Ptr<T>(m), pg = (nint)Ptr<T>(g), ph = (nint)Ptr<T>(dm is null ? null : h), ph0 = (nint)Ptr<T>(dm is null ? null : h0);
        nint pd = (nint)Ptr<T>(d), pdm = (nint)Ptr<T>(dm), pdh0 = (nint)Ptr<T>(dh0);
        Run(bsz, len, n, (bi, c0, c1) =>
            BackwardBlock((T*)pm, mode, (T*)pg, (T*)ph, (T*)ph0, (T*)pd, (T*)pdm, (T*)pdh0, bi, len, n, c0, c1));
        GC.KeepAlive(m);
        GC.KeepAlive(g);
        GC.KeepAlive(h);
        GC.KeepAlive(h0);
        GC.KeepAlive(d);
        GC.KeepAlive(dm);
        GC.KeepAlive(dh0);
    }

    private static void ForwardBlock<T>(T* m, int mode, T* f, T* h0, T* h, int bi, int len, int n, int c0, int c1)
        where T : unmanaged, INumber<T>
    {
        int width = 2 * n;
        long rowBase = (long)bi * len * width;
        for (int t = 0; t < len; t++)
        {
            T* ft = f + rowBase + (long)t * width;
            T* ht = h + rowBase + (long)t * width;
            T* hp = t > 0 ? ht - width : (h0 is null ? null : h0 + (long)bi * width);
            if (hp is null)
            {
                new ReadOnlySpan<T>(ft + 2 * c0, 2 * (c1 - c0)).CopyTo(new Span<T>(ht + 2 * c0, 2 * (c1 - c0)));
                continue;
            }
            T* mt = m + MRow(mode, bi, t, len, n);
            for (int c = c0; c < c1; c++)
            {
                T* mc = mt + 4 * c;
                T z = hp[2 * c], y = hp[2 * c + 1];
                ht[2 * c] = mc[0] * z + mc[1] * y + ft[2 * c];
                ht[2 * c + 1] = mc[2] * z + mc[3] * y + ft[2 * c + 1];
            }
        }
    }

    private static void BackwardBlock<T>(T* m, int mode, T* g, T* h, T* h0, T* d, T* dm, T* dh0,
        int bi, int len, int n, int c0, int c1)
        where T : unmanaged, INumber<T>
    {
        int width = 2 * n;
        long rowBase = (long)bi * len * width;
        bool needM = dm is not null;
        // Mode 0 accumulates grad M over time in a task-local buffer of 4 scalars per channel (pinned, indexed from c0).
        T[] accArray = needM && mode == 0 ? new T[4 * (c1 - c0)] : Array.Empty<T>();
        fixed (T* accBase = accArray)
        {
            T* acc = accBase - 4 * c0;
            for (int t = len - 1; t >= 0; t--)
            {
                T* gt = g + rowBase + (long)t * width;
                T* dt = d + rowBase + (long)t * width;
                T* hp = !needM ? null : t > 0 ? h + rowBase + (long)(t - 1) * width : (h0 is null ? null : h0 + (long)bi * width);
                T* mn = t == len - 1 ? null : m + MRow(mode, bi, t + 1, len, n);
                T* dn = dt + width;
                T* dmt = needM && mode != 0 ? dm + ((long)bi * len + t) * n * 4 : null;
                if (mn is null)
                {
                    new ReadOnlySpan<T>(gt + 2 * c0, 2 * (c1 - c0)).CopyTo(new Span<T>(dt + 2 * c0, 2 * (c1 - c0)));
                }
                else
                {
                    for (int c = c0; c < c1; c++)
                    {
                        T* mc = mn + 4 * c;
                        T e1 = dn[2 * c], e2 = dn[2 * c + 1];
                        dt[2 * c] = mc[0] * e1 + mc[2] * e2 + gt[2 * c];
                        dt[2 * c + 1] = mc[1] * e1 + mc[3] * e2 + gt[2 * c + 1];
                    }
                }
                if (!needM) continue;
                // grad M_t = d_t h_{t-1}^T over the row just written (an L1 hit).
                if (hp is null)
                {
                    if (dmt is not null) new Span<T>(dmt + 4 * c0, 4 * (c1 - c0)).Clear();
                    continue;
                }
                if (dmt is null)
                {
                    for (int c = c0; c < c1; c++)
                    {
                        T d1 = dt[2 * c], d2 = dt[2 * c + 1], z = hp[2 * c], y = hp[2 * c + 1];
                        T* a = acc + 4 * c;
                        a[0] += d1 * z;
                        a[1] += d1 * y;
                        a[2] += d2 * z;
                        a[3] += d2 * y;
                    }
                }
                else
                {
                    for (int c = c0; c < c1; c++)
                    {
                        T d1 = dt[2 * c], d2 = dt[2 * c + 1], z = hp[2 * c], y = hp[2 * c + 1];
                        T* a = dmt + 4 * c;
                        a[0] = d1 * z;
                        a[1] = d1 * y;
                        a[2] = d2 * z;
                        a[3] = d2 * y;
                    }
                }
            }
            if (needM && mode == 0)
                new ReadOnlySpan<T>(accBase, 4 * (c1 - c0)).CopyTo(new Span<T>(dm + (long)bi * n * 4 + 4 * c0, 4 * (c1 - c0)));
        }
        if (dh0 is not null)
        {
            T* m1 = m + MRow(mode, bi, 0, len, n);
            T* d1row = d + rowBase;
            T* out0 = dh0 + (long)bi * width;
            for (int c = c0; c < c1; c++)
            {
                T* mc = m1 + 4 * c;
                T d1 = d1row[2 * c], d2 = d1row[2 * c + 1];
                out0[2 * c] = mc[0] * d1 + mc[2] * d2;
                out0[2 * c + 1] = mc[1] * d1 + mc[3] * d2;
            }
        }
    }
}
