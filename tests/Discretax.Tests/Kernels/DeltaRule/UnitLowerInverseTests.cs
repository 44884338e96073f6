using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class UnitLowerInverseTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(3, false)]
    [InlineData(37, false)]
    [InlineData(64, false)]
    [InlineData(1, true)]
    [InlineData(3, true)]
    [InlineData(37, true)]
    [InlineData(64, true)]
    public void InverseAndGradientMatchSolveTriangular(long c, bool tensorPath)
    {
        using var scope = NewDisposeScope();
        var g = new Generator((ulong)(c * 3 + (tensorPath ? 1 : 0)));
        // Entries of A as in the delta rule: beta_i k_i . k_j with unit keys (|A| < 1); the upper part is noise that must be ignored.
        var a = (randn(new[] { 2L, 3, c, c }, dtype: ScalarType.Float64, generator: g) * 0.4).requires_grad_();
        var weight = randn(new[] { 2L, 3, c, c }, dtype: ScalarType.Float64, generator: g);

        var t = UnitLowerInverse.Invert(a, tensorPath ? KernelPath.Tensor : KernelPath.Auto);
        (t * weight).sum().backward();
        var grad = a.grad!.clone();

        var a2 = a.detach().clone().requires_grad_();
        var eye = torch.eye(c, dtype: ScalarType.Float64).expand(2, 3, c, c);
        var tRef = linalg.solve_triangular(eye + a2.tril(-1), eye, upper: false, left: true, unitriangular: true);
        (tRef * weight).sum().backward();

        (t - tRef).abs().max().item<double>().Should().BeLessThan(1e-12);
        (grad - a2.grad!).abs().max().item<double>().Should().BeLessThan(1e-12);
        if (c > 1) a2.grad!.abs().max().item<double>().Should().BeGreaterThan(1e-3);
    }
}
