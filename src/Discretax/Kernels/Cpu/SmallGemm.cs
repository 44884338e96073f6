using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Discretax.Kernels;

/// <summary>
/// Which entries of a square operand may be non-zero, so that <see cref="SmallGemm"/> skips the products with the
/// zero triangle. The zero triangle must hold zeros in memory (the micro-tiles straddle the diagonal).
/// </summary>
internal enum Triangle
{
    /// <summary>A full matrix.</summary>
    None,

    /// <summary><c>A[i, l] = 0</c> for <c>l &gt; i</c> (lower triangular, diagonal included).</summary>
    Lower,

    /// <summary><c>A[i, l] = 0</c> for <c>l &lt; i</c> (upper triangular, diagonal included).</summary>
    Upper,
}

/// <summary>
/// Matrix products of the small row-major blocks inside the compiled chunk kernels (a chunk's <c>C x D</c> rows,
/// <c>D x D</c> states, <c>C x C</c> in-chunk matrices; C, D up to a few hundred), single-threaded, on raw memory:
/// <c>C = (accumulate ? C : 0) + alpha A B</c> with <c>A [m, k]</c> and <c>B [k, n]</c> row-major with leading
/// dimensions. Register-blocked micro-tiles of 4 rows by two 256-bit vectors of columns (FMA), the row's broadcast
/// scalar times the row of B; edges by narrower tiles and scalars. Products with a transposed operand are formed by
/// transposing that operand into a scratch block first (<see cref="Transpose"/>; O(k n) moves against O(m k n)
/// multiply-adds); a transposed A needs no copy (<c>transA</c>). Every caller keeps the memory alive and checks <see cref="IsSupported"/> first.
/// </summary>
internal static unsafe class SmallGemm
{
    /// <summary>Whether the vectorized kernels run on this machine (x64 with AVX2 and FMA).</summary>
    internal static bool IsSupported => Vector256.IsHardwareAccelerated && Fma.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// <c>C = (accumulate ? C : 0) + alpha A B</c>. <paramref name="triangleA"/> restricts the summation to the
    /// non-zero triangle of a square <c>A</c>; <paramref name="lowerOutput"/> computes only the tiles of <c>C</c> that
    /// meet its lower triangle (diagonal included; whole vectors, so some entries above it too): the rest of C is left as it was (callers mask it, see
    /// <see cref="MaskUpper"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Gemm<T>(int m, int n, int k, T* a, int lda, T* b, int ldb, T* c, int ldc,
        bool accumulate, T alpha, Triangle triangleA = Triangle.None, bool lowerOutput = false, bool transA = false) where T : unmanaged, INumber<T>
    {
        int w = Vector256<T>.Count;
        // Element (i, l) of op(A) sits at a[i * ars + l * acs]: row-major A, or A^T read from A's memory (the tiles
        // broadcast single elements, so a transposed A costs nothing extra).
        int ars = transA ? 1 : lda, acs = transA ? lda : 1;
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            var (k0, k1) = Range(triangleA, i, 4, k);
            int j = 0;
            int jEnd = lowerOutput ? Math.Min(n, (i + 4 + w - 1) / w * w) : n;   // whole vectors past the diagonal
            for (; j + 2 * w <= jEnd; j += 2 * w) Tile4x2(a + i * ars, ars, acs, b + j, ldb, c + i * ldc + j, ldc, k0, k1, accumulate, alpha);
            for (; j + w <= jEnd; j += w) Tile4x1(a + i * ars, ars, acs, b + j, ldb, c + i * ldc + j, ldc, k0, k1, accumulate, alpha);
            if (j < jEnd) ScalarBlock(4, jEnd - j, a + i * ars, ars, acs, b + j, ldb, c + i * ldc + j, ldc, k0, k1, accumulate, alpha);
        }
        for (; i < m; i++)
        {
            var (k0, k1) = Range(triangleA, i, 1, k);
            int j = 0;
            int jEnd = lowerOutput ? Math.Min(n, (i + 1 + w - 1) / w * w) : n;
            for (; j + 2 * w <= jEnd; j += 2 * w) Tile1x2(a + i * ars, acs, b + j, ldb, c + i * ldc + j, k0, k1, accumulate, alpha);
            if (j < jEnd) ScalarBlock(1, jEnd - j, a + i * ars, ars, acs, b + j, ldb, c + i * ldc + j, ldc, k0, k1, accumulate, alpha);
        }
    }

    /// <summary>The summation range of rows <c>[i, i + rows)</c> for an operand with the given zero triangle.</summary>
    private static (int K0, int K1) Range(Triangle t, int i, int rows, int k) => t switch
    {
        Triangle.Lower => (0, Math.Min(k, i + rows)),
        Triangle.Upper => (Math.Min(k, i), k),
        _ => (0, k),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> MulAdd<T>(Vector256<T> x, Vector256<T> y, Vector256<T> acc) where T : unmanaged
    {
        if (typeof(T) == typeof(float) && Fma.IsSupported)
            return Fma.MultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double) && Fma.IsSupported)
            return Fma.MultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
        return x * y + acc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(T* c, Vector256<T> acc, bool accumulate, Vector256<T> alpha) where T : unmanaged
    {
        if (accumulate) MulAdd(acc, alpha, Vector256.Load(c)).Store(c);
        else (acc * alpha).Store(c);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x2<T>(T* a, int ars, int acs, T* b, int ldb, T* c, int ldc, int k0, int k1, bool accumulate, T alpha)
        where T : unmanaged
    {
        int w = Vector256<T>.Count;
        Vector256<T> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default;
        T* al0 = a + k0 * acs;
        T* bl = b + k0 * ldb;
        for (int l = k0; l < k1; l++, al0 += acs, bl += ldb)
        {
            var b0 = Vector256.Load(bl);
            var b1 = Vector256.Load(bl + w);
            var x = Vector256.Create(al0[0]);
            c00 = MulAdd(x, b0, c00); c01 = MulAdd(x, b1, c01);
            x = Vector256.Create(al0[ars]);
            c10 = MulAdd(x, b0, c10); c11 = MulAdd(x, b1, c11);
            x = Vector256.Create(al0[2 * ars]);
            c20 = MulAdd(x, b0, c20); c21 = MulAdd(x, b1, c21);
            x = Vector256.Create(al0[3 * ars]);
            c30 = MulAdd(x, b0, c30); c31 = MulAdd(x, b1, c31);
        }
        var al = Vector256.Create(alpha);
        Store(c, c00, accumulate, al); Store(c + w, c01, accumulate, al);
        Store(c + ldc, c10, accumulate, al); Store(c + ldc + w, c11, accumulate, al);
        Store(c + 2 * ldc, c20, accumulate, al); Store(c + 2 * ldc + w, c21, accumulate, al);
        Store(c + 3 * ldc, c30, accumulate, al); Store(c + 3 * ldc + w, c31, accumulate, al);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x1<T>(T* a, int ars, int acs, T* b, int ldb, T* c, int ldc, int k0, int k1, bool accumulate, T alpha)
        where T : unmanaged
    {
        Vector256<T> c0 = default, c1 = default, c2 = default, c3 = default;
        T* al0 = a + k0 * acs;
        for (int l = k0; l < k1; l++, al0 += acs)
        {
            var b0 = Vector256.Load(b + l * ldb);
            c0 = MulAdd(Vector256.Create(al0[0]), b0, c0);
            c1 = MulAdd(Vector256.Create(al0[ars]), b0, c1);
            c2 = MulAdd(Vector256.Create(al0[2 * ars]), b0, c2);
            c3 = MulAdd(Vector256.Create(al0[3 * ars]), b0, c3);
        }
        var al = Vector256.Create(alpha);
        Store(c, c0, accumulate, al);
        Store(c + ldc, c1, accumulate, al);
        Store(c + 2 * ldc, c2, accumulate, al);
        Store(c + 3 * ldc, c3, accumulate, al);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x2<T>(T* a, int acs, T* b, int ldb, T* c, int k0, int k1, bool accumulate, T alpha) where T : unmanaged
    {
        int w = Vector256<T>.Count;
        Vector256<T> c0 = default, c1 = default;
        for (int l = k0; l < k1; l++)
        {
            T* bl = b + l * ldb;
            var x = Vector256.Create(a[l * acs]);
            c0 = MulAdd(x, Vector256.Load(bl), c0);
            c1 = MulAdd(x, Vector256.Load(bl + w), c1);
        }
        var al = Vector256.Create(alpha);
        Store(c, c0, accumulate, al);
        Store(c + w, c1, accumulate, al);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScalarBlock<T>(int rows, int cols, T* a, int ars, int acs, T* b, int ldb, T* c, int ldc, int k0, int k1,
        bool accumulate, T alpha) where T : unmanaged, INumber<T>
    {
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++)
            {
                T s = T.Zero;
                for (int l = k0; l < k1; l++) s += a[r * ars + l * acs] * b[l * ldb + j];
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + alpha * s : alpha * s;
            }
    }

    /// <summary><c>dst[j, i] = src[i, j]</c> for <c>src [rows, cols]</c> (leading dimensions given).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Transpose<T>(int rows, int cols, T* src, int lds, T* dst, int ldd) where T : unmanaged
    {
        if (typeof(T) == typeof(float) && Avx.IsSupported)
        {
            // 8 x 8 blocks by register shuffles; the edges element by element.
            int r8 = rows & ~7, c8 = cols & ~7;
            for (int i0 = 0; i0 < r8; i0 += 8)
                for (int j0 = 0; j0 < c8; j0 += 8)
                    Transpose8x8((float*)src + i0 * lds + j0, lds, (float*)dst + j0 * ldd + i0, ldd);
            for (int i = 0; i < rows; i++)
                for (int j = i < r8 ? c8 : 0; j < cols; j++) dst[j * ldd + i] = src[i * lds + j];
            return;
        }
        const int tile = 8;
        for (int i0 = 0; i0 < rows; i0 += tile)
        {
            int i1 = Math.Min(rows, i0 + tile);
            for (int j0 = 0; j0 < cols; j0 += tile)
            {
                int j1 = Math.Min(cols, j0 + tile);
                for (int i = i0; i < i1; i++)
                    for (int j = j0; j < j1; j++) dst[j * ldd + i] = src[i * lds + j];
            }
        }
    }

    /// <summary>One 8 x 8 float block: <c>dst[j, i] = src[i, j]</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds);
        var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds);
        var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds);
        var r7 = Avx.LoadVector256(src + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>Zeroes <c>c[i, j]</c> for <c>j &gt; i + diagonal</c> (0: keeps the diagonal, -1: strictly lower).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void MaskUpper<T>(int m, int n, T* c, int ldc, int diagonal) where T : unmanaged
    {
        for (int i = 0; i < m; i++)
        {
            int from = Math.Max(0, i + diagonal + 1);
            if (from < n) new Span<T>(c + i * ldc + from, n - from).Clear();
        }
    }
}
