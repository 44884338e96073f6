using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class ComplexProjectionTests
{
    /// <summary>
    /// Both maps against scalar complex arithmetic (System.Numerics.Complex), forward in float64 to 1e-12, and their
    /// gradients against autograd through the split form <c>complex(u W_re^T, u W_im^T)</c>, <c>Re(h) C_re^T - Im(h) C_im^T</c>.
    /// </summary>
    [Fact]
    public void MapsMatchScalarComplexArithmeticAndTheSplitFormsGradients()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(31);
        const int b = 2, l = 3, h = 4, n = 5;
        var u = TestUtil.Randn(g, new long[] { b, l, h }).requires_grad_();
        var wRe = TestUtil.Randn(g, new long[] { n, h }).requires_grad_();
        var wIm = TestUtil.Randn(g, new long[] { n, h }).requires_grad_();
        var cRe = TestUtil.Randn(g, new long[] { h, n }).requires_grad_();
        var cIm = TestUtil.Randn(g, new long[] { h, n }).requires_grad_();

        var z = ComplexProjection.ToComplex(u, wRe, wIm);
        var y = ComplexProjection.RealPart(z, cRe, cIm);
        z.shape.Should().Equal(b, l, n);
        z.dtype.Should().Be(ScalarType.ComplexFloat64);
        y.shape.Should().Equal(b, l, h);

        double[] U = TestUtil.Values(u.detach()), WR = TestUtil.Values(wRe.detach()), WI = TestUtil.Values(wIm.detach());
        double[] CR = TestUtil.Values(cRe.detach()), CI = TestUtil.Values(cIm.detach());
        var zRe = TestUtil.Values(z.detach().real.contiguous()); var zIm = TestUtil.Values(z.detach().imag.contiguous());
        var Y = TestUtil.Values(y.detach());
        for (int p = 0; p < b * l; p++)
        {
            var zp = new System.Numerics.Complex[n];
            for (int k = 0; k < n; k++)
            {
                for (int c = 0; c < h; c++) zp[k] += new System.Numerics.Complex(WR[k * h + c], WI[k * h + c]) * U[p * h + c];
                zRe[p * n + k].Should().BeApproximately(zp[k].Real, 1e-12);
                zIm[p * n + k].Should().BeApproximately(zp[k].Imaginary, 1e-12);
            }
            for (int c = 0; c < h; c++)
            {
                System.Numerics.Complex acc = 0;
                for (int k = 0; k < n; k++) acc += new System.Numerics.Complex(CR[c * n + k], CI[c * n + k]) * zp[k];
                Y[p * h + c].Should().BeApproximately(acc.Real, 1e-12);
            }
        }

        var weight = TestUtil.Randn(g, new long[] { b, l, h });
        var leaves = new[] { u, wRe, wIm, cRe, cIm };
        (y * weight).sum().backward();
        var fast = leaves.Select(t => t.grad!.clone()).ToArray();
        foreach (var t in leaves) t.grad!.zero_();
        var zs = complex(u.matmul(wRe.t()), u.matmul(wIm.t()));
        var ys = zs.real.matmul(cRe.t()) - zs.imag.matmul(cIm.t());
        (ys * weight).sum().backward();
        for (int i = 0; i < leaves.Length; i++)
            TestUtil.MaxAbsDiff(fast[i], leaves[i].grad!).Should().BeLessThan(1e-12, $"gradient of leaf {i}");
    }
}
