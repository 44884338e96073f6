using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// <c>T = (I + A)^{-1}</c> for a batch of strictly lower-triangular <c>A</c> <c>[..., C, C]</c> (the UT transform
/// of the chunkwise delta rule; the diagonal and upper part of <c>A</c> are never read), as a custom autograd
/// function.
/// </summary>
/// <remarks>
/// Forward, without autograd, by block doubling into one buffer: starting from the 1 x 1 diagonal blocks
/// (<c>T = 1</c>), each level merges two neighbouring inverted s x s blocks <c>T11, T22</c> into the inverse of
/// their 2s x 2s diagonal block by writing <c>T21 = -T22 A21 T11</c> below them. log2(C) levels of batched
/// products; exact (the formula of the blocked forward substitution, no series truncation). A chunk that is
/// not a power of two is padded with zeros (identity) and cut back.
/// On CPU (float32 / float64) the forward is instead a row-wise forward substitution in C# over the contiguous
/// memory, vectorized along rows and parallel over matrices (<c>T[i, :] = e_i - sum_{l &lt; i} A[i, l] T[l, :]</c>,
/// about C^3/6 multiply-adds per matrix): the doubling levels cost many tiny matrix products there
/// (docs/kernels/linear-scan.md). Both forward paths are tested on CPU against <c>linalg.solve_triangular</c>.
/// Backward: from <c>dT = -T dA T</c>, <c>dL/dA = -tril(T^T G T^T, -1)</c> for the incoming gradient <c>G</c>.
/// </remarks>
internal sealed class UnitLowerInverse : autograd.SingleTensorFunction<UnitLowerInverse>
{
    /// <summary>The function's name in the autograd graph.</summary>
    public override string Name => "DeltaRuleUnitLowerInverse";

    /// <summary><c>(I + A)^{-1}</c> for <c>A</c> <c>[..., C, C]</c> (only its strictly lower part is read).</summary>
    /// <param name="a">The strictly lower-triangular part <c>[..., C, C]</c>.</param>
    /// <param name="path"><see cref="KernelPath.Auto"/> (the C# forward substitution for CPU float32/float64, block
    /// doubling elsewhere) or <see cref="KernelPath.Tensor"/> (block doubling on any device; tests).</param>
    public static Tensor Invert(Tensor a, KernelPath path = KernelPath.Auto)
    {
        // A scope of its own: the forward's own result wrapper (TorchSharp hands out a new one) is released here.
        using var scope = NewDisposeScope();
        return apply(a, path).MoveToOuterDisposeScope();
    }

    private static bool UsesCpuLoop(Tensor a, KernelPath path) =>
        path == KernelPath.Auto && a.device_type == DeviceType.CPU && a.dtype is ScalarType.Float32 or ScalarType.Float64;

    /// <inheritdoc/>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var a = (Tensor)vars[0];
        var path = vars.Length > 1 && vars[1] is KernelPath p0 ? p0 : KernelPath.Auto;
        using var scope = NewDisposeScope();
        long c = a.shape[^1];
        long m = a.numel() / (c * c);
        long p = 1;
        while (p < c) p *= 2;
        if (UsesCpuLoop(a, path))
        {
            var ac = a.reshape(m, c, c).contiguous();
            var tc = zeros(new[] { m, c, c }, dtype: a.dtype, device: a.device);
            if (a.dtype == ScalarType.Float32) InvertCpu<float>(ac, tc); else InvertCpu<double>(ac, tc);
            var r = tc.reshape(a.shape);
            ctx.save_for_backward(new List<Tensor> { r });
            return r.MoveToOuterDisposeScope();
        }

        var a3 = a.reshape(m, c, c);
        if (p != c) a3 = nn.functional.pad(a3, new long[] { 0, p - c, 0, p - c });

        var t = zeros(new[] { m, p, p }, dtype: a.dtype, device: a.device);
        t.diagonal(0, 1, 2).fill_(1);
        for (long s = 1; s < p; s *= 2)
        {
            long pairs = p / (2 * s);
            // The pairs' 2s x 2s diagonal blocks as views [M, pairs, 2s, 2s] split into s x s quarters.
            var tb = t.reshape(m, pairs, 2, s, pairs, 2, s).diagonal(0, 1, 4);   // [M, 2, s, 2, s, pairs]
            var ab = a3.reshape(m, pairs, 2, s, pairs, 2, s).diagonal(0, 1, 4);
            var t11 = tb.select(1, 0).select(2, 0).permute(0, 3, 1, 2);          // [M, pairs, s, s]
            var t22 = tb.select(1, 1).select(2, 1).permute(0, 3, 1, 2);
            var t21 = tb.select(1, 1).select(2, 0).permute(0, 3, 1, 2);
            var a21 = ab.select(1, 1).select(2, 0).permute(0, 3, 1, 2);
            var value = s == 1 ? t22 * a21 * t11 : t22.matmul(a21).matmul(t11);
            t21.copy_(value.neg_());
        }
        if (p != c) t = t[TensorIndex.Colon, TensorIndex.Slice(0, c), TensorIndex.Slice(0, c)].contiguous();
        var result = t.reshape(a.shape);
        ctx.save_for_backward(new List<Tensor> { result });
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Row-wise forward substitution of <c>(I + A) T = I</c> on contiguous CPU tensors <c>[M, C, C]</c>; <paramref name="t"/> starts as zeros.</summary>
    private static unsafe void InvertCpu<T>(Tensor a, Tensor t) where T : unmanaged, INumber<T>
    {
        long m = a.shape[0];
        int c = (int)a.shape[1];
        using var sa = a.storage<T>();
        using var st = t.storage<T>();
        nint pa = (nint)((T*)sa.data_ptr() + a.storage_offset());
        nint pt = (nint)((T*)st.data_ptr() + t.storage_offset());
        const long perTask = 16;
        Parallel.For(0, (m + perTask - 1) / perTask, task =>
        {
            long end = Math.Min(m, (task + 1) * perTask);
            for (long idx = task * perTask; idx < end; idx++)
            {
                T* am = (T*)pa + idx * c * c;
                T* tm = (T*)pt + idx * c * c;
                for (int i = 0; i < c; i++)
                {
                    T* ti = tm + i * c;
                    T* ai = am + i * c;
                    ti[i] = T.One;
                    for (int l = 0; l < i; l++)
                    {
                        T coef = ai[l];
                        if (coef == T.Zero) continue;
                        T* tl = tm + l * c;
                        int len = l + 1;                     // T[l, j] = 0 for j > l
                        int j = 0;
                        if (Vector.IsHardwareAccelerated && len >= Vector<T>.Count)
                        {
                            var vc = new Vector<T>(coef);
                            for (; j <= len - Vector<T>.Count; j += Vector<T>.Count)
                                (Vector.Load(ti + j) - vc * Vector.Load(tl + j)).Store(ti + j);
                        }
                        for (; j < len; j++) ti[j] -= coef * tl[j];
                    }
                }
            }
        });
        GC.KeepAlive(a);
        GC.KeepAlive(t);
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        AutogradBuffers.Flush();
        Tensor gradA;
        using (var scope = NewDisposeScope())
        {
            var t = ctx.get_saved_variables()[0];
            var tt = t.transpose(-1, -2);
            gradA = tt.matmul(gradOutput).matmul(tt).tril(-1).neg_().MoveToOuterDisposeScope();
        }
        AutogradBuffers.Release(gradOutput);
        // The second entry stands for the non-tensor argument (the path).
        return AutogradBuffers.Return(gradA, null);
    }
}
