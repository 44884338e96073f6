using Discretax.Kernels;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels.MLSTM;

/// <summary>
/// The fresh start <c>m_0 = -inf</c> (<see cref="MLSTMStabilizerStart.NegativeInfinity"/>): the kernels started from
/// <c>(C, n, m) = (0, 0, -inf)</c> compute NX-AI xlstm's PyTorch <c>parallel_stabilized_simple</c>, written out here in
/// float64 scalars from its definition (row maximum of the log decay matrix, no <c>b_t</c> term).
/// </summary>
public class MLSTMStabilizerStartTests
{
    private const long B = 2, NH = 2, L = 11, Dk = 3, Dv = 4;

    private static (Tensor Q, Tensor K, Tensor V, Tensor I, Tensor F) Inputs(ulong seed, double inputMean)
    {
        var g = new Generator(seed);
        return (TestUtil.Randn(g, [B, NH, L, Dk]), TestUtil.Randn(g, [B, NH, L, Dk]), TestUtil.Randn(g, [B, NH, L, Dv]),
            TestUtil.Randn(g, [B, NH, L]) + inputMean, TestUtil.Randn(g, [B, NH, L]) * 0.5 + 3.0);
    }

    /// <summary>xlstm's <c>parallel_stabilized_simple</c> for one batch element and head, from its definition.</summary>
    private static double[,] Parallel(double[,] q, double[,] k, double[,] v, double[] i, double[] f, double eps)
    {
        var logF = f.Select(x => -Math.Log(1 + Math.Exp(-x))).ToArray();
        var h = new double[L, Dv];
        for (int t = 0; t < L; t++)
        {
            var d = new double[t + 1];
            for (int j = 0; j <= t; j++)
            {
                double s = i[j];
                for (int u = j + 1; u <= t; u++) s += logF[u];
                d[j] = s;
            }
            double maxD = d.Max();
            var c = new double[t + 1];
            for (int j = 0; j <= t; j++)
            {
                double qk = 0;
                for (int e = 0; e < Dk; e++) qk += q[t, e] * k[j, e] / Math.Sqrt(Dk);
                c[j] = qk * Math.Exp(d[j] - maxD);
            }
            double normalizer = Math.Max(Math.Abs(c.Sum()), Math.Exp(-maxD));
            for (int e = 0; e < Dv; e++)
            {
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += c[j] / (normalizer + eps) * v[j, e];
                h[t, e] = sum;
            }
        }
        return h;
    }

    private static double[,] Matrix(Tensor t)
    {
        var values = TestUtil.Values(t);
        long rows = t.shape[0], cols = t.shape[1];
        var m = new double[rows, cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) m[r, c] = values[r * cols + c];
        return m;
    }

    private static Tensor Reference(Tensor q, Tensor k, Tensor v, Tensor i, Tensor f, double eps)
    {
        var result = zeros(new[] { B, NH, L, Dv }, dtype: ScalarType.Float64);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
            {
                var out_ = Parallel(Matrix(q[b, h]), Matrix(k[b, h]), Matrix(v[b, h]), TestUtil.Values(i[b, h]), TestUtil.Values(f[b, h]), eps);
                result[b, h].copy_(tensor(out_.Cast<double>().ToArray(), new[] { L, Dv }, ScalarType.Float64));
            }
        return result;
    }

    private static MLSTMKernelState Fresh() => new(zeros(new[] { B, NH, Dk, Dv }, dtype: ScalarType.Float64),
        zeros(new[] { B, NH, Dk }, dtype: ScalarType.Float64), full(new[] { B, NH }, double.NegativeInfinity, dtype: ScalarType.Float64));

    /// <summary>Chunked (chunk sizes 1, 3, 16: one step per chunk, padding, one chunk) and Recurrent from (0, 0, -inf)
    /// equal the parallel form to 1e-12 (float64), with the layer's eps 1e-6 and with eps 0.3, where the start shows;
    /// the final stabilizer is the row maximum of the last step.</summary>
    [Theory]
    [InlineData(1e-6)]
    [InlineData(0.3)]
    public void KernelsFromMinusInfinityComputeTheParallelFormWithoutTheBTerm(double eps)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, i, f) = Inputs(7, -4.0);
        var expected = Reference(q, k, v, i, f, eps);
        foreach (int chunk in new[] { 1, 3, 16 })
        {
            var (h, state) = MLSTMKernel.Chunked(q, k, v, i, f, chunk, Fresh(), eps);
            TestUtil.MaxAbsDiff(h, expected).Should().BeLessThan(1e-12, $"chunk {chunk}");
            TestUtil.Values(state.M).Should().OnlyContain(m => double.IsFinite(m));
        }
        var (hr, _) = MLSTMKernel.Recurrent(q, k, v, i, f, Fresh(), eps);
        TestUtil.MaxAbsDiff(hr, expected).Should().BeLessThan(1e-12);

        // From m_0 = 0 (the recurrence's default): the same up to the eps term, eps (e^{b_t} - e^{max D}) at most.
        var (h0, _) = MLSTMKernel.Chunked(q, k, v, i, f, 4, null, eps);
        double diff = TestUtil.RelRms(h0, expected);
        if (eps < 1e-3) diff.Should().BeLessThan(2e-6);
        else diff.Should().BeGreaterThan(1e-2);
    }

    /// <summary>Backward through the -inf start gives finite gradients for every input (float64, chunk 4 with padding).</summary>
    [Fact]
    public void GradientsFromMinusInfinityAreFinite()
    {
        using var scope = NewDisposeScope();
        var (q0, k0, v0, i0, f0) = Inputs(8, 0.0);
        var inputs = new[] { q0, k0, v0, i0, f0 }.Select(t => t.detach().requires_grad_(true)).ToArray();
        var (h, state) = MLSTMKernel.Chunked(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], 4, Fresh());
        (h.square().sum() + state.C.sum() + state.M.sum()).backward();
        foreach (var t in inputs)
            TestUtil.Values(t.grad!).Should().OnlyContain(x => double.IsFinite(x));
    }

    /// <summary>The layer with <see cref="MLSTMStabilizerStart.NegativeInfinity"/> differs from the same weights
    /// started at zero only through the eps term (relative RMS below 1e-6 for weights at their init, float64), and its
    /// state after the first step holds the first step's input gate as m.</summary>
    [Fact]
    public void TheLayerOptionStartsFromMinusInfinity()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var torchLayer = new MLSTMSequenceMixer(8, chunkSize: 4, normEps: 1e-5, stabilizerStart: MLSTMStabilizerStart.NegativeInfinity);
        torchLayer.to(ScalarType.Float64);
        var zeroStart = new MLSTMSequenceMixer(8, chunkSize: 4, normEps: 1e-5);
        zeroStart.to(ScalarType.Float64);
        zeroStart.load_state_dict(torchLayer.state_dict());
        var x = TestUtil.Randn(new Generator(12), [2, 9, 8]);
        TestUtil.RelRms(torchLayer.forward(x), zeroStart.forward(x)).Should().BeLessThan(1e-6);

        var (_, state) = torchLayer.Stream(x.narrow(1, 0, 1));
        var s = (Discretax.Streaming.MLSTMState)state;
        // m_1 = max(f'_1 + (-inf), i_1) = i_1 = igate([q, k, v]) at step 1 (the gate weights are zero at init: the bias).
        TestUtil.MaxAbsDiff(s.M, torchLayer.igate.bias!.unsqueeze(0).expand(2, 4)).Should().BeLessThan(1e-12);
    }
}
