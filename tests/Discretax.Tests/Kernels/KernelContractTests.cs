using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// The contracts every kernel shares (docs/kernels/contracts.md): zero sizes are refused before any native call,
/// the tensor paths run on the meta device (no tensor created on the CPU by default, no <c>.item()</c>), and
/// non-finite values at step t do not reach outputs before t (or, for the matrix-product chunked forms, before the
/// start of t's chunk).
/// </summary>
public class KernelContractTests
{
    private static Tensor R(Generator g, params long[] shape) => randn(shape, dtype: ScalarType.Float64, generator: g);

    // ---------- final states of the scans ----------

    [Fact]
    public void FinalStateIsACopyOfTheLastStep()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        var a = rand(new long[] { 6 }, dtype: ScalarType.Float64, generator: g);
        var b = R(g, 2, 9, 6);
        var m = rand(new long[] { 6, 2, 2 }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var f = R(g, 2, 9, 6, 2);
        var results = new[]
        {
            LinearScan.Scan(a, b), LinearScan.Recurrent(a, b), LinearScan.Parallel(a, b, null, 4),
            BlockScan2x2.Scan(m, f), BlockScan2x2.Recurrent(m, f), BlockScan2x2.Parallel(m, f, null, 4),
        };
        foreach (var (output, final) in results)
        {
            var expected = output.select(1, 8).clone();
            final.shape.Should().Equal(expected.shape);
            (final - expected).abs().max().item<double>().Should().Be(0.0);          // exactly the last step (bit-identical)
            output.zero_();                                   // no alias: changing or disposing one leaves the other
            (final - expected).abs().max().item<double>().Should().Be(0.0);
            output.Dispose();
            final.abs().sum().item<double>().Should().BeGreaterThan(0);
        }
    }

    // ---------- (b) zero sizes ----------

    public static IEnumerable<object[]> ZeroSizeCases()
    {
        // name, argument the exception must name
        yield return new object[] { "FftConvolution.Causal B=0", "u" };
        yield return new object[] { "FftConvolution.Causal H=0", "u" };
        yield return new object[] { "LinearScan.Scan B=0", "b" };
        yield return new object[] { "BlockScan2x2.Scan B=0", "f" };
        yield return new object[] { "DeltaRule.Chunked B=0", "q" };
        yield return new object[] { "GatedDeltaRule.Chunked B=0", "q" };
        yield return new object[] { "GatedDeltaRule.Recurrent L=0", "q" };
        yield return new object[] { "SSD.Chunked B=0", "x" };
        yield return new object[] { "SSD.Recurrent N=0", "b" };
        yield return new object[] { "MLSTMKernel.Chunked B=0", "q" };
        yield return new object[] { "MLSTMKernel.Parallel B=0", "q" };
        yield return new object[] { "SsmKernels.S4DKernel H=0", "aReal" };
        yield return new object[] { "SsmKernels.Discretize N=0", "aReal" };
    }

    [Theory]
    [MemberData(nameof(ZeroSizeCases))]
    public void ZeroSizesAreRefusedWithTheArgumentAndTheShape(string kernel, string argument)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        Action call = kernel switch
        {
            "FftConvolution.Causal B=0" => () => FftConvolution.Causal(R(g, 0, 100, 16), R(g, 16, 100)),
            "FftConvolution.Causal H=0" => () => FftConvolution.Causal(R(g, 2, 100, 0), R(g, 0, 100)),
            "LinearScan.Scan B=0" => () => LinearScan.Scan(R(g, 4), R(g, 0, 5, 4)),
            "BlockScan2x2.Scan B=0" => () => BlockScan2x2.Scan(R(g, 4, 2, 2), R(g, 0, 5, 4, 2)),
            "DeltaRule.Chunked B=0" => () => DeltaRule.Chunked(R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5)),
            "GatedDeltaRule.Chunked B=0" => () => GatedDeltaRule.Chunked(R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5), R(g, 0, 1, 5)),
            "GatedDeltaRule.Recurrent L=0" => () => GatedDeltaRule.Recurrent(R(g, 1, 1, 0, 4), R(g, 1, 1, 0, 4), R(g, 1, 1, 0, 4), R(g, 1, 1, 0), R(g, 1, 1, 0)),
            "SSD.Chunked B=0" => () => SSD.Chunked(R(g, 0, 2, 5, 4), R(g, 0, 2, 5), R(g, 0, 1, 5, 3), R(g, 0, 1, 5, 3)),
            "SSD.Recurrent N=0" => () => SSD.Recurrent(R(g, 1, 2, 5, 4), R(g, 1, 2, 5), R(g, 1, 1, 5, 0), R(g, 1, 1, 5, 0)),
            "MLSTMKernel.Chunked B=0" => () => MLSTMKernel.Chunked(R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5), R(g, 0, 1, 5)),
            "MLSTMKernel.Parallel B=0" => () => MLSTMKernel.Parallel(R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5, 4), R(g, 0, 1, 5), R(g, 0, 1, 5)),
            "SsmKernels.S4DKernel H=0" => () => SsmKernels.S4DKernel(R(g, 0), R(g, 0, 4), R(g, 0, 4), R(g, 0, 4), R(g, 0, 4), 10),
            _ => () => SsmKernels.Discretize(R(g, 3), R(g, 3, 0), R(g, 3, 0)),
        };
        var ex = FluentActions.Invoking(call).Should().Throw<ArgumentException>().Which;
        ex.ParamName.Should().Be(argument);
        ex.Message.Should().Contain("Expected").And.Contain("got shape");
    }

    // ---------- (e) meta device ----------

    private static readonly Device Meta = new("meta");

    private static Tensor M(params long[] shape) => empty(shape, dtype: ScalarType.Float32, device: Meta);

    [Fact]
    public void ScansRunOnMeta()
    {
        using var scope = NewDisposeScope();
        var (h, last) = LinearScan.Scan(M(8), M(2, 70, 8), M(2, 8));
        h.device_type.Should().Be(DeviceType.META);
        h.shape.Should().Equal(2, 70, 8);
        last.shape.Should().Equal(2, 8);
        var (hc, _) = LinearScan.Scan(empty(new long[] { 70, 8 }, dtype: ScalarType.ComplexFloat32, device: Meta),
            empty(new long[] { 2, 70, 8 }, dtype: ScalarType.ComplexFloat32, device: Meta));
        hc.dtype.Should().Be(ScalarType.ComplexFloat32);
        var (hb, lastB) = BlockScan2x2.Scan(M(8, 2, 2), M(2, 70, 8, 2), M(2, 8, 2));
        hb.device_type.Should().Be(DeviceType.META);
        hb.shape.Should().Equal(2, 70, 8, 2);
        lastB.shape.Should().Equal(2, 8, 2);
    }

    [Fact]
    public void DeltaRuleRunsOnMeta()
    {
        using var scope = NewDisposeScope();
        var (o, s) = DeltaRule.Chunked(M(2, 2, 70, 8), M(2, 2, 70, 8), M(2, 2, 70, 6), M(2, 2, 70), 16, M(2, 2, 8, 6));
        o.device_type.Should().Be(DeviceType.META);
        o.shape.Should().Equal(2, 2, 70, 6);
        s.shape.Should().Equal(2, 2, 8, 6);
        var (or, _) = DeltaRule.Recurrent(M(2, 2, 5, 8), M(2, 2, 5, 8), M(2, 2, 5, 6), M(2, 2, 5));
        or.shape.Should().Equal(2, 2, 5, 6);
    }

    [Fact]
    public void GatedDeltaRuleRunsOnMeta()
    {
        using var scope = NewDisposeScope();
        var (o, s) = GatedDeltaRule.Chunked(M(2, 2, 70, 8), M(2, 2, 70, 8), M(2, 2, 70, 6), M(2, 2, 70), M(2, 2, 70), 16, M(2, 2, 8, 6));
        o.device_type.Should().Be(DeviceType.META);
        o.shape.Should().Equal(2, 2, 70, 6);
        s.shape.Should().Equal(2, 2, 8, 6);
        var (ol, sl) = GatedDeltaRule.Chunked(M(1, 2, 1100, 8), M(1, 2, 1100, 8), M(1, 2, 1100, 6), M(1, 2, 1100), M(1, 2, 1100));
        ol.shape.Should().Equal(1, 2, 1100, 6);                     // the segmented path
        sl.device_type.Should().Be(DeviceType.META);
        var (or, _) = GatedDeltaRule.Recurrent(M(2, 2, 5, 8), M(2, 2, 5, 8), M(2, 2, 5, 6), M(2, 2, 5), M(2, 2, 5));
        or.shape.Should().Equal(2, 2, 5, 6);
    }

    [Fact]
    public void SSDRunsOnMeta()
    {
        using var scope = NewDisposeScope();
        var (o, s) = SSD.Chunked(M(2, 4, 70, 8), M(2, 4, 70), M(2, 2, 70, 6), M(2, 2, 70, 6), 16, M(2, 4, 8, 6));
        o.device_type.Should().Be(DeviceType.META);
        o.shape.Should().Equal(2, 4, 70, 8);
        s.shape.Should().Equal(2, 4, 8, 6);
        var (or, sr) = SSD.Recurrent(M(2, 4, 5, 8), M(2, 4, 5), M(2, 1, 5, 6), M(2, 1, 5, 6));
        or.shape.Should().Equal(2, 4, 5, 8);
        sr.device_type.Should().Be(DeviceType.META);
    }

    /// <summary>Runs <paramref name="body"/>, skipping the test where libtorch has no meta kernel for an op it uses.</summary>
    private static void OnMeta(Action body)
    {
        try
        {
            body();
        }
        catch (System.Runtime.InteropServices.ExternalException e) when (e.Message.Contains("Meta kernel"))
        {
            Skip.If(true, $"libtorch 2.10 has no meta kernel for an op on this path: {e.Message.Split(':')[0]}");
        }
    }

    [SkippableFact]
    public void MLSTMKernelRunsOnMeta() => OnMeta(() =>
    {
        using var scope = NewDisposeScope();
        var init = new MLSTMKernelState(M(2, 2, 8, 6), M(2, 2, 8), M(2, 2));
        var (o, s) = MLSTMKernel.Chunked(M(2, 2, 70, 8), M(2, 2, 70, 8), M(2, 2, 70, 6), M(2, 2, 70), M(2, 2, 70), 16, init);
        o.device_type.Should().Be(DeviceType.META);
        o.shape.Should().Equal(2, 2, 70, 6);
        s.C.shape.Should().Equal(2, 2, 8, 6);
        s.N.shape.Should().Equal(2, 2, 8);
        s.M.shape.Should().Equal(2, 2);
        var (op, sp) = MLSTMKernel.Parallel(M(2, 2, 9, 8), M(2, 2, 9, 8), M(2, 2, 9, 6), M(2, 2, 9), M(2, 2, 9));
        op.shape.Should().Equal(2, 2, 9, 6);
        sp.C.device_type.Should().Be(DeviceType.META);
        var (or, _) = MLSTMKernel.Recurrent(M(2, 2, 3, 8), M(2, 2, 3, 8), M(2, 2, 3, 6), M(2, 2, 3), M(2, 2, 3));
        or.shape.Should().Equal(2, 2, 3, 6);
    });

    [SkippableFact]
    public void SsmKernelsRunOnMeta() => OnMeta(() =>
    {
        using var scope = NewDisposeScope();
        var (dA, dB) = SsmKernels.Discretize(M(4), M(4, 3), M(4, 3));
        dA.device_type.Should().Be(DeviceType.META);
        dA.dtype.Should().Be(ScalarType.ComplexFloat32);
        dB.shape.Should().Equal(4, 3);
        var (bA, _) = SsmKernels.Discretize(M(4), M(4, 3), M(4, 3), Discretization.Bilinear);
        bA.shape.Should().Equal(4, 3);
        var k = SsmKernels.S4DKernel(M(4), M(4, 3), M(4, 3), M(4, 3), M(4, 3), 50);
        k.device_type.Should().Be(DeviceType.META);
        k.shape.Should().Equal(4, 50);
        k.dtype.Should().Be(ScalarType.Float32);
    });

    [SkippableFact]
    public void FftConvolutionRunsOnMeta()
    {
        using var scope = NewDisposeScope();
        Tensor y;
        try
        {
            y = FftConvolution.Causal(M(2, 50, 4), M(4, 50));
        }
        catch (System.Runtime.InteropServices.ExternalException e) when (e.Message.Contains("Meta kernel") || e.Message.Contains("meta", StringComparison.OrdinalIgnoreCase))
        {
            Skip.If(true, $"libtorch 2.10 has no meta kernel for the FFT ops: {e.Message.Split(':')[0]}");
            return;
        }
        y.device_type.Should().Be(DeviceType.META);
        y.shape.Should().Equal(2, 50, 4);
    }

    // ---------- (c) non-finite values ----------
    // Guaranteed (tested below): the scans in every form (products and sums along time only); MLSTMKernel.Parallel
    // and .Chunked for a NaN in q, k or the gates at step t (the causal masks are selects, not products).
    // Not guaranteed, by construction: FftConvolution.Causal (the FFT mixes all positions: see its XML doc);
    // a NaN in v for MLSTMKernel.Parallel (whole sequence) and .Chunked (back to the start of t's chunk), and a NaN in
    // k, v or beta for DeltaRule.Chunked (back to the start of t's chunk), because a matrix product multiplies the
    // masked-out zeros with the NaN rows (0 * NaN = NaN). The chunked forms keep every chunk before t's finite (tested).

    private const long T = 13, L = 24;

    private static bool FiniteBefore(Tensor output, long dim, long t) => output.narrow(dim, 0, t).isfinite().all().item<bool>();

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(64)]
    public void ScansKeepANaNAtStepTOutOfEarlierSteps(int chunk)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(31);
        var a = rand(new long[] { L, 5 }, dtype: ScalarType.Float64, generator: g);
        var b = R(g, 2, L, 5);
        b[0, T, 1] = double.NaN;
        a[T + 2, 3] = double.PositiveInfinity;
        FiniteBefore(LinearScan.Parallel(a, b, null, chunk).Output, 1, T).Should().BeTrue();
        FiniteBefore(LinearScan.Scan(a, b).Output, 1, T).Should().BeTrue();
        FiniteBefore(LinearScan.ScanWithPath(a, b, null, KernelPath.Tensor).Output, 1, T).Should().BeTrue();
        var m = rand(new long[] { L, 5, 2, 2 }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var f = R(g, 2, L, 5, 2);
        f[1, T, 2, 0] = double.NaN;
        FiniteBefore(BlockScan2x2.Parallel(m, f, null, chunk).Output, 1, T).Should().BeTrue();
        FiniteBefore(BlockScan2x2.Scan(m, f).Output, 1, T).Should().BeTrue();
    }

    [Theory]
    [InlineData("q")]
    [InlineData("k")]
    [InlineData("inputGate")]
    [InlineData("forgetGate")]
    [InlineData("v")]
    public void MLSTMKeepsANaNAtStepTOutOfEarlierOutputs(string input)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(32);
        var x = new[] { R(g, 1, 2, L, 4), R(g, 1, 2, L, 4), R(g, 1, 2, L, 3), R(g, 1, 2, L), R(g, 1, 2, L) };
        int which = Array.IndexOf(new[] { "q", "k", "v", "inputGate", "forgetGate" }, input);
        x[which].select(2, T).fill_(double.NaN);
        const int chunk = 8;                                  // t = 13 lies in the chunk [8, 16)
        var chunked = MLSTMKernel.Chunked(x[0], x[1], x[2], x[3], x[4], chunk).Output;
        if (input == "v")
        {
            // Not guaranteed inside t's chunk nor over the whole sequence for Parallel (see above); the chunks before are finite.
            FiniteBefore(chunked, 2, T / chunk * chunk).Should().BeTrue();
            return;
        }
        FiniteBefore(MLSTMKernel.Parallel(x[0], x[1], x[2], x[3], x[4]).Output, 2, T).Should().BeTrue();
        FiniteBefore(chunked, 2, T).Should().BeTrue();
        FiniteBefore(MLSTMKernel.Recurrent(x[0], x[1], x[2], x[3], x[4]).Output, 2, T).Should().BeTrue();
    }

    [Theory]
    [InlineData("q")]
    [InlineData("k")]
    [InlineData("v")]
    [InlineData("beta")]
    public void DeltaRuleChunkedKeepsANaNOutOfEarlierChunks(string input)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(33);
        var x = new[] { R(g, 1, 2, L, 4), R(g, 1, 2, L, 4) * 0.3, R(g, 1, 2, L, 3), R(g, 1, 2, L).sigmoid() };
        int which = Array.IndexOf(new[] { "q", "k", "v", "beta" }, input);
        x[which].select(2, T).fill_(double.NaN);
        const int chunk = 8;
        var (o, _) = DeltaRule.Chunked(x[0], x[1], x[2], x[3], chunk);
        // Guaranteed: every chunk before t's (a NaN reaches the start of its own chunk through the batched products).
        FiniteBefore(o, 2, T / chunk * chunk).Should().BeTrue();
        if (input == "q") FiniteBefore(o, 2, T).Should().BeTrue();   // a query only reads the state
        FiniteBefore(DeltaRule.Recurrent(x[0], x[1], x[2], x[3]).Output, 2, T).Should().BeTrue();
    }

    [Theory]
    [InlineData("q")]
    [InlineData("k")]
    [InlineData("v")]
    [InlineData("g")]
    [InlineData("beta")]
    public void GatedDeltaRuleChunkedKeepsANaNOutOfEarlierChunks(string input)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(34);
        var x = new[] { R(g, 1, 2, L, 4), R(g, 1, 2, L, 4) * 0.3, R(g, 1, 2, L, 3), -R(g, 1, 2, L).sigmoid(), R(g, 1, 2, L).sigmoid() };
        int which = Array.IndexOf(new[] { "q", "k", "v", "g", "beta" }, input);
        x[which].select(2, T).fill_(double.NaN);
        const int chunk = 8;
        var (o, _) = GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], chunk);
        // Guaranteed: every chunk before t's (a NaN reaches the start of its own chunk through the batched products; the
        // positive differences of the decays are masked by a select, so a NaN decay does not leak through them).
        FiniteBefore(o, 2, T / chunk * chunk).Should().BeTrue();
        if (input == "q") FiniteBefore(o, 2, T).Should().BeTrue();   // a query only reads the state
        FiniteBefore(GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4]).Output, 2, T).Should().BeTrue();
    }

    [Theory]
    [InlineData("x")]
    [InlineData("a")]
    [InlineData("b")]
    [InlineData("c")]
    public void SSDKeepsANaNAtStepTOutOfEarlierOutputs(string input)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(34);
        var x = new[] { R(g, 1, 2, L, 3), -R(g, 1, 2, L).abs(), R(g, 1, 1, L, 4), R(g, 1, 1, L, 4) };
        int which = Array.IndexOf(new[] { "x", "a", "b", "c" }, input);
        x[which].select(2, T).fill_(double.NaN);
        const int chunk = 8;                                  // t = 13 lies in the chunk [8, 16)
        var (o, _) = SSD.Chunked(x[0], x[1], x[2], x[3], chunk);
        FiniteBefore(o, 2, T / chunk * chunk).Should().BeTrue();
        // a, b and c reach steps >= t only (the causal triangle of C B^T and the decays are selects); x reaches the
        // start of t's chunk (the product of the masked zeros with the NaN row of X).
        if (input != "x") FiniteBefore(o, 2, T).Should().BeTrue();
        FiniteBefore(SSD.Recurrent(x[0], x[1], x[2], x[3]).Output, 2, T).Should().BeTrue();
    }
}
