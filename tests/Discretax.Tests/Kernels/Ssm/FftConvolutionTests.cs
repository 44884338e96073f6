using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class FftConvolutionTests
{
    /// <summary>Literal O(L^2) causal convolution on host arrays: y[b,t,h] = sum_{k<=t, k<Lk} K[h,k] u[b,t-k,h].</summary>
    private static double[] DirectCausal(double[] u, double[] k, long batch, long length, long channels, long kernelLength)
    {
        var y = new double[batch * length * channels];
        for (long b = 0; b < batch; b++)
            for (long t = 0; t < length; t++)
                for (long h = 0; h < channels; h++)
                {
                    double s = 0;
                    for (long j = 0; j <= Math.Min(t, kernelLength - 1); j++)
                        s += k[h * kernelLength + j] * u[(b * length + t - j) * channels + h];
                    y[(b * length + t) * channels + h] = s;
                }
        return y;
    }

    /// <summary>Direct causal convolution in tensor ops (differentiable): sum_k K[:, k] * u shifted by k.</summary>
    private static Tensor DirectCausalTensor(Tensor u, Tensor k)
    {
        long length = u.shape[1];
        Tensor y = zeros_like(u);
        for (long j = 0; j < k.shape[1]; j++)
        {
            var shifted = nn.functional.pad(u, new long[] { 0, 0, j, 0 }).narrow(1, 0, length);
            y = y + shifted * k[TensorIndex.Colon, j];
        }
        return y;
    }

    private static double MaxAbs(Tensor t) => t.abs().max().item<double>();

    private static double RelRms(Tensor x, Tensor reference)
    {
        var r = reference.to_type(ScalarType.Float64);
        var d = x.to_type(ScalarType.Float64) - r;
        return Math.Sqrt(d.square().mean().item<double>() / r.square().mean().item<double>());
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(2L)]
    [InlineData(17L)]
    [InlineData(256L)]
    public void EqualsDirectCausalConvolutionInFloat64(long length)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(11 + (ulong)length);
        long batch = 2, channels = 3;
        var u = randn(new[] { batch, length, channels }, dtype: ScalarType.Float64, generator: g);
        var k = randn(new[] { channels, length }, dtype: ScalarType.Float64, generator: g);
        var y = FftConvolution.Causal(u, k);
        y.shape.Should().Equal(batch, length, channels);
        y.dtype.Should().Be(ScalarType.Float64);
        var reference = DirectCausal(u.data<double>().ToArray(), k.data<double>().ToArray(), batch, length, channels, length);
        var diff = (y - tensor(reference, dtype: ScalarType.Float64).reshape(batch, length, channels)).abs().max().item<double>();
        diff.Should().BeLessThan(1e-11 * Math.Sqrt(length) * 10, "FFT rounding in float64 is ~1e-15 per term");
    }

    [Fact]
    public void ShorterKernelActsAsZeroPadded()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        long batch = 2, length = 23, channels = 4, kernelLength = 6;
        var u = randn(new[] { batch, length, channels }, dtype: ScalarType.Float64, generator: g);
        var k = randn(new[] { channels, kernelLength }, dtype: ScalarType.Float64, generator: g);
        var y = FftConvolution.Causal(u, k);
        var reference = DirectCausal(u.data<double>().ToArray(), k.data<double>().ToArray(), batch, length, channels, kernelLength);
        MaxAbs(y - tensor(reference, dtype: ScalarType.Float64).reshape(batch, length, channels)).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void IsCausal()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(6);
        var u = randn(new long[] { 1, 30, 2 }, dtype: ScalarType.Float64, generator: g);
        var k = randn(new long[] { 2, 30 }, dtype: ScalarType.Float64, generator: g);
        var y1 = FftConvolution.Causal(u, k);
        var u2 = u.clone();
        u2[0, 20, 1] = u2[0, 20, 1] + 5.0;
        var y2 = FftConvolution.Causal(u2, k);
        MaxAbs((y2 - y1).narrow(1, 0, 20)).Should().BeLessThan(1e-12, "outputs before the change must not move");
        MaxAbs((y2 - y1)[0, 20, 1]).Should().BeGreaterThan(1e-3);
    }

    [Fact]
    public void Float32MatchesFloat64Reference()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        var u = randn(new long[] { 2, 300, 5 }, dtype: ScalarType.Float64, generator: g);
        var k = randn(new long[] { 5, 300 }, dtype: ScalarType.Float64, generator: g) * 0.1;
        var reference = FftConvolution.Causal(u, k);
        var y = FftConvolution.Causal(u.to_type(ScalarType.Float32), k.to_type(ScalarType.Float32));
        y.dtype.Should().Be(ScalarType.Float32);
        RelRms(y, reference).Should().BeLessThan(1e-5, "float32 FFT error is ~1e-7 * log n");
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 1e-2)]
    [InlineData(ScalarType.Float16, 2e-3)]
    public void HalfPrecisionIsComputedInFloat32AndCastBack(ScalarType dtype, double bound)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(8);
        var u = randn(new long[] { 2, 64, 3 }, dtype: ScalarType.Float64, generator: g).to_type(dtype);
        var k = (randn(new long[] { 3, 64 }, dtype: ScalarType.Float64, generator: g) * 0.1).to_type(dtype);
        var y = FftConvolution.Causal(u, k);
        y.dtype.Should().Be(dtype);
        // Reference from the same rounded inputs in float64: only the final cast's rounding (about 2^-8 or 2^-11) remains.
        var reference = FftConvolution.Causal(u.to_type(ScalarType.Float64), k.to_type(ScalarType.Float64));
        RelRms(y, reference).Should().BeLessThan(bound);
    }

    [Fact]
    public void GradientsMatchTheDirectConvolution()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(9);
        var u = randn(new long[] { 2, 9, 3 }, dtype: ScalarType.Float64, generator: g).requires_grad_();
        var k = randn(new long[] { 3, 7 }, dtype: ScalarType.Float64, generator: g).requires_grad_();
        var w = randn(new long[] { 2, 9, 3 }, dtype: ScalarType.Float64, generator: g);

        (FftConvolution.Causal(u, k) * w).sum().backward();
        var gu = u.grad!.clone();
        var gk = k.grad!.clone();
        u.grad!.zero_();
        k.grad!.zero_();
        (DirectCausalTensor(u, k) * w).sum().backward();
        MaxAbs(gu - u.grad!).Should().BeLessThan(1e-12);
        MaxAbs(gk - k.grad!).Should().BeLessThan(1e-12);
    }

    /// <summary>
    /// The custom backward against autograd through the direct sum, for FFT sizes that are not powers of two,
    /// a kernel of length 1, a non-contiguous input, and either input alone requiring a gradient (float64, 1e-12).
    /// </summary>
    [Theory]
    [InlineData(13, 13, true, true, false)]
    [InlineData(100, 1, true, true, false)]
    [InlineData(31, 20, true, false, true)]
    [InlineData(31, 20, false, true, true)]
    public void CustomBackwardMatchesTheDirectConvolution(int length, int kernelLength, bool gradU, bool gradK, bool transposedInput)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(21);
        var u0 = randn(new long[] { 3, length, 4 }, dtype: ScalarType.Float64, generator: g);
        var u = (transposedInput ? u0.transpose(1, 2).contiguous().transpose(1, 2) : u0).requires_grad_(gradU);
        var k = randn(new long[] { 4, kernelLength }, dtype: ScalarType.Float64, generator: g).requires_grad_(gradK);
        var w = randn(new long[] { 3, length, 4 }, dtype: ScalarType.Float64, generator: g);

        (FftConvolution.Causal(u, k) * w).sum().backward();
        var gu = gradU ? u.grad!.clone() : null;
        var gk = gradK ? k.grad!.clone() : null;
        if (gradU) u.grad!.zero_();
        if (gradK) k.grad!.zero_();
        (DirectCausalTensor(u, k) * w).sum().backward();
        if (gradU) MaxAbs(gu! - u.grad!).Should().BeLessThan(1e-12);
        else u.grad.Should().BeNull();
        if (gradK) MaxAbs(gk! - k.grad!).Should().BeLessThan(1e-12);
        else k.grad.Should().BeNull();
    }

    /// <summary>A float32 input with a float64 kernel computes in float64; the gradient reaches u in float32.</summary>
    [Fact]
    public void MixedPrecisionGradientsReachBothInputsInTheirDtypes()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(22);
        var u = randn(new long[] { 2, 16, 3 }, dtype: ScalarType.Float64, generator: g).to_type(ScalarType.Float32).requires_grad_();
        var k = randn(new long[] { 3, 16 }, dtype: ScalarType.Float64, generator: g).requires_grad_();
        var w = randn(new long[] { 2, 16, 3 }, dtype: ScalarType.Float64, generator: g);
        (FftConvolution.Causal(u, k) * w.to_type(ScalarType.Float32)).sum().backward();
        u.grad!.dtype.Should().Be(ScalarType.Float32);
        k.grad!.dtype.Should().Be(ScalarType.Float64);
        var u64 = u.detach().to_type(ScalarType.Float64).requires_grad_();
        var k64 = k.detach().clone().requires_grad_();
        (DirectCausalTensor(u64, k64) * w.to_type(ScalarType.Float32).to_type(ScalarType.Float64)).sum().backward();
        MaxAbs(u.grad!.to_type(ScalarType.Float64) - u64.grad!).Should().BeLessThan(1e-5);   // float32 rounding of du
        MaxAbs(k.grad! - k64.grad!).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void NextFastSizeIsTheSmallest5SmoothSizeAtLeastN()
    {
        static bool Smooth(long m)
        {
            foreach (var p in new[] { 2L, 3L, 5L }) while (m % p == 0) m /= p;
            return m == 1;
        }
        for (long n = 1; n <= 3000; n++)
        {
            long expected = n;
            while (!Smooth(expected)) expected++;
            FftConvolution.NextFastSize(n).Should().Be(expected, $"n = {n}");
        }
        FftConvolution.NextFastSize(8197).Should().Be(8640);   // 2^6 3^3 5, while 2 * 4099 has the prime 4099
        FftConvolution.NextFastSize(1L << 40).Should().Be(1L << 40);
    }

    [Fact]
    public void RejectsBadInputNamingTheArgument()
    {
        using var scope = NewDisposeScope();
        var u = zeros(2, 10, 3, dtype: ScalarType.Float64);
        var k = zeros(3, 10, dtype: ScalarType.Float64);

        FluentActions.Invoking(() => FftConvolution.Causal(zeros(10, 3), k)).Should().Throw<ArgumentException>().Where(e => e.ParamName == "u");
        FluentActions.Invoking(() => FftConvolution.Causal(zeros(new long[] { 2, 10, 3 }, dtype: ScalarType.Int32), k)).Should().Throw<ArgumentException>().Where(e => e.ParamName == "u");
        FluentActions.Invoking(() => FftConvolution.Causal(zeros(2, 0, 3), zeros(3, 1))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "u");
        FluentActions.Invoking(() => FftConvolution.Causal(u, zeros(3, 10, 1))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "kernel");
        FluentActions.Invoking(() => FftConvolution.Causal(u, zeros(4, 10))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "kernel" && e.Message.Contains("[4, 10]"));
        FluentActions.Invoking(() => FftConvolution.Causal(u, zeros(3, 11))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "kernel" && e.Message.Contains("Lk <= L = 10"));
        FluentActions.Invoking(() => FftConvolution.Causal(u, zeros(3, 0))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "kernel");
        FluentActions.Invoking(() => FftConvolution.Causal(u, zeros(new long[] { 3, 10 }, dtype: ScalarType.Int64))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "kernel");
        FluentActions.Invoking(() => FftConvolution.Causal(null!, k)).Should().Throw<ArgumentNullException>().Where(e => e.ParamName == "u");
        FluentActions.Invoking(() => FftConvolution.NextFastSize(0)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "n");
    }

    [SkippableFact]
    public void CudaMatchesCpu()
    {
        Skip.IfNot(cuda.is_available());
        using var scope = NewDisposeScope();
        var g = new Generator(10);
        var u = randn(new long[] { 2, 100, 4 }, dtype: ScalarType.Float64, generator: g);
        var k = randn(new long[] { 4, 100 }, dtype: ScalarType.Float64, generator: g);
        var cpu = FftConvolution.Causal(u, k);
        var gpu = FftConvolution.Causal(u.cuda(), k.cuda());
        gpu.device_type.Should().Be(DeviceType.CUDA);
        MaxAbs(gpu.cpu() - cpu).Should().BeLessThan(1e-10);
        var gpu32 = FftConvolution.Causal(u.cuda().to_type(ScalarType.Float32), k.cuda().to_type(ScalarType.Float32));
        RelRms(gpu32.cpu(), cpu).Should().BeLessThan(1e-5);
        FluentActions.Invoking(() => FftConvolution.Causal(u.cuda(), k)).Should().Throw<ArgumentException>().Where(e => e.ParamName == "kernel");
    }
}
