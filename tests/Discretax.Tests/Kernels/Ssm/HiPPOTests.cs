using System.Numerics;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class HiPPOTests
{
    /// <summary>HiPPO-LegS, its low-rank factor and input vector against the hand-written entries (exact up to 1e-14).</summary>
    [Fact]
    public void LegSEntriesFollowTheFormulas()
    {
        const int n = 6;
        var (aT, pT, bT) = HiPPO.LegSNplr(n);
        using var _a = aT; using var _p = pT; using var _b = bT;
        aT.shape.Should().Equal(n, n);
        aT.dtype.Should().Be(ScalarType.Float64);
        var a = TestUtil.Values(aT); var p = TestUtil.Values(pT); var b = TestUtil.Values(bT);
        for (int i = 0; i < n; i++)
        {
            p[i].Should().BeApproximately(Math.Sqrt(i + 0.5), 1e-14);
            b[i].Should().BeApproximately(Math.Sqrt(2 * i + 1), 1e-14);
            for (int k = 0; k < n; k++)
            {
                double expected = i > k ? -Math.Sqrt(2 * i + 1) * Math.Sqrt(2 * k + 1) : i == k ? -(i + 1) : 0.0;
                a[i * n + k].Should().BeApproximately(expected, 1e-13, $"A[{i}, {k}]");
                // S = A + P P^T = -1/2 I + skew-symmetric.
                double s = a[i * n + k] + p[i] * p[k], sT = a[k * n + i] + p[k] * p[i];
                (s + sT).Should().BeApproximately(i == k ? -1.0 : 0.0, 1e-13, $"S + S^T at [{i}, {k}]");
            }
        }
        using var legS = HiPPO.LegS(n);
        TestUtil.MaxAbsDiff(legS, aT).Should().Be(0);
    }

    /// <summary>
    /// The DPLR diagonalization against an independent float64 eigensolver: the eigenvalues of the real, non-symmetric
    /// matrix S = A + P P^T from torch.linalg.eigvals (general eig, not eigh) equal Lambda as multisets to 1e-9; V is
    /// unitary, S V = V diag(Lambda), and V P~ = P, V B~ = B (1e-12). Re Lambda = -1/2; Im Lambda ascending, symmetric.
    /// </summary>
    [Theory]
    [InlineData(8)]
    [InlineData(7)]
    [InlineData(1)]
    public void DplrDiagonalizesTheNormalPart(int n)
    {
        using var scope = NewDisposeScope();
        var (a, p, b) = HiPPO.LegSNplr(n);
        var s = a + p.unsqueeze(1) * p.unsqueeze(0);
        var (lambda, pt, bt, v, bOrig) = HiPPO.LegSDplr(n);
        lambda.dtype.Should().Be(ScalarType.ComplexFloat64);
        v.shape.Should().Equal(n, n);

        var reference = ToComplex(linalg.eigvals(s)).ToList();
        var ours = ToComplex(lambda);
        foreach (var z in ours)
        {
            var nearest = reference.MinBy(r => (r - z).Magnitude);
            (nearest - z).Magnitude.Should().BeLessThan(1e-9, $"eigenvalue {z} of the DPLR form is an eigenvalue of S");
            reference.Remove(nearest);
        }
        reference.Should().BeEmpty();

        for (int i = 0; i < n; i++)
        {
            ours[i].Real.Should().BeApproximately(-0.5, 1e-14);
            if (i > 0) ours[i].Imaginary.Should().BeGreaterThan(ours[i - 1].Imaginary);
            ours[i].Imaginary.Should().BeApproximately(-ours[n - 1 - i].Imaginary, 1e-9);
        }

        var eye = torch.eye(n, dtype: ScalarType.ComplexFloat64);
        TestUtil.MaxAbsDiff((v.conj().t().matmul(v) - eye).abs(), zeros(n, n, dtype: ScalarType.Float64)).Should().BeLessThan(1e-12);
        var sc = s.to(ScalarType.ComplexFloat64);
        ((sc.matmul(v) - v * lambda.unsqueeze(0)).abs().max().item<double>()).Should().BeLessThan(1e-12);
        ((v.matmul(pt) - p.to(ScalarType.ComplexFloat64)).abs().max().item<double>()).Should().BeLessThan(1e-12);
        ((v.matmul(bt) - bOrig.to(ScalarType.ComplexFloat64)).abs().max().item<double>()).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void SizeBelowOneThrows()
    {
        ((Action)(() => HiPPO.LegS(0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("n");
        ((Action)(() => HiPPO.LegSDplr(0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("n");
    }

    internal static Complex[] ToComplex(Tensor z)
    {
        var re = TestUtil.Values(z.real); var im = TestUtil.Values(z.imag);
        return re.Select((r, i) => new Complex(r, im[i])).ToArray();
    }
}
