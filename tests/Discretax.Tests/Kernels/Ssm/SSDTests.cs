using Discretax.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

public class SSDTests
{
    private const long B = 2, NH = 4, P = 5, N = 3;

    /// <summary>
    /// Random inputs as a Mamba2 layer produces them: log decays a = -softplus(z) * scale (dt * A, non-positive), b and c
    /// per group, an initial state.
    /// </summary>
    private static (Tensor X, Tensor A, Tensor Bm, Tensor Cm, Tensor S0) Inputs(long seed, long length, long groups = NH,
        ScalarType dtype = ScalarType.Float64, long b = B, long nh = NH, long p = P, long n = N, double decayScale = 0.5)
    {
        var g = new Generator((ulong)seed);
        var x = randn(new[] { b, nh, length, p }, dtype: ScalarType.Float64, generator: g);
        var a = -nn.functional.softplus(randn(new[] { b, nh, length }, dtype: ScalarType.Float64, generator: g)) * decayScale;
        var bm = randn(new[] { b, groups, length, n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var cm = randn(new[] { b, groups, length, n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        var s0 = randn(new[] { b, nh, p, n }, dtype: ScalarType.Float64, generator: g) * 0.5;
        return (x.to(dtype), a.to(dtype), bm.to(dtype), cm.to(dtype), s0.to(dtype));
    }

    private static double MaxAbsDiff(Tensor a, Tensor b) => TestUtil.MaxAbsDiff(a, b);

    private static bool AllFinite(Tensor t) => t.isfinite().all().item<bool>();

    /// <summary>b or c <c>[B, G, L, N]</c> expanded to one per head, head h taking group h / (NH / G), by an index.</summary>
    private static Tensor Expand(Tensor t, long nh)
    {
        long r = nh / t.shape[1];
        var index = tensor(Enumerable.Range(0, (int)nh).Select(h => (long)(h / r)).ToArray());
        return t.index_select(1, index);
    }

    [Fact]
    public void RecurrentEqualsAHandDerivedTwoStepCase()
    {
        using var scope = NewDisposeScope();
        // P = N = 1, one head: h_1 = e^{a_1} h_0 + x_1 b_1, y_1 = h_1 c_1; h_2 = e^{a_2} h_1 + x_2 b_2, y_2 = h_2 c_2.
        double[] a = { -0.5, -1.25 }, x = { 2.0, -1.0 }, b = { 0.5, 3.0 }, c = { 1.5, -2.0 };
        const double h0 = 0.25;
        double h1 = Math.Exp(a[0]) * h0 + x[0] * b[0];
        double h2 = Math.Exp(a[1]) * h1 + x[1] * b[1];
        Tensor T(double[] v, params long[] shape) => tensor(v, ScalarType.Float64).reshape(shape);
        var (y, s) = SSD.Recurrent(T(x, 1, 1, 2, 1), T(a, 1, 1, 2), T(b, 1, 1, 2, 1), T(c, 1, 1, 2, 1), T(new[] { h0 }, 1, 1, 1, 1));
        y.shape.Should().Equal(1, 1, 2, 1);
        s.shape.Should().Equal(1, 1, 1, 1);
        // Four float64 operations: agreement to rounding.
        y[0, 0, 0, 0].item<double>().Should().BeApproximately(h1 * c[0], 1e-14);
        y[0, 0, 1, 0].item<double>().Should().BeApproximately(h2 * c[1], 1e-14);
        s.item<double>().Should().BeApproximately(h2, 1e-14);
        var (yc, sc) = SSD.Chunked(T(x, 1, 1, 2, 1), T(a, 1, 1, 2), T(b, 1, 1, 2, 1), T(c, 1, 1, 2, 1), 2, T(new[] { h0 }, 1, 1, 1, 1));
        yc[0, 0, 1, 0].item<double>().Should().BeApproximately(h2 * c[1], 1e-14);
        sc.item<double>().Should().BeApproximately(h2, 1e-14);
    }

    /// <summary>
    /// The recurrence written out with scalars over flat double arrays, independent of any tensor op, with head h
    /// reading group h / (NH / G): h_t = exp(a_t) h_{t-1} + x_t b_t^T, y_t = h_t c_t.
    /// </summary>
    private static (double[] Output, double[] Final) ScalarSsd(double[] x, double[] a, double[] b, double[] c, double[]? s0,
        long bs, long nh, long g, long l, long p, long n)
    {
        var y = new double[bs * nh * l * p];
        var final = new double[bs * nh * p * n];
        for (long bi = 0; bi < bs; bi++)
            for (long h = 0; h < nh; h++)
            {
                long grp = h / (nh / g), bh = bi * nh + h, bg = bi * g + grp;
                var s = new double[p * n];
                if (s0 is not null) Array.Copy(s0, bh * p * n, s, 0, p * n);
                for (long t = 0; t < l; t++)
                {
                    double decay = Math.Exp(a[bh * l + t]);
                    for (long i = 0; i < p; i++)
                        for (long j = 0; j < n; j++)
                            s[i * n + j] = decay * s[i * n + j] + x[(bh * l + t) * p + i] * b[(bg * l + t) * n + j];
                    for (long i = 0; i < p; i++)
                    {
                        double sum = 0;
                        for (long j = 0; j < n; j++) sum += s[i * n + j] * c[(bg * l + t) * n + j];
                        y[(bh * l + t) * p + i] = sum;
                    }
                }
                Array.Copy(s, 0, final, bh * p * n, p * n);
            }
        return (y, final);
    }

    [Theory]
    [InlineData(1, 4, false)]
    [InlineData(19, 4, true)]
    [InlineData(19, 2, true)]
    [InlineData(19, 1, false)]
    public void RecurrentEqualsTheScalarLoop(long length, long groups, bool withState)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(10 + length + groups, length, groups);
        var (y, s) = SSD.Recurrent(x, a, b, c, withState ? s0 : null);
        var (yRef, sRef) = ScalarSsd(TestUtil.Values(x), TestUtil.Values(a), TestUtil.Values(b), TestUtil.Values(c),
            withState ? TestUtil.Values(s0) : null, B, NH, groups, length, P, N);
        y.shape.Should().Equal(B, NH, length, P);
        s.shape.Should().Equal(B, NH, P, N);
        // The same float64 arithmetic in another order: agreement to 1e-12.
        var yv = TestUtil.Values(y);
        var sv = TestUtil.Values(s);
        for (int i = 0; i < yRef.Length; i++) yv[i].Should().BeApproximately(yRef[i], 1e-12);
        for (int i = 0; i < sRef.Length; i++) sv[i].Should().BeApproximately(sRef[i], 1e-12);
    }

    public static IEnumerable<object[]> LengthsChunksGroups()
    {
        foreach (var l in new long[] { 1, 7, 64, 65, 150 })
            foreach (var c in new[] { 1, 8, 64, 300 })
                foreach (var g in new long[] { 4, 2, 1 })
                    yield return new object[] { l, c, g, (l + c + g) % 2 == 0 };
    }

    [Theory]
    [MemberData(nameof(LengthsChunksGroups))]
    public void ChunkedEqualsRecurrentInFloat64(long length, int chunkSize, long groups, bool withState)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = Inputs(100 + length * 7 + chunkSize + groups, length, groups);
        var init = withState ? s0 : null;
        var (y, s) = SSD.Chunked(x, a, b, c, chunkSize, init);
        var (yRef, sRef) = SSD.Recurrent(x, a, b, c, init);
        y.shape.Should().Equal(B, NH, length, P);
        s.shape.Should().Equal(B, NH, P, N);
        y.dtype.Should().Be(ScalarType.Float64);
        s.dtype.Should().Be(ScalarType.Float64);
        // float64, sums of at most a few hundred O(1) terms: 1e-10.
        MaxAbsDiff(y, yRef).Should().BeLessThan(1e-10);
        MaxAbsDiff(s, sRef).Should().BeLessThan(1e-10);
    }
}
