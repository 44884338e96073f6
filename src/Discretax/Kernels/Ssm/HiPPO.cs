using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The HiPPO-LegS state matrix (Gu et al. 2020, "HiPPO: Recurrent Memory with Optimal Polynomial Projections",
/// https://arxiv.org/abs/2008.07669) and its normal-plus-low-rank (NPLR) and diagonal-plus-low-rank (DPLR)
/// forms (Gu, Goel, Ré 2022, S4, https://arxiv.org/abs/2111.00396), as used to initialize S5 (Smith, Warrington,
/// Linderman 2023, https://arxiv.org/abs/2208.04933; lindermanlab/S5 <c>ssm_init.py</c>).
/// </summary>
/// <remarks>
/// <para>With <c>n, k = 0 .. N-1</c>:</para>
/// <code>
/// A[n, k] = -sqrt(2n+1) sqrt(2k+1)   (n &gt; k),    -(n+1)   (n = k),    0   (n &lt; k)      (HiPPO-LegS)
/// P[n]    = sqrt(n + 1/2),            B[n] = sqrt(2n+1)
/// S       = A + P P^T = -1/2 I + K,   K = -K^T  (K[n, k] = -1/2 sqrt(2n+1) sqrt(2k+1) sign(n - k))
/// </code>
/// <para>
/// S is normal (a multiple of the identity plus a skew-symmetric matrix), so it is unitarily diagonalizable:
/// <c>S = V diag(Lambda) V^*</c> with <c>Re Lambda = mean(diag S) = -1/2</c> and <c>Im Lambda</c> the eigenvalues
/// of the Hermitian matrix <c>-i K</c>. They are computed here in float64 with <c>torch.linalg.eigh</c> on
/// <c>-i K</c> (the reference calls <c>eigh(-i S)</c>, which reads the lower triangle only and ignores the
/// imaginary part of the diagonal, so it diagonalizes the same matrix); eigh returns them in ascending order, so
/// for even N the first half has negative imaginary parts and the second half holds their conjugates.
/// </para>
/// </remarks>
public static class HiPPO
{
    /// <summary>The HiPPO-LegS matrix <c>A [N, N]</c> (lower triangular, diagonal <c>-(n+1)</c>), float64 on the CPU.</summary>
    /// <param name="n">The state size N, at least 1.</param>
    public static Tensor LegS(long n)
    {
        Check.AtLeast(n, 1);
        using var scope = NewDisposeScope();
        var p = (arange(n, dtype: ScalarType.Float64) * 2.0 + 1.0).sqrt();
        var a = (p.unsqueeze(1) * p.unsqueeze(0)).tril() - diag(arange(n, dtype: ScalarType.Float64));
        return (-a).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The normal-plus-low-rank form of HiPPO-LegS: <c>A [N, N]</c> (see <see cref="LegS"/>), the low-rank factor
    /// <c>P[n] = sqrt(n + 1/2)</c> (so that <c>A + P P^T</c> is normal) and the HiPPO input vector <c>B[n] = sqrt(2n+1)</c>,
    /// all float64 on the CPU.
    /// </summary>
    /// <param name="n">The state size N, at least 1.</param>
    public static (Tensor A, Tensor P, Tensor B) LegSNplr(long n)
    {
        Check.AtLeast(n, 1);
        using var scope = NewDisposeScope();
        var a = LegS(n);
        var idx = arange(n, dtype: ScalarType.Float64);
        var p = (idx + 0.5).sqrt();
        var b = (idx * 2.0 + 1.0).sqrt();
        return (a.MoveToOuterDisposeScope(), p.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The diagonal-plus-low-rank form of HiPPO-LegS: <c>S = A + P P^T = V diag(Lambda) V^*</c>, computed in float64.
    /// </summary>
    /// <param name="n">The state size N, at least 1.</param>
    /// <returns>
    /// <c>Lambda [N]</c> complex128 (<c>Re = mean(diag S) = -1/2</c>, imaginary parts ascending),
    /// <c>P [N]</c> complex128 = <c>V^* P</c>, <c>B [N]</c> complex128 = <c>V^* B</c>, <c>V [N, N]</c> complex128 unitary
    /// (columns are eigenvectors), and the original real <c>BOrig [N]</c> float64; all on the CPU.
    /// </returns>
    public static (Tensor Lambda, Tensor P, Tensor B, Tensor V, Tensor BOrig) LegSDplr(long n)
    {
        Check.AtLeast(n, 1);
        using var scope = NewDisposeScope();
        var (a, p, b) = LegSNplr(n);
        var s = a + p.unsqueeze(1) * p.unsqueeze(0);
        var lambdaRe = s.diagonal().mean();
        var skew = (s - s.t()) * 0.5;                                        // K, exactly skew-symmetric
        var hermitian = complex(zeros_like(skew), -skew);                   // -i K
        var (lambdaIm, v) = linalg.eigh(hermitian);
        var lambda = complex(lambdaRe.expand(n).contiguous(), lambdaIm);
        var vh = v.conj().t();
        var pt = vh.matmul(p.to(ScalarType.ComplexFloat64));
        var bt = vh.matmul(b.to(ScalarType.ComplexFloat64));
        return (lambda.MoveToOuterDisposeScope(), pt.MoveToOuterDisposeScope(), bt.MoveToOuterDisposeScope(),
            v.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope());
    }
}
