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
/// Backward: from <c>dT = -T dA T</c>, <c>dL/dA = -tril(T^T G T^T, -1)</c> for the incoming gradient <c>G</c>.
/// </remarks>
internal sealed class UnitLowerInverse : autograd.SingleTensorFunction<UnitLowerInverse>
{
    /// <summary>The function's name in the autograd graph.</summary>
    public override string Name => "DeltaRuleUnitLowerInverse";

    /// <summary><c>(I + A)^{-1}</c> for <c>A</c> <c>[..., C, C]</c> (only its strictly lower part is read).</summary>
    public static Tensor Invert(Tensor a) => apply(a);

    /// <inheritdoc/>
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var a = (Tensor)vars[0];
        using var scope = NewDisposeScope();
        long c = a.shape[^1];
        long m = a.numel() / (c * c);
        long p = 1;
        while (p < c) p *= 2;
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

    /// <inheritdoc/>
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        using var scope = NewDisposeScope();
        var t = ctx.get_saved_variables()[0];
        var tt = t.transpose(-1, -2);
        var gradA = tt.matmul(gradOutput).matmul(tt).tril(-1).neg_();
        return new List<Tensor> { gradA.MoveToOuterDisposeScope() };
    }
}
