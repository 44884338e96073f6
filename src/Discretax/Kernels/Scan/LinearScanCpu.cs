using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The CPU path of <see cref="LinearScan"/>: compiled loops over the contiguous memory of CPU tensors.
/// </summary>
/// <remarks>
/// <para>Layout. <c>b</c>, <c>h</c> and every gradient buffer are row-major <c>[B, L, N]</c>; a complex tensor is read
/// through its <c>view_as_real</c> alias, so one row holds <c>W = N</c> (real) or <c>W = 2N</c> (complex, interleaved
/// <c>re, im</c>) scalars. <c>a</c> is canonical: <c>[N]</c> (mode 0), <c>[L, N]</c> (mode 1) or <c>[B, L, N]</c> (mode 2).</para>
/// <para>Parallelism. The <c>B x N</c> channels are independent: the work is split into tasks of one batch entry and one
/// contiguous block of the row; each task walks time and updates its block as one contiguous vector per step, so
/// <c>a</c> and <c>b</c> are read once and <c>h</c> written once. The previous state is read back from the row just
/// written (an L1 hit), so no state buffer is needed.</para>
/// <para>Vectorization. 256-bit vectors along the row; a complex product uses the interleaved layout directly
/// (duplicate the real and imaginary parts of one factor, swap the pairs of the other, and
/// <c>fmaddsub</c>/<c>fmsubadd</c>), with a scalar loop for the tail and for machines without AVX/FMA.</para>
/// <para>Pointers are taken right before a loop from tensors that are kept alive (<see cref="GC.KeepAlive"/>) until
/// the loop is over; none is cached.</para>
/// </remarks>
internal static unsafe class LinearScanCpu
{
    /// <summary>Smallest block of a row (in scalars) a task gets when a row is split.</summary>
    private const int MinBlock = 64;

    private static bool ComplexVectors => Avx.IsSupported && Fma.IsSupported;

    /// <summary>
    /// <c>h_t = a_t h_{t-1} + b_t</c> for contiguous CPU tensors of one dtype (float32, float64, complex64, complex128).
    /// </summary>
    /// <param name="a">Canonical coefficients <c>[N]</c>, <c>[L, N]</c> or <c>[B, L, N]</c>, contiguous.</param>
    /// <param name="b">Inputs <c>[B, L, N]</c>, contiguous.</param>
    /// <param name="h0">Initial state <c>[B, N]</c>, contiguous, or null for zeros.</param>
    /// <returns>All states <c>[B, L, N]</c>.</returns>
    public static Tensor Forward(Tensor a, Tensor b, Tensor? h0)
    {
        var h = empty(b.shape, dtype: b.dtype, device: b.device);
        using (var scope = NewDisposeScope())
        {
            var ar = Real(a);
            var br = Real(b);
            var hr = Real(h);
            var h0r = h0 is null ? null : Real(h0);
            int bsz = (int)b.shape[0], len = (int)b.shape[1];
            int width = (int)(br.numel() / ((long)bsz * len));
            bool complex = b.is_complex();
            int mode = (int)a.dim() - 1;
            if (br.dtype == ScalarType.Float32)
                ForwardTyped<float>(ar, br, h0r, hr, mode, bsz, len, width, complex);
            else
                ForwardTyped<double>(ar, br, h0r, hr, mode, bsz, len, width, complex);
        }
        return h;
    }

    /// <summary>
    /// The reverse scan: <c>d_t = g_t + conj(a_{t+1}) d_{t+1}</c>; grad <c>b_t = d_t</c>,
    /// grad <c>a_t = d_t conj(h_{t-1})</c> (summed over the broadcast dimensions of <c>a</c>),
    /// grad <c>h_0 = conj(a_1) d_1</c>.
    /// </summary>
    /// <param name="a">Canonical coefficients as in <see cref="Forward"/>.</param>
    /// <param name="g">Incoming gradient of the states <c>[B, L, N]</c>, contiguous, conjugation resolved.</param>
    /// <param name="h">The forward's states <c>[B, L, N]</c>; needed only when <paramref name="needA"/>.</param>
    /// <param name="h0">The forward's initial state <c>[B, N]</c> or null (zeros).</param>
    /// <param name="needA">Whether to compute the gradient of <paramref name="a"/>.</param>
    /// <param name="needH0">Whether to compute the gradient of the initial state.</param>
    /// <returns>The gradients of b <c>[B, L, N]</c>, a (the canonical shape of <paramref name="a"/>, or null) and h0 (or null).</returns>
    public static (Tensor GradB, Tensor? GradA, Tensor? GradH0) Backward(Tensor a, Tensor g, Tensor? h, Tensor? h0, bool needA, bool needH0)
    {
        long bsz = g.shape[0], len = g.shape[1], n = g.shape[2];
        int mode = (int)a.dim() - 1;
        var d = empty(g.shape, dtype: g.dtype, device: g.device);
        Tensor? daBuffer = null, dh0 = null;
        if (needA)
            daBuffer = mode == 0 ? zeros(new[] { bsz, n }, dtype: g.dtype, device: g.device) : empty(g.shape, dtype: g.dtype, device: g.device);
        if (needH0)
            dh0 = empty(new[] { bsz, n }, dtype: g.dtype, device: g.device);

        using (var scope = NewDisposeScope())
        {
            var ar = Real(a);
            var gr = Real(g);
            var dr = Real(d);
            var hr = needA ? Real(h!) : null;
            var h0r = needA && h0 is not null ? Real(h0) : null;
            var dar = daBuffer is null ? null : Real(daBuffer);
            var dh0r = dh0 is null ? null : Real(dh0);
            int width = (int)(gr.numel() / (bsz * len));
            bool complex = g.is_complex();
            if (gr.dtype == ScalarType.Float32)
                BackwardTyped<float>(ar, gr, hr, h0r, dr, dar, dh0r, mode, (int)bsz, (int)len, width, complex);
            else
                BackwardTyped<double>(ar, gr, hr, h0r, dr, dar, dh0r, mode, (int)bsz, (int)len, width, complex);
        }

        Tensor? gradA = null;
        if (daBuffer is not null)
        {
            // Mode 0 accumulated over time per (batch, channel); modes 0 and 1 still sum over the batch.
            gradA = mode == 2 ? daBuffer : daBuffer.sum(0L, keepdim: false); // (an int 0 would bind to sum(ScalarType?))
            if (mode != 2) daBuffer.Dispose();
        }
        return (d, gradA, dh0);
    }

    /// <summary>The real alias of a contiguous tensor: itself, or <c>view_as_real</c> of a complex one.</summary>
    private static Tensor Real(Tensor t) => t.is_complex() ? t.view_as_real() : t.alias();

    private static T* Ptr<T>(Tensor? t) where T : unmanaged => CpuTensorMemory.Pointer<T>(t, "LinearScan");

    /// <summary>Tasks of one batch entry and one block of a row, blocks of whole vectors (multiples of 8 scalars).</summary>
    private static void Run(int bsz, int len, int width, Action<int, int, int> block) =>
        CpuChannelBlocks.Run(bsz, width, (long)bsz * len * width, MinBlock, 8, block);

    private static void ForwardTyped<T>(Tensor a, Tensor b, Tensor? h0, Tensor h, int mode, int bsz, int len, int width, bool complex)
        where T : unmanaged, INumber<T>
    {
        nint pa = (nint)Ptr<T>(a), pb = (nint)Ptr<T>(b), ph0 = (nint)Ptr<T>(h0), ph = (nint)Ptr<T>(h);
        Run(bsz, len, width, (bi, c0, c1) =>
            ForwardBlock((T*)pa, mode, (T*)pb, (T*)ph0, (T*)ph, bi, len, width, c0, c1, complex));
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        GC.KeepAlive(h0);
        GC.KeepAlive(h);
    }

    private static void BackwardTyped<T>(Tensor a, Tensor g, Tensor? h, Tensor? h0, Tensor d, Tensor? da, Tensor? dh0,
        int mode, int bsz, int len, int width, bool complex)
        where T : unmanaged, INumber<T>
    {
        nint pa = (nint)Ptr<T>(a), pg = (nint)Ptr<T>(g), ph = (nint)Ptr<T>(h), ph0 = (nint)Ptr<T>(h0);
        nint pd = (nint)Ptr<T>(d), pda = (nint)Ptr<T>(da), pdh0 = (nint)Ptr<T>(dh0);
        Run(bsz, len, width, (bi, c0, c1) =>
            BackwardBlock((T*)pa, mode, (T*)pg, (T*)ph, (T*)ph0, (T*)pd, (T*)pda, (T*)pdh0, bi, len, width, c0, c1, complex));
        GC.KeepAlive(a);
        GC.KeepAlive(g);
        GC.KeepAlive(h);
        GC.KeepAlive(h0);
        GC.KeepAlive(d);
        GC.KeepAlive(da);
        GC.KeepAlive(dh0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T* ARow<T>(T* a, int mode, int bi, int t, int len, int width) where T : unmanaged =>
        mode switch
        {
            0 => a,
            1 => a + (long)t * width,
            _ => a + ((long)bi * len + t) * width,
        };

    private static void ForwardBlock<T>(T* a, int mode, T* b, T* h0, T* h, int bi, int len, int width, int c0, int c1, bool complex)
        where T : unmanaged, INumber<T>
    {
        long rowBase = (long)bi * len * width;
        for (int t = 0; t < len; t++)
        {
            T* bt = b + rowBase + (long)t * width;
            T* ht = h + rowBase + (long)t * width;
            T* hp = t > 0 ? ht - width : (h0 is null ? null : h0 + (long)bi * width);
            if (hp is null)
            {
                new ReadOnlySpan<T>(bt + c0, c1 - c0).CopyTo(new Span<T>(ht + c0, c1 - c0));
                continue;
            }
            MulAdd(ARow(a, mode, bi, t, len, width), hp, bt, ht, c0, c1, complex, conj: false);
        }
    }

    private static void BackwardBlock<T>(T* a, int mode, T* g, T* h, T* h0, T* d, T* da, T* dh0,
        int bi, int len, int width, int c0, int c1, bool complex)
        where T : unmanaged, INumber<T>
    {
        long rowBase = (long)bi * len * width;
        int blockWidth = c1 - c0;
        for (int t = len - 1; t >= 0; t--)
        {
            T* gt = g + rowBase + (long)t * width;
            T* dt = d + rowBase + (long)t * width;
            if (t == len - 1)
                new ReadOnlySpan<T>(gt + c0, blockWidth).CopyTo(new Span<T>(dt + c0, blockWidth));
            else
                MulAdd(ARow(a, mode, bi, t + 1, len, width), dt + width, gt, dt, c0, c1, complex, conj: true);
        }
        if (dh0 is not null)
            MulAdd(ARow(a, mode, bi, 0, len, width), d + rowBase, null, dh0 + (long)bi * width, c0, c1, complex, conj: true);
        if (da is null) return;

        // grad a_t = d_t conj(h_{t-1}) in a second, ascending pass over d and h (measured faster on this CPU than
        // fusing it into the reverse loop). Mode 0 sums over time in a task-local buffer, copied out at the end.
        T[]? accArray = mode == 0 ? new T[blockWidth] : null;
        fixed (T* accBase = accArray)
        {
            T* acc = accBase - c0;
            for (int t = 0; t < len; t++)
            {
                T* dt = d + rowBase + (long)t * width;
                T* hp = t > 0 ? h + rowBase + (long)(t - 1) * width : (h0 is null ? null : h0 + (long)bi * width);
                if (mode == 0)
                {
                    if (hp is not null)
                        MulAdd(hp, dt, acc, acc, c0, c1, complex, conj: true);
                }
                else
                {
                    T* dat = da + rowBase + (long)t * width;
                    if (hp is not null)
                        MulAdd(hp, dt, null, dat, c0, c1, complex, conj: true);
                    else
                        new Span<T>(dat + c0, blockWidth).Clear();
                }
            }
            if (accArray is not null)
                new ReadOnlySpan<T>(accBase, blockWidth).CopyTo(new Span<T>(da + (long)bi * width + c0, blockWidth));
        }
    }

    /// <summary>
    /// <c>dst[c] = op(x[c]) * y[c] + z[c]</c> for <c>c</c> in <c>[c0, c1)</c> (scalar offsets), where <c>op</c> is
    /// the identity or, when <paramref name="conj"/> and complex, conjugation; <paramref name="z"/> may be null (no
    /// addend) or equal to <paramref name="dst"/> (accumulation).
    /// </summary>
    private static void MulAdd<T>(T* x, T* y, T* z, T* dst, int c0, int c1, bool complex, bool conj)
        where T : unmanaged, INumber<T>
    {
        int c = c0;
        int v = Vector256<T>.Count;
        if (!complex)
        {
            if (Vector256.IsHardwareAccelerated)
            {
                if (z is null)
                    for (; c + v <= c1; c += v)
                        (Vector256.Load(x + c) * Vector256.Load(y + c)).Store(dst + c);
                else
                    for (; c + v <= c1; c += v)
                        (Vector256.Load(x + c) * Vector256.Load(y + c) + Vector256.Load(z + c)).Store(dst + c);
            }
            for (; c < c1; c++)
                dst[c] = x[c] * y[c] + (z is null ? T.Zero : z[c]);
            return;
        }

        if (ComplexVectors)
        {
            if (conj)
            {
                if (z is null)
                    for (; c + v <= c1; c += v)
                        ConjMul(Vector256.Load(x + c), Vector256.Load(y + c)).Store(dst + c);
                else
                    for (; c + v <= c1; c += v)
                        (ConjMul(Vector256.Load(x + c), Vector256.Load(y + c)) + Vector256.Load(z + c)).Store(dst + c);
            }
            else
            {
                if (z is null)
                    for (; c + v <= c1; c += v)
                        Mul(Vector256.Load(x + c), Vector256.Load(y + c)).Store(dst + c);
                else
                    for (; c + v <= c1; c += v)
                        (Mul(Vector256.Load(x + c), Vector256.Load(y + c)) + Vector256.Load(z + c)).Store(dst + c);
            }
        }
        for (; c < c1; c += 2)
        {
            T xr = x[c], xi = conj ? -x[c + 1] : x[c + 1], yr = y[c], yi = y[c + 1];
            T re = xr * yr - xi * yi, im = xr * yi + xi * yr;
            if (z is not null)
            {
                re += z[c];
                im += z[c + 1];
            }
            dst[c] = re;
            dst[c + 1] = im;
        }
    }

    /// <summary>Interleaved complex product <c>x * y</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Mul<T>(Vector256<T> x, Vector256<T> y) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            var xf = x.AsSingle();
            var yf = y.AsSingle();
            var xr = Avx.DuplicateEvenIndexed(xf);
            var xi = Avx.DuplicateOddIndexed(xf);
            var ys = Avx.Permute(yf, 0b10_11_00_01);
            // even lanes: xr*yr - xi*yi; odd lanes: xr*yi + xi*yr
            return Fma.MultiplyAddSubtract(xr, yf, xi * ys).As<float, T>();
        }
        else
        {
            var xd = x.AsDouble();
            var yd = y.AsDouble();
            var xr = Avx.DuplicateEvenIndexed(xd);
            var xi = Avx.Permute(xd, 0b1111);
            var ys = Avx.Permute(yd, 0b0101);
            return Fma.MultiplyAddSubtract(xr, yd, xi * ys).As<double, T>();
        }
    }

    /// <summary>Interleaved complex product <c>conj(x) * y</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> ConjMul<T>(Vector256<T> x, Vector256<T> y) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            var xf = x.AsSingle();
            var yf = y.AsSingle();
            var xr = Avx.DuplicateEvenIndexed(xf);
            var xi = Avx.DuplicateOddIndexed(xf);
            var ys = Avx.Permute(yf, 0b10_11_00_01);
            // even lanes: xr*yr + xi*yi; odd lanes: xr*yi - xi*yr
            return Fma.MultiplySubtractAdd(xr, yf, xi * ys).As<float, T>();
        }
        else
        {
            var xd = x.AsDouble();
            var yd = y.AsDouble();
            var xr = Avx.DuplicateEvenIndexed(xd);
            var xi = Avx.Permute(xd, 0b1111);
            var ys = Avx.Permute(yd, 0b0101);
            return Fma.MultiplySubtractAdd(xr, yd, xi * ys).As<double, T>();
        }
    }
}
