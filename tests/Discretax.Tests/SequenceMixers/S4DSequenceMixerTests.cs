using System.Numerics;
using Discretax.Kernels;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class S4DSequenceMixerTests
{
    /// <summary>A float64 mixer whose parameters are moved off their init (so every term matters), from a seeded generator.</summary>
    private static S4DSequenceMixer Make(long h, long n, ulong seed, S4DInit init = S4DInit.Lin, Discretization disc = Discretization.Zoh,
        bool useD = false, bool output = false, bool transposed = false)
    {
        var m = new S4DSequenceMixer(h, n, transposed, init: init, discretization: disc, useD: useD, useOutputLinear: output);
        m.to(ScalarType.Float64);
        var g = new Generator(seed);
        using var _ = no_grad();
        // dt in [0.02, 0.6]: large enough that the states carry far and differ across channels.
        m.log_dt.copy_(rand(new[] { h }, dtype: ScalarType.Float64, generator: g) * (Math.Log(0.6) - Math.Log(0.02)) + Math.Log(0.02));
        m.log_A_real.add_(TestUtil.Randn(g, new[] { h, n / 2 }) * 0.3);
        m.A_imag.add_(TestUtil.Randn(g, new[] { h, n / 2 }) * 0.2);
        m.C.copy_(TestUtil.Randn(g, new[] { h, n / 2, 2 }));
        m.D?.copy_(TestUtil.Randn(g, new[] { h }));
        if (m.output_linear is not null)
            foreach (var p in m.output_linear.parameters()) p.copy_(TestUtil.Randn(g, p.shape) * 0.5);
        return m;
    }

    /// <summary>
    /// The discretized system stepped one scalar at a time with System.Numerics.Complex, independent of libtorch and of
    /// SsmKernels: x_t = dA x_{t-1} + dB u_t, y_t = 2 Re sum_n C_n x_t,n (+ D u_t), then the optional output stage.
    /// u and the result are [B, L, H] flattened; x0 [B, H, N/2] (null: zeros).
    /// </summary>
    private static double[] Recurrence(S4DSequenceMixer m, double[] u, int b, int l, Complex[]? x0 = null)
    {
        int h = (int)m.InFeatures, modes = (int)m.StateDim / 2;
        var logDt = TestUtil.Values(m.log_dt);
        var lar = TestUtil.Values(m.log_A_real);
        var ai = TestUtil.Values(m.A_imag);
        var c = TestUtil.Values(m.C);
        var d = m.D is null ? null : TestUtil.Values(m.D);
        var dA = new Complex[h * modes];
        var dB = new Complex[h * modes];
        for (int ch = 0; ch < h; ch++)
            for (int n = 0; n < modes; n++)
            {
                double dt = Math.Exp(logDt[ch]);
                var a = new Complex(-Math.Exp(lar[ch * modes + n]), ai[ch * modes + n]);
                if (m.Discretization == Discretization.Zoh)
                {
                    dA[ch * modes + n] = Complex.Exp(dt * a);
                    dB[ch * modes + n] = (Complex.Exp(dt * a) - 1) / a;
                }
                else
                {
                    dA[ch * modes + n] = (1 + dt * a / 2) / (1 - dt * a / 2);
                    dB[ch * modes + n] = dt / (1 - dt * a / 2);
                }
            }
        var y = new double[b * l * h];
        for (int bi = 0; bi < b; bi++)
            for (int ch = 0; ch < h; ch++)
            {
                var x = new Complex[modes];
                if (x0 is not null) for (int n = 0; n < modes; n++) x[n] = x0[(bi * h + ch) * modes + n];
                for (int t = 0; t < l; t++)
                {
                    double ut = u[(bi * l + t) * h + ch];
                    double s = 0;
                    for (int n = 0; n < modes; n++)
                    {
                        x[n] = dA[ch * modes + n] * x[n] + dB[ch * modes + n] * ut;
                        var cn = new Complex(c[(ch * modes + n) * 2], c[(ch * modes + n) * 2 + 1]);
                        s += 2 * (cn * x[n]).Real;
                    }
                    y[(bi * l + t) * h + ch] = s + (d is null ? 0 : d[ch] * ut);
                }
            }
        if (!m.UseOutputLinear) return y;
        var p = m.output_linear!.named_parameters().ToDictionary(kv => kv.name, kv => TestUtil.Values(kv.parameter));
        var w = p["0.weight"];   // [2H, H, 1]
        var bias = p["0.bias"];  // [2H]
        var result = new double[y.Length];
        for (int pos = 0; pos < b * l; pos++)
        {
            var gl = new double[h];
            for (int i = 0; i < h; i++) gl[i] = Reference.Gelu(y[pos * h + i]);
            for (int i = 0; i < h; i++)
            {
                double value = bias[i], gate = bias[h + i];
                for (int j = 0; j < h; j++)
                {
                    value += w[i * h + j] * gl[j];
                    gate += w[(h + i) * h + j] * gl[j];
                }
                result[pos * h + i] = value * Reference.Sigmoid(gate);
            }
        }
        return result;
    }

    [Theory]
    [InlineData(S4DInit.Lin, Discretization.Zoh, false, false)]
    [InlineData(S4DInit.Inv, Discretization.Zoh, true, false)]
    [InlineData(S4DInit.Lin, Discretization.Bilinear, true, false)]
    [InlineData(S4DInit.Inv, Discretization.Bilinear, true, true)]
    [InlineData(S4DInit.Lin, Discretization.Zoh, false, true)]
    public void FftForwardEqualsTheScalarRecurrence(S4DInit init, Discretization disc, bool useD, bool output)
    {
        const int b = 2, l = 37, h = 3, n = 8;
        using var m = Make(h, n, 1, init, disc, useD, output);
        var g = new Generator(2);
        using var x = TestUtil.Randn(g, new long[] { b, l, h });
        using var y = m.forward(x);
        var expected = Recurrence(m, TestUtil.Values(x), b, l);
        var actual = TestUtil.Values(y);
        double scale = expected.Max(Math.Abs);
        scale.Should().BeGreaterThan(0.1, "the reference must not be trivially small");
        for (int i = 0; i < expected.Length; i++)
            actual[i].Should().BeApproximately(expected[i], 1e-11 * Math.Max(1, scale), $"element {i}");
    }

    [Theory]
    [InlineData(Discretization.Zoh, false)]
    [InlineData(Discretization.Bilinear, true)]
    public void StreamingPiecesOf1And5AndRestEqualTheForwardAndTheRecurrence(Discretization disc, bool useD)
    {
        const int b = 2, l = 300, h = 4, n = 6;   // 300 - 6 = 294 > StreamChunkLength: the rest is scanned in two chunks
        using var m = Make(h, n, 3, S4DInit.Inv, disc, useD, output: true);
        m.eval();
        var g = new Generator(4);
        using var x = TestUtil.Randn(g, new long[] { b, l, h });
        using var full = m.forward(x);
        var pieces = new List<Tensor>();
        StreamingState? state = null;
        int start = 0;
        foreach (int size in new[] { 1, 5, l - 6 })
        {
            var (y, next) = m.Stream(x.narrow(1, start, size), state);
            state?.Dispose();
            state = next;
            pieces.Add(y);
            start += size;
        }
        using var streamed = cat(pieces, 1);
        state!["x"].shape.Should().Equal(b, h, n / 2);
        state["x"].dtype.Should().Be(ScalarType.ComplexFloat64);
        TestUtil.MaxAbsDiff(streamed, full).Should().BeLessThan(1e-10);
        var expected = TestUtil.Values(full);
        var reference = Recurrence(m, TestUtil.Values(x), b, l);
        for (int i = 0; i < reference.Length; i++) expected[i].Should().BeApproximately(reference[i], 1e-10);
        state.Dispose();
        pieces.ForEach(p => p.Dispose());
    }

    [Fact]
    public void StreamContinuesFromAGivenStateLikeTheRecurrence()
    {
        const int b = 2, l = 9, h = 3, n = 4;
        using var m = Make(h, n, 5, useD: true);
        var g = new Generator(6);
        using var x = TestUtil.Randn(g, new long[] { b, l, h });
        using var re = TestUtil.Randn(g, new long[] { b, h, n / 2 });
        using var im = TestUtil.Randn(g, new long[] { b, h, n / 2 });
        using var x0 = complex(re, im);
        using var state0 = new S4DState(x0.clone(), x.dtype);
        var (y, state) = m.Stream(x, state0);
        using (y)
        using (state)
        {
            var init = TestUtil.Values(re).Zip(TestUtil.Values(im), (r, i) => new Complex(r, i)).ToArray();
            var expected = Recurrence(m, TestUtil.Values(x), b, l, init);
            var actual = TestUtil.Values(y);
            for (int i = 0; i < expected.Length; i++) actual[i].Should().BeApproximately(expected[i], 1e-11);
            TestUtil.MaxAbsDiff(state0["x"].real, re).Should().Be(0, "the input state must not change");
        }
    }

    [Fact]
    public void GradientsOfTheFftForwardAndOfStreamingAgreeAndReachDtAAndC()
    {
        const int b = 2, l = 23, h = 3, n = 6;
        var g = new Generator(7);
        using var x = TestUtil.Randn(g, new long[] { b, l, h });
        using var w = TestUtil.Randn(g, new long[] { b, l, h });
        Dictionary<string, Tensor> Grads(bool stream)
        {
            using var m = Make(h, n, 8, S4DInit.Lin, Discretization.Bilinear, useD: true, output: true);
            m.train();
            Tensor y;
            if (!stream) y = m.forward(x);
            else
            {
                var (y1, s1) = m.Stream(x.narrow(1, 0, 1));
                var (y2, s2) = m.Stream(x.narrow(1, 1, 5), s1);
                var (y3, s3) = m.Stream(x.narrow(1, 6, l - 6), s2);
                y = cat(new[] { y1, y2, y3 }, 1);
                s1.Dispose(); s2.Dispose(); s3.Dispose();
            }
            (y * w).sum().backward();
            return m.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter.grad!.detach().clone());
        }
        var fft = Grads(false);
        var rec = Grads(true);
        fft.Keys.Should().Contain(new[] { "log_dt", "log_A_real", "A_imag", "C", "D", "output_linear.0.weight", "output_linear.0.bias" });
        foreach (var (name, gf) in fft)
        {
            double size = gf.abs().max().item<double>();
            size.Should().BeGreaterThan(1e-6, $"the gradient of {name} must not vanish");
            (TestUtil.MaxAbsDiff(rec[name], gf) / size).Should().BeLessThan(1e-9, $"the gradients of {name} must agree");
        }
    }

    [Fact]
    public void Float32StreamingMatchesTheFloat32Forward()
    {
        using var m = new S4DSequenceMixer(8, 16, useD: true);
        var g = new Generator(9);
        using var x = TestUtil.Randn(g, new long[] { 2, 64, 8 }, ScalarType.Float32);
        using var full = m.forward(x);
        var (a, s1) = m.Stream(x.narrow(1, 0, 10));
        var (c, s2) = m.Stream(x.narrow(1, 10, 54), s1);
        using var streamed = cat(new[] { a, c }, 1);
        full.dtype.Should().Be(ScalarType.Float32);
        streamed.dtype.Should().Be(ScalarType.Float32);
        s2["x"].dtype.Should().Be(ScalarType.ComplexFloat32);
        TestUtil.RelRms(streamed, full).Should().BeLessThan(1e-5, "float32, RMS(diff)/RMS(ref)");
        s1.Dispose(); s2.Dispose(); a.Dispose(); c.Dispose();
    }

    [Fact]
    public void BFloat16InputStreamsWithAFloat32State()
    {
        using var m = new S4DSequenceMixer(8, 16, useD: true);
        var g = new Generator(15);
        using var x32 = TestUtil.Randn(g, new long[] { 2, 40, 8 }, ScalarType.Float32);
        using var x = x32.to(ScalarType.BFloat16);
        using var reference = m.forward(x.to(ScalarType.Float32));
        using var full = m.forward(x);
        var (a, s1) = m.Stream(x.narrow(1, 0, 3));
        var (c, s2) = m.Stream(x.narrow(1, 3, 37), s1);
        using var streamed = cat(new[] { a, c }, 1);
        full.dtype.Should().Be(ScalarType.BFloat16);
        streamed.dtype.Should().Be(ScalarType.BFloat16);
        s2["x"].dtype.Should().Be(ScalarType.ComplexFloat32, "recurrent states accumulate in float32 at least");
        TestUtil.RelRms(full, reference).Should().BeLessThan(1e-2, "bf16 output rounding, RMS(diff)/RMS(ref)");
        TestUtil.RelRms(streamed, reference).Should().BeLessThan(1e-2, "bf16 output rounding, RMS(diff)/RMS(ref)");
        s1.Dispose(); s2.Dispose(); a.Dispose(); c.Dispose();
    }

    [Fact]
    public void TransposedMixerOnTheTransposeEqualsTheUntransposedMixer()
    {
        const int b = 2, l = 11, h = 5, n = 4;
        using var plain = Make(h, n, 10, S4DInit.Inv, Discretization.Zoh, useD: true, output: true);
        using var transposed = Make(h, n, 99, S4DInit.Inv, Discretization.Zoh, useD: true, output: true, transposed: true);
        transposed.load_state_dict(plain.state_dict());
        transposed.eval(); plain.eval();
        var g = new Generator(11);
        using var x = TestUtil.Randn(g, new long[] { b, l, h });
        using var xt = x.transpose(1, 2).contiguous();                         // [B, H, L]
        using var y = plain.forward(x);
        using var yt = transposed.forward(xt);
        yt.shape.Should().Equal(b, h, l);
        TestUtil.MaxAbsDiff(yt.transpose(1, 2), y).Should().BeLessThan(1e-12);

        // Unbatched [H, L] -> [H, L].
        using var y0 = transposed.forward(xt[0]);
        y0.shape.Should().Equal(h, l);
        TestUtil.MaxAbsDiff(y0, yt[0]).Should().BeLessThan(1e-12);

        // Streaming a transposed mixer takes and returns [B, H, Lpiece].
        var (p1, s1) = transposed.Stream(xt.narrow(2, 0, 4));
        var (p2, s2) = transposed.Stream(xt.narrow(2, 4, l - 4), s1);
        p1.shape.Should().Equal(b, h, 4);
        using var joined = cat(new[] { p1, p2 }, 2);
        TestUtil.MaxAbsDiff(joined, yt).Should().BeLessThan(1e-10);
        s1.Dispose(); s2.Dispose(); p1.Dispose(); p2.Dispose();
    }

    [Fact]
    public void TransposedMixerRejectsBatchFirstInputNamingX()
    {
        using var m = new S4DSequenceMixer(4, 8, transposed: true);
        m.to(ScalarType.Float64);
        using var batchFirst = zeros(new long[] { 2, 7, 4 }, dtype: ScalarType.Float64);   // [B, L, H] with L != H
        using var empty = zeros(new long[] { 2, 4, 0 }, dtype: ScalarType.Float64);
        using var rank1 = zeros(new long[] { 4 }, dtype: ScalarType.Float64);
        using var ints = zeros(new long[] { 2, 4, 3 }, dtype: ScalarType.Int32);
        foreach (var bad in new[] { batchFirst, empty, rank1, ints })
        {
            var act = () => m.forward(bad);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
            var stream = () => m.Stream(bad);
            stream.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
        }
    }

    [Theory]
    [InlineData(S4DInit.Lin)]
    [InlineData(S4DInit.Inv)]
    public void InitialValuesFollowTheReference(S4DInit init)
    {
        const int h = 64, n = 64;
        using var m = new S4DSequenceMixer(h, n, dtMin: 0.002, dtMax: 0.05, init: init);
        m.log_A_real.shape.Should().Equal(h, n / 2);
        m.A_imag.shape.Should().Equal(h, n / 2);
        m.C.shape.Should().Equal(h, n / 2, 2);
        m.log_dt.shape.Should().Equal(h);
        m.D.Should().BeNull();
        m.output_linear.Should().BeNull();
        m.state_dict().Keys.Should().BeEquivalentTo("log_dt", "log_A_real", "A_imag", "C");
        TestUtil.Values(m.log_A_real).Should().AllSatisfy(v => v.Should().BeApproximately(Math.Log(0.5), 1e-6));
        var imag = TestUtil.Values(m.A_imag);
        for (int ch = 0; ch < h; ch++)
            for (int k = 0; k < n / 2; k++)
            {
                double expected = init == S4DInit.Lin ? Math.PI * k : n / Math.PI * (n / (2.0 * k + 1) - 1);
                imag[ch * (n / 2) + k].Should().BeApproximately(expected, 1e-5 * Math.Max(1, Math.Abs(expected)));
            }
        var logDt = TestUtil.Values(m.log_dt);
        logDt.Should().AllSatisfy(v => v.Should().BeInRange(Math.Log(0.002), Math.Log(0.05)));
        (logDt.Max() - logDt.Min()).Should().BeGreaterThan(1.0, "64 draws of U(log 0.002, log 0.05) spread out");
        var c = TestUtil.Values(m.C);
        double mean = c.Average(), std = Math.Sqrt(c.Select(v => (v - mean) * (v - mean)).Average());
        mean.Should().BeInRange(-0.1, 0.1);
        std.Should().BeInRange(0.9, 1.1, "C ~ N(0, 1) per real and imaginary part (4096 draws)");
    }

    [Fact]
    public void OptionsAddTheSkipAndTheOutputStageUnderTheReferenceNames()
    {
        using var m = new S4DSequenceMixer(6, 8, useD: true, useOutputLinear: true);
        m.UseD.Should().BeTrue();
        m.UseOutputLinear.Should().BeTrue();
        var shapes = m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        shapes.Keys.Should().BeEquivalentTo("log_dt", "log_A_real", "A_imag", "C", "D", "output_linear.0.weight", "output_linear.0.bias");
        shapes["D"].Should().Equal(6);
        shapes["output_linear.0.weight"].Should().Equal(12, 6, 1);
        shapes["output_linear.0.bias"].Should().Equal(12);
    }

    [Fact]
    public void KernelIsTheImpulseResponseOfTheMixer()
    {
        const int h = 3, n = 6, l = 17;
        using var m = Make(h, n, 12, disc: Discretization.Bilinear);
        using var impulse = zeros(new long[] { 1, l, h }, dtype: ScalarType.Float64);
        impulse[0, 0].fill_(1.0);
        using var y = m.forward(impulse);
        using var k = m.Kernel(l);
        TestUtil.MaxAbsDiff(y[0].t(), k).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void BadOptionsThrowNamingTheArgument()
    {
        void Throws(Action make, string name) =>
            make.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be(name);
        Throws(() => new S4DSequenceMixer(0), "inFeatures");
        Throws(() => new S4DSequenceMixer(4, stateDim: 7), "stateDim");
        Throws(() => new S4DSequenceMixer(4, stateDim: 0), "stateDim");
        Throws(() => new S4DSequenceMixer(4, dtMin: 0), "dtMin");
        Throws(() => new S4DSequenceMixer(4, dtMin: double.NaN), "dtMin");
        Throws(() => new S4DSequenceMixer(4, dtMin: 0.1, dtMax: 0.01), "dtMax");
        Throws(() => new S4DSequenceMixer(4, init: (S4DInit)5), "init");
        Throws(() => new S4DSequenceMixer(4, discretization: (Discretization)5), "discretization");
        using var m = new S4DSequenceMixer(4, 8);
        Throws(() => m.Kernel(0).Dispose(), "length");
    }

    [Fact]
    public void AStateOfAnotherShapeIsRejectedNamingState()
    {
        using var m = new S4DSequenceMixer(4, 8);
        using var x = zeros(2, 3, 4);
        using var wrong = new S4DState(zeros(new long[] { 2, 4, 3 }, dtype: ScalarType.ComplexFloat32), x.dtype);
        var act = () => m.Stream(x, wrong);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state");
    }

    [SkippableFact]
    public void OnCudaStreamingEqualsTheForward()
    {
        Skip.IfNot(cuda.is_available());
        using var m = Make(8, 16, 13, useD: true, output: true);
        m.to(CUDA);
        var g = new Generator(14);
        using var x = TestUtil.Randn(g, new long[] { 2, 300, 8 }).to(CUDA);
        using var full = m.forward(x);
        var (a, s1) = m.Stream(x.narrow(1, 0, 5));
        var (c, s2) = m.Stream(x.narrow(1, 5, 295), s1);
        s2["x"].device_type.Should().Be(DeviceType.CUDA);
        using var streamed = cat(new[] { a, c }, 1);
        TestUtil.MaxAbsDiff(streamed, full).Should().BeLessThan(1e-9);
        s1.Dispose(); s2.Dispose(); a.Dispose(); c.Dispose();
    }
}
