using System.Numerics;
using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class SsmKernelsTests
{
    private sealed record System64(Tensor LogDt, Tensor AReal, Tensor AImag, Tensor CReal, Tensor CImag);

    /// <summary>A random S4D system in float64 with Lin or Inv A; dt ~ logU(0.01, 0.5) so that the response lasts.</summary>
    private static System64 RandomSystem(long channels, long stateDim, bool inverse, ulong seed)
    {
        var g = new Generator(seed);
        var (logAReal, aImag) = inverse
            ? SsmKernels.S4DInvInit(channels, stateDim, ScalarType.Float64)
            : SsmKernels.S4DLinInit(channels, stateDim, ScalarType.Float64);
        // Perturb the init so that channels and modes differ (the test must see every (h, n) separately).
        var aReal = -(logAReal + 0.3 * randn(logAReal.shape, dtype: ScalarType.Float64, generator: g)).exp();
        var aIm = aImag + 0.1 * randn(aImag.shape, dtype: ScalarType.Float64, generator: g);
        var logDt = rand(new[] { channels }, dtype: ScalarType.Float64, generator: g) * (Math.Log(0.5) - Math.Log(0.01)) + Math.Log(0.01);
        var cRe = randn(aImag.shape, dtype: ScalarType.Float64, generator: g);
        var cIm = randn(aImag.shape, dtype: ScalarType.Float64, generator: g);
        return new System64(logDt, aReal, aIm, cRe, cIm);
    }

    /// <summary>The discretization written out with System.Numerics.Complex, independently of the library.</summary>
    private static (Complex DA, Complex DB) DiscretizeScalar(double dt, Complex a, Discretization d) =>
        d == Discretization.Zoh
            ? (Complex.Exp(dt * a), (Complex.Exp(dt * a) - 1) / a)
            : ((1 + dt * a / 2) / (1 - dt * a / 2), dt / (1 - dt * a / 2));

    /// <summary>Runs x_t = dA x_{t-1} + dB u_t, y_t = 2 Re sum_n C_n x_t step by step; u [L] per channel (same for all).</summary>
    private static double[,] Recurrence(System64 s, Discretization d, Func<long, long, double> input, long length)
    {
        var logDt = s.LogDt.data<double>().ToArray();
        var ar = s.AReal.data<double>().ToArray();
        var ai = s.AImag.data<double>().ToArray();
        var cr = s.CReal.data<double>().ToArray();
        var ci = s.CImag.data<double>().ToArray();
        long channels = s.AReal.shape[0], modes = s.AReal.shape[1];
        var y = new double[channels, length];
        for (long h = 0; h < channels; h++)
        {
            double dt = Math.Exp(logDt[h]);
            var x = new Complex[modes];
            for (long t = 0; t < length; t++)
            {
                double acc = 0;
                for (long n = 0; n < modes; n++)
                {
                    long i = h * modes + n;
                    var (dA, dB) = DiscretizeScalar(dt, new Complex(ar[i], ai[i]), d);
                    x[n] = dA * x[n] + dB * input(h, t);
                    acc += 2 * (new Complex(cr[i], ci[i]) * x[n]).Real;
                }
                y[h, t] = acc;
            }
        }
        return y;
    }

    private static Tensor Kernel(System64 s, long length, Discretization d, long? chunkSize = null) =>
        SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag, length, d, chunkSize);

    private static double MaxAbs(Tensor t) => t.abs().max().item<double>();

    [Theory]
    [InlineData(Discretization.Zoh, false)]
    [InlineData(Discretization.Zoh, true)]
    [InlineData(Discretization.Bilinear, false)]
    [InlineData(Discretization.Bilinear, true)]
    public void KernelIsTheImpulseResponseOfTheRecurrence(Discretization d, bool inverse)
    {
        using var scope = NewDisposeScope();
        long channels = 3, stateDim = 8, length = 37;
        var s = RandomSystem(channels, stateDim, inverse, seed: 21);
        var k = Kernel(s, length, d, chunkSize: 8);   // 37 is not a multiple of the chunk
        k.shape.Should().Equal(channels, length);
        k.dtype.Should().Be(ScalarType.Float64);
        var impulse = Recurrence(s, d, (h, t) => t == 0 ? 1.0 : 0.0, length);
        var reference = tensor(impulse.Cast<double>().ToArray(), dtype: ScalarType.Float64).reshape(channels, length);
        // Both sides are float64 evaluations of the same closed form / loop: agreement to ~1e-12 of the kernel's scale.
        MaxAbs(k - reference).Should().BeLessThan(1e-11 * Math.Max(1, MaxAbs(reference)));
        MaxAbs(reference).Should().BeGreaterThan(0.01, "the test must compare a nontrivial response");
    }

    [Theory]
    [InlineData(Discretization.Zoh)]
    [InlineData(Discretization.Bilinear)]
    public void KernelConvolutionEqualsTheRecurrenceOnARandomInput(Discretization d)
    {
        using var scope = NewDisposeScope();
        long channels = 2, length = 29;
        var s = RandomSystem(channels, 6, inverse: false, seed: 22);
        var g = new Generator(23);
        var u = randn(new[] { 1, length, channels }, dtype: ScalarType.Float64, generator: g);
        var ud = u.data<double>().ToArray();
        var y = FftConvolution.Causal(u, Kernel(s, length, d));
        var reference = Recurrence(s, d, (h, t) => ud[t * channels + h], length);
        var refT = tensor(reference.Cast<double>().ToArray(), dtype: ScalarType.Float64).reshape(channels, length).t().unsqueeze(0);
        MaxAbs(y - refT).Should().BeLessThan(1e-10 * Math.Max(1, MaxAbs(refT)));
    }

    [Theory]
    [InlineData(Discretization.Zoh)]
    [InlineData(Discretization.Bilinear)]
    public void DiscretizeMatchesTheScalarFormulas(Discretization d)
    {
        using var scope = NewDisposeScope();
        var s = RandomSystem(3, 10, inverse: true, seed: 24);
        var (dA, dB) = SsmKernels.Discretize(s.LogDt, s.AReal, s.AImag, d);
        dA.dtype.Should().Be(ScalarType.ComplexFloat64);
        dA.shape.Should().Equal(3, 5);
        var logDt = s.LogDt.data<double>().ToArray();
        var ar = s.AReal.data<double>().ToArray();
        var ai = s.AImag.data<double>().ToArray();
        var dAr = dA.real.contiguous().data<double>().ToArray();
        var dAi = dA.imag.contiguous().data<double>().ToArray();
        var dBr = dB.real.contiguous().data<double>().ToArray();
        var dBi = dB.imag.contiguous().data<double>().ToArray();
        for (int i = 0; i < ar.Length; i++)
        {
            var (ea, eb) = DiscretizeScalar(Math.Exp(logDt[i / 5]), new Complex(ar[i], ai[i]), d);
            new Complex(dAr[i], dAi[i]).Should().Match<Complex>(z => (z - ea).Magnitude < 1e-13);
            new Complex(dBr[i], dBi[i]).Should().Match<Complex>(z => (z - eb).Magnitude < 1e-13 * Math.Max(1, eb.Magnitude));
        }
    }

    [Fact]
    public void ChunkedKernelEqualsUnchunked()
    {
        using var scope = NewDisposeScope();
        var s = RandomSystem(4, 12, inverse: false, seed: 25);
        foreach (var d in new[] { Discretization.Zoh, Discretization.Bilinear })
        {
            var whole = Kernel(s, 101, d, chunkSize: 101);
            foreach (var c in new long?[] { 1, 7, 50, 100, 1000, null })
                MaxAbs(Kernel(s, 101, d, c) - whole).Should().BeLessThan(1e-13, $"chunk {c}, {d}");
        }
    }

    [Theory]
    [InlineData(Discretization.Zoh)]
    [InlineData(Discretization.Bilinear)]
    public void GradientsMatchFiniteDifferences(Discretization d)
    {
        using var scope = NewDisposeScope();
        long length = 6;
        var s = RandomSystem(2, 4, inverse: false, seed: 26);
        var w = randn(new[] { 2, length }, dtype: ScalarType.Float64, generator: new Generator(27));
        var parameters = new[] { s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag }.Select(p => p.detach().clone().requires_grad_()).ToArray();
        double Loss(Tensor[] p) => (SsmKernels.S4DKernel(p[0], p[1], p[2], p[3], p[4], length, d) * w).sum().item<double>();

        (SsmKernels.S4DKernel(parameters[0], parameters[1], parameters[2], parameters[3], parameters[4], length, d) * w).sum().backward();
        const double eps = 1e-6;
        for (int j = 0; j < parameters.Length; j++)
        {
            var grad = parameters[j].grad;
            grad.Should().NotBeNull($"parameter {j} must receive a gradient");
            var analytic = grad!.data<double>().ToArray();
            for (int i = 0; i < analytic.Length; i++)
            {
                using var noGrad = no_grad();
                var plus = parameters.Select(p => p.detach().clone()).ToArray();
                var minus = parameters.Select(p => p.detach().clone()).ToArray();
                plus[j].view(-1)[i] = plus[j].view(-1)[i] + eps;
                minus[j].view(-1)[i] = minus[j].view(-1)[i] - eps;
                double numeric = (Loss(plus) - Loss(minus)) / (2 * eps);
                // Central differences: truncation ~eps^2 * f''' and rounding ~1e-16 / eps = 1e-10.
                Math.Abs(analytic[i] - numeric).Should().BeLessThan(1e-7 * Math.Max(1, Math.Abs(numeric)), $"parameter {j}, element {i}");
            }
            analytic.Any(v => Math.Abs(v) > 1e-6).Should().BeTrue($"parameter {j} must get a nonzero gradient");
        }
    }

    [Fact]
    public void Float32KernelMatchesFloat64()
    {
        using var scope = NewDisposeScope();
        var s = RandomSystem(4, 64, inverse: false, seed: 28);
        var reference = Kernel(s, 500, Discretization.Zoh);
        var k32 = SsmKernels.S4DKernel(s.LogDt.to_type(ScalarType.Float32), s.AReal.to_type(ScalarType.Float32), s.AImag.to_type(ScalarType.Float32),
            s.CReal.to_type(ScalarType.Float32), s.CImag.to_type(ScalarType.Float32), 500);
        k32.dtype.Should().Be(ScalarType.Float32);
        var diff = k32.to_type(ScalarType.Float64) - reference;
        double relRms = Math.Sqrt(diff.square().mean().item<double>() / reference.square().mean().item<double>());
        relRms.Should().BeLessThan(1e-4, "float32 phases l * dt * Im(A) lose ~1e-7 relative each");
    }

    [Fact]
    public void HalfPrecisionParametersGiveAHalfPrecisionKernel()
    {
        using var scope = NewDisposeScope();
        var s = RandomSystem(2, 8, inverse: false, seed: 29);
        var ps = new[] { s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag }.Select(p => p.to_type(ScalarType.BFloat16)).ToArray();
        var k = SsmKernels.S4DKernel(ps[0], ps[1], ps[2], ps[3], ps[4], 20);
        k.dtype.Should().Be(ScalarType.BFloat16);
        var reference = SsmKernels.S4DKernel(ps[0].to_type(ScalarType.Float64), ps[1].to_type(ScalarType.Float64), ps[2].to_type(ScalarType.Float64),
            ps[3].to_type(ScalarType.Float64), ps[4].to_type(ScalarType.Float64), 20);
        var diff = k.to_type(ScalarType.Float64) - reference;
        Math.Sqrt(diff.square().mean().item<double>() / reference.square().mean().item<double>()).Should().BeLessThan(1e-2, "only the final bf16 rounding");
        // Mixed: float32 C with bf16 A promotes to float32.
        SsmKernels.S4DKernel(ps[0], ps[1], ps[2], s.CReal.to_type(ScalarType.Float32), ps[4], 20).dtype.Should().Be(ScalarType.Float32);
    }

    [Fact]
    public void InitializationsHaveThePapersValues()
    {
        using var scope = NewDisposeScope();
        var (logRe, imLin) = SsmKernels.S4DLinInit(3, 8, ScalarType.Float64);
        logRe.shape.Should().Equal(3, 4);
        imLin.shape.Should().Equal(3, 4);
        logRe.data<double>().ToArray().Should().AllSatisfy(v => v.Should().BeApproximately(Math.Log(0.5), 1e-15));
        imLin[2].data<double>().ToArray().Should().Equal(new[] { 0, Math.PI, 2 * Math.PI, 3 * Math.PI }, (a, b) => Math.Abs(a - b) < 1e-14);

        var (logReInv, imInv) = SsmKernels.S4DInvInit(2, 4, ScalarType.Float32);
        imInv.dtype.Should().Be(ScalarType.Float32);
        logReInv.shape.Should().Equal(2, 2);
        // N = 4: n = 0 gives (4/pi)(4/1 - 1) = 12/pi; n = 1 gives (4/pi)(4/3 - 1) = 4/(3 pi).
        imInv[1].data<float>().ToArray().Should().Equal(new[] { (float)(12 / Math.PI), (float)(4 / (3 * Math.PI)) }, (a, b) => Math.Abs(a - b) < 1e-5);

        FluentActions.Invoking(() => SsmKernels.S4DLinInit(3, 7)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "stateDim");
        FluentActions.Invoking(() => SsmKernels.S4DInvInit(3, 0)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "stateDim");
        FluentActions.Invoking(() => SsmKernels.S4DLinInit(0, 8)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "channels");
        FluentActions.Invoking(() => SsmKernels.S4DLinInit(2, 8, ScalarType.Int32)).Should().Throw<ArgumentException>().Where(e => e.ParamName == "dtype");
    }

    [Fact]
    public void RejectsBadInputNamingTheArgument()
    {
        using var scope = NewDisposeScope();
        var s = RandomSystem(3, 8, inverse: false, seed: 30);
        void Expect<T>(Action a, string name) where T : ArgumentException =>
            FluentActions.Invoking(a).Should().Throw<T>().Where(e => e.ParamName == name);

        Expect<ArgumentException>(() => SsmKernels.S4DKernel(zeros(4, dtype: ScalarType.Float64), s.AReal, s.AImag, s.CReal, s.CImag, 5), "logDt");
        Expect<ArgumentException>(() => SsmKernels.S4DKernel(zeros(3, 1, dtype: ScalarType.Float64), s.AReal, s.AImag, s.CReal, s.CImag, 5), "logDt");
        Expect<ArgumentException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal.flatten(), s.AImag, s.CReal, s.CImag, 5), "aReal");
        Expect<ArgumentException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal.to_type(ScalarType.Int64), s.AImag, s.CReal, s.CImag, 5), "aReal");
        Expect<ArgumentException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag[.., ..3], s.CReal, s.CImag, 5), "aImag");
        Expect<ArgumentException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag, s.CReal.t(), s.CImag, 5), "cReal");
        Expect<ArgumentException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag.to_type(ScalarType.Int32), 5), "cImag");
        Expect<ArgumentOutOfRangeException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag, 0), "length");
        Expect<ArgumentOutOfRangeException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag, 5, chunkSize: 0), "chunkSize");
        Expect<ArgumentOutOfRangeException>(() => SsmKernels.S4DKernel(s.LogDt, s.AReal, s.AImag, s.CReal, s.CImag, 5, (Discretization)7), "discretization");
        Expect<ArgumentException>(() => SsmKernels.Discretize(s.LogDt, s.AReal, zeros(3, 5, dtype: ScalarType.Float64)), "aImag");
        Expect<ArgumentException>(() => SsmKernels.Discretize(s.LogDt, zeros(3, 0, dtype: ScalarType.Float64), zeros(3, 0, dtype: ScalarType.Float64)), "aReal");
        FluentActions.Invoking(() => SsmKernels.Discretize(null!, s.AReal, s.AImag)).Should().Throw<ArgumentNullException>().Where(e => e.ParamName == "logDt");
    }

    [SkippableFact]
    public void CudaMatchesCpu()
    {
        Skip.IfNot(cuda.is_available());
        using var scope = NewDisposeScope();
        var s = RandomSystem(3, 16, inverse: true, seed: 31);
        foreach (var d in new[] { Discretization.Zoh, Discretization.Bilinear })
        {
            var cpu = Kernel(s, 300, d);
            var gpu = SsmKernels.S4DKernel(s.LogDt.cuda(), s.AReal.cuda(), s.AImag.cuda(), s.CReal.cuda(), s.CImag.cuda(), 300, d, chunkSize: 64);
            gpu.device_type.Should().Be(DeviceType.CUDA);
            MaxAbs(gpu.cpu() - cpu).Should().BeLessThan(1e-10 * Math.Max(1, MaxAbs(cpu)));
        }
        FluentActions.Invoking(() => SsmKernels.S4DKernel(s.LogDt, s.AReal.cuda(), s.AImag, s.CReal, s.CImag, 5)).Should().Throw<ArgumentException>();
    }
}
