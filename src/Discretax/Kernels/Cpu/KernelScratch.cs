using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Discretax.Kernels;

/// <summary>
/// The per-task scratch of the compiled chunk kernels: <c>blocks</c> 64-byte aligned blocks of at most
/// <c>largest</c> elements in one native allocation, handed out in order by <see cref="Take"/> (bounds-checked: a
/// kernel that takes more than it sized throws instead of overrunning), freed by <see cref="Dispose"/>.
/// </summary>
internal sealed unsafe class KernelScratch<T> : IDisposable where T : unmanaged
{
    private readonly T* _base;
    private readonly long _capacity;
    private long _used;

    /// <summary>Allocates room for <paramref name="blocks"/> blocks of at most <paramref name="largest"/> elements.</summary>
    internal KernelScratch(int blocks, long largest)
    {
        _capacity = blocks * ((largest + 15) / 16 * 16);
        _base = (T*)NativeMemory.AlignedAlloc((nuint)(_capacity * sizeof(T)), 64);
    }

    /// <summary>The next block of <paramref name="count"/> elements (uninitialized).</summary>
    internal T* Take(long count)
    {
        long size = (count + 15) / 16 * 16;
        if (_used + size > _capacity) throw new InvalidOperationException("Compiled chunk kernel: scratch exhausted.");
        T* p = _base + _used;
        _used += size;
        return p;
    }

    /// <summary>Frees the allocation.</summary>
    public void Dispose() => NativeMemory.AlignedFree(_base);
}

/// <summary>The vector loops over rows that the compiled chunk kernels share (float32 / float64).</summary>
internal static unsafe class KernelVectors
{
    /// <summary><c>x . y</c> over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static T Dot<T>(int n, T* x, T* y) where T : unmanaged, INumber<T>
    {
        T s = T.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var acc = Vector<T>.Zero;
            for (; i + Vector<T>.Count <= n; i += Vector<T>.Count) acc += Vector.Load(x + i) * Vector.Load(y + i);
            s = Vector.Sum(acc);
        }
        for (; i < n; i++) s += x[i] * y[i];
        return s;
    }

    /// <summary><c>y += a x</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Axpy<T>(int n, T a, T* x, T* y) where T : unmanaged, INumber<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var va = new Vector<T>(a);
            for (; i + Vector<T>.Count <= n; i += Vector<T>.Count) (Vector.Load(y + i) + va * Vector.Load(x + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] += a * x[i];
    }

    /// <summary><c>y = a x</c> (<paramref name="y"/> may be <paramref name="x"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Scale<T>(int n, T a, T* x, T* y) where T : unmanaged, INumber<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var va = new Vector<T>(a);
            for (; i + Vector<T>.Count <= n; i += Vector<T>.Count) (va * Vector.Load(x + i)).Store(y + i);
        }
        for (; i < n; i++) y[i] = a * x[i];
    }

    /// <summary>Row i of <paramref name="dst"/> = <c>scale[i]</c> times row i of <paramref name="src"/> (<c>[rows, cols]</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ScaleRows<T>(int rows, int cols, T* scale, T* src, T* dst) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < rows; i++) Scale(cols, scale[i], src + i * cols, dst + i * cols);
    }

    /// <summary><c>x *= y</c> elementwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void MulInPlace<T>(int n, T* x, T* y) where T : unmanaged, INumber<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
            for (; i + Vector<T>.Count <= n; i += Vector<T>.Count) (Vector.Load(x + i) * Vector.Load(y + i)).Store(x + i);
        for (; i < n; i++) x[i] *= y[i];
    }

    /// <summary>The maximum of <c>x[0..n)</c>, n at least 1 (the inputs hold no NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static T Max<T>(int n, T* x) where T : unmanaged, INumber<T>
    {
        int i = 0;
        T best = x[0];
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            var acc = Vector.Load(x);
            for (i = Vector<T>.Count; i + Vector<T>.Count <= n; i += Vector<T>.Count) acc = Vector.Max(acc, Vector.Load(x + i));
            best = acc[0];
            for (int l = 1; l < Vector<T>.Count; l++) best = T.Max(best, acc[l]);
        }
        for (; i < n; i++) best = T.Max(best, x[i]);
        return best;
    }

    /// <summary><c>exp(x)</c> of a scalar.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static T Exp<T>(T x) where T : unmanaged, INumber<T> =>
        typeof(T) == typeof(float) ? (T)(object)MathF.Exp((float)(object)x) : (T)(object)Math.Exp((double)(object)x);

    /// <summary><c>x[i] = exp(x[i] - shift)</c> for i in [0, n) (<c>exp(-inf) = 0</c>), vectorized.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ExpShifted<T>(int n, T* x, T shift) where T : unmanaged, INumber<T>
    {
        int w = Vector256<T>.Count, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(shift);
            for (; i + w <= n; i += w)
            {
                var d = Vector256.Load(x + i) - vs;
                (typeof(T) == typeof(float) ? Vector256.Exp(d.AsSingle()).As<float, T>() : Vector256.Exp(d.AsDouble()).As<double, T>()).Store(x + i);
            }
        }
        for (; i < n; i++) x[i] = Exp(x[i] - shift);
    }

    /// <summary>
    /// The in-chunk decays of the log decays <paramref name="steps"/> (gated delta rule's g, SSD's a): <c>gamma [C, C]</c>
    /// with <c>gamma_ij = exp(steps_{j+1} + ... + steps_i)</c> for <c>j &lt;= i</c> (the sums accumulated down the
    /// columns, never as differences of cumulative sums) and 0 above the diagonal (<c>exp(-inf)</c>);
    /// <c>e_i = exp(steps_1 + ... + steps_i)</c>; <c>last_i = gamma_{C-1, i}</c>. Returns <c>e_C</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static T SegmentDecays<T>(int c, T* steps, T* gamma, T* e, T* last) where T : unmanaged, INumber<T>
    {
        T negInf = T.CreateTruncating(double.NegativeInfinity);
        T cum = T.Zero;
        for (int i = 0; i < c; i++)
        {
            T* row = gamma + i * c;
            if (i > 0)
            {
                T* prev = gamma + (i - 1) * c;
                for (int j = 0; j < i; j++) row[j] = prev[j] + steps[i];
            }
            row[i] = T.Zero;
            if (i + 1 < c) new Span<T>(row + i + 1, c - i - 1).Fill(negInf);
            cum += steps[i];
            e[i] = cum;
        }
        ExpShifted(c * c, gamma, T.Zero);
        ExpShifted(c, e, T.Zero);
        for (int i = 0; i < c; i++) last[i] = gamma[(c - 1) * c + i];
        return e[c - 1];
    }
}
