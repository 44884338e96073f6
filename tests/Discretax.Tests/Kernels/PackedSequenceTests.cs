using Discretax.Kernels;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Discretax.Tests.Kernels;

/// <summary>
/// Packed sequences (<c>cuSeqlens</c>): every kernel's packed run equals each sequence run alone, in the outputs, the
/// per-sequence final states and the gradients of every input (float64).
/// </summary>
public class PackedSequenceTests
{
    // With chunk size 4 (edges at 4, 8, 12, 16, 20): boundaries at an edge (4, 8), before one (7), after one (9, 13),
    // sequences of length 1 ([0, 1), [7, 8), [8, 9), [13, 14)) and a sequence longer than a chunk ([14, 21)).
    private static readonly long[] Bounds = { 0, 1, 4, 7, 8, 9, 13, 14, 21, 23 };
    private const long L = 23;
    private static int Count => Bounds.Length - 1;
    private const double Tol = 1e-10;

    private static Tensor Cu(params long[] bounds) => tensor(bounds);

    private static Tensor Rand(Generator g, params long[] shape) => randn(shape, dtype: ScalarType.Float64, generator: g);

    private static Tensor Leaf(Tensor t) => t.detach().requires_grad_(true);

    private static Tensor Loss(IReadOnlyList<Tensor> parts, IReadOnlyList<Tensor> weights)
    {
        Tensor? loss = null;
        for (int i = 0; i < parts.Count; i++)
        {
            var term = parts[i] * weights[i];
            var s = term.is_complex() ? term.real.sum() : term.sum();
            loss = loss is null ? s : loss + s;
        }
        return loss!;
    }

    /// <summary>
    /// Runs <paramref name="packed"/> (parts: the output with time along <paramref name="timeDim"/>, then final states
    /// <c>[N, ...]</c>) and <paramref name="alone"/> per sequence (the output over its steps, finals <c>[1, ...]</c>), and
    /// checks that the outputs, the finals and the gradients with respect to <paramref name="leaves"/> agree.
    /// </summary>
    private static void AssertPackedEqualsAlone(long[] bounds, Tensor[] leaves, Func<Tensor[]> packed, Func<int, long, long, Tensor[]> alone,
        long timeDim, double tol = Tol)
    {
        using var scope = NewDisposeScope();
        var p = packed();
        var g = new Generator(99);
        var weights = p.Select(t => t.is_complex()
            ? complex(randn(t.shape, dtype: ScalarType.Float64, generator: g), randn(t.shape, dtype: ScalarType.Float64, generator: g)).to(t.dtype)
            : randn(t.shape, dtype: t.dtype, generator: g)).ToArray();
        var packedGrads = torch.autograd.grad(new[] { Loss(p, weights) }, leaves);

        Tensor? aloneLoss = null;
        for (int i = 0; i < bounds.Length - 1; i++)
        {
            long start = bounds[i], len = bounds[i + 1] - bounds[i];
            var a = alone(i, start, len);
            a.Length.Should().Be(p.Length);
            MaxDiff(a[0], p[0].narrow(timeDim, start, len)).Should().BeLessThan(tol, $"the output of sequence {i}");
            for (int j = 1; j < a.Length; j++)
                MaxDiff(a[j], p[j].narrow(0, i, 1)).Should().BeLessThan(tol, $"final state part {j} of sequence {i}");
            var w = new[] { weights[0].narrow(timeDim, start, len) }.Concat(weights.Skip(1).Select(t => t.narrow(0, i, 1))).ToArray();
            var term = Loss(a, w);
            aloneLoss = aloneLoss is null ? term : aloneLoss + term;
        }
        var aloneGrads = torch.autograd.grad(new[] { aloneLoss! }, leaves);
        for (int j = 0; j < leaves.Length; j++)
            MaxDiff(packedGrads[j], aloneGrads[j]).Should().BeLessThan(tol, $"the gradient of leaf {j}");
    }

    private static double MaxDiff(Tensor a, Tensor b)
    {
        a.shape.Should().Equal(b.shape);
        var d = (a - b).abs().max();
        return d.is_complex() ? d.real.item<double>() : d.item<double>();
    }

    // ---------------------------------------------------------------- DeltaRule

    private static (Tensor Q, Tensor K, Tensor V, Tensor Beta, Tensor S0) DeltaInputs(long seed, long length, long n, long nh = 2, long dk = 5, long dv = 3)
    {
        var g = new Generator((ulong)seed);
        var q = Rand(g, 1, nh, length, dk);
        var kRaw = Rand(g, 1, nh, length, dk);
        var k = kRaw / kRaw.norm(-1, keepdim: true);
        var v = Rand(g, 1, nh, length, dv);
        var beta = Rand(g, 1, nh, length).sigmoid();
        var s0 = Rand(g, n, nh, dk, dv) * 0.5;
        return (Leaf(q), Leaf(k), Leaf(v), Leaf(beta), Leaf(s0));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void DeltaRule_packed_equals_each_sequence_alone(bool chunked, bool withInitialState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = DeltaInputs(1, L, Count);
        var cu = Cu(Bounds);
        Tensor? h0 = withInitialState ? s0 : null;
        var leaves = withInitialState ? new[] { q, k, v, beta, s0 } : new[] { q, k, v, beta };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, f) = chunked ? DeltaRule.Chunked(q, k, v, beta, 4, h0, cu) : DeltaRule.Recurrent(q, k, v, beta, h0, cu);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = DeltaRule.Recurrent(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), beta.narrow(2, s, n), h0?.narrow(0, i, 1));
                return new[] { o, f };
            }, 2);
    }

    [Theory]
    [InlineData(4, true, true)]
    [InlineData(4, false, true)]
    [InlineData(3, true, true)]
    [InlineData(64, true, true)]
    [InlineData(4, true, false)]
    [InlineData(4, false, false)]
    [InlineData(3, true, false)]
    [InlineData(64, false, false)]
    public void DeltaRule_both_packed_layouts_equal_each_sequence_alone(int chunkSize, bool withInitialState, bool masked)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = DeltaInputs(6, L, Count);
        var cu = Cu(Bounds);
        Tensor? h0 = withInitialState ? s0 : null;
        var leaves = withInitialState ? new[] { q, k, v, beta, s0 } : new[] { q, k, v, beta };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, f) = DeltaRule.ChunkedPacked(q, k, v, beta, chunkSize, h0, cu, masked ? DeltaRule.PackedLayout.Masked : DeltaRule.PackedLayout.ChunkAligned);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = DeltaRule.Recurrent(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), beta.narrow(2, s, n), h0?.narrow(0, i, 1));
                return new[] { o, f };
            }, 2);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DeltaRule_packed_with_large_chunks_equals_each_sequence_alone(bool masked)
    {
        // Chunk size 513: one chunk per segment, so the aligned row (1 + 2 + 1 chunks) runs in four segments; the masked
        // row has two chunks, each with a boundary inside.
        using var scope = NewDisposeScope();
        long[] bounds = { 0, 2, 602, 605 };
        var (q, k, v, beta, s0) = DeltaInputs(2, 605, 3, nh: 1, dk: 3, dv: 2);
        var cu = Cu(bounds);
        AssertPackedEqualsAlone(bounds, new[] { q, k, v, beta, s0 },
            () =>
            {
                var (o, f) = DeltaRule.ChunkedPacked(q, k, v, beta, 513, s0, cu, masked ? DeltaRule.PackedLayout.Masked : DeltaRule.PackedLayout.ChunkAligned);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = DeltaRule.Chunked(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), beta.narrow(2, s, n), 513, s0.narrow(0, i, 1));
                return new[] { o, f };
            }, 2, 1e-9);
    }

    [Fact]
    public void DeltaRule_one_packed_sequence_equals_the_unpacked_run()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, beta, s0) = DeltaInputs(3, 9, 1);
        var (o1, f1) = DeltaRule.Chunked(q, k, v, beta, 4, s0, Cu(0, 9));
        var (o2, f2) = DeltaRule.Chunked(q, k, v, beta, 4, s0);
        MaxDiff(o1, o2).Should().BeLessThan(1e-12);
        MaxDiff(f1, f2).Should().BeLessThan(1e-12);
    }

    // ---------------------------------------------------------------- GatedDeltaRule

    private static (Tensor Q, Tensor K, Tensor V, Tensor G, Tensor Beta, Tensor S0) GatedInputs(long seed, long length, long n,
        long nh = 2, long dk = 5, long dv = 3)
    {
        var (q, k, v, beta, s0) = DeltaInputs(seed, length, n, nh, dk, dv);
        var g = nn.functional.logsigmoid(Rand(new Generator((ulong)seed + 1000), 1, nh, length) + 1);
        return (q, k, v, Leaf(g), beta, s0);
    }

    [Theory]
    [InlineData(true, 4, true)]
    [InlineData(true, 4, false)]
    [InlineData(true, 3, true)]
    [InlineData(true, 64, false)]
    [InlineData(false, 0, true)]
    [InlineData(false, 0, false)]
    public void GatedDeltaRule_packed_equals_each_sequence_alone(bool chunked, int chunkSize, bool withInitialState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = GatedInputs(7, L, Count);
        var cu = Cu(Bounds);
        Tensor? h0 = withInitialState ? s0 : null;
        var leaves = withInitialState ? new[] { q, k, v, g, beta, s0 } : new[] { q, k, v, g, beta };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, f) = chunked
                    ? GatedDeltaRule.Chunked(q, k, v, g, beta, chunkSize, h0, cu)
                    : GatedDeltaRule.Recurrent(q, k, v, g, beta, h0, cu);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = GatedDeltaRule.Recurrent(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), g.narrow(2, s, n),
                    beta.narrow(2, s, n), h0?.narrow(0, i, 1));
                return new[] { o, f };
            }, 2);
    }

    [Fact]
    public void GatedDeltaRule_packed_over_several_segments_equals_each_sequence_alone()
    {
        // Chunk size 513: one chunk per segment, so the aligned row (1 + 2 + 1 chunks) runs in four segments.
        using var scope = NewDisposeScope();
        long[] bounds = { 0, 2, 602, 605 };
        var (q, k, v, g, beta, s0) = GatedInputs(8, 605, 3, nh: 1, dk: 3, dv: 2);
        var cu = Cu(bounds);
        AssertPackedEqualsAlone(bounds, new[] { q, k, v, g, beta, s0 },
            () =>
            {
                var (o, f) = GatedDeltaRule.Chunked(q, k, v, g, beta, 513, s0, cu);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = GatedDeltaRule.Chunked(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), g.narrow(2, s, n),
                    beta.narrow(2, s, n), 513, s0.narrow(0, i, 1));
                return new[] { o, f };
            }, 2, 1e-9);
    }

    [Fact]
    public void GatedDeltaRule_one_packed_sequence_equals_the_unpacked_run()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g, beta, s0) = GatedInputs(9, 9, 1);
        var (o1, f1) = GatedDeltaRule.Chunked(q, k, v, g, beta, 4, s0, Cu(0, 9));
        var (o2, f2) = GatedDeltaRule.Chunked(q, k, v, g, beta, 4, s0);
        MaxDiff(o1, o2).Should().BeLessThan(1e-12);
        MaxDiff(f1, f2).Should().BeLessThan(1e-12);
    }

    // ---------------------------------------------------------------- SSD

    private static (Tensor X, Tensor A, Tensor B, Tensor C, Tensor S0) SsdInputs(long seed, long length, long n, long nh = 4, long groups = 2,
        long p = 3, long dn = 2)
    {
        var g = new Generator((ulong)seed);
        var x = Rand(g, 1, nh, length, p);
        var a = -nn.functional.softplus(Rand(g, 1, nh, length)) * 0.5;
        var b = Rand(g, 1, groups, length, dn);
        var c = Rand(g, 1, groups, length, dn);
        var s0 = Rand(g, n, nh, p, dn) * 0.5;
        return (Leaf(x), Leaf(a), Leaf(b), Leaf(c), Leaf(s0));
    }

    [Theory]
    [InlineData(true, true, 4)]
    [InlineData(true, false, 4)]
    [InlineData(true, true, 3)]
    [InlineData(true, false, 64)]
    [InlineData(false, true, 4)]
    [InlineData(false, false, 4)]
    public void SSD_packed_equals_each_sequence_alone(bool chunked, bool withInitialState, int chunkSize)
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = SsdInputs(12, L, Count);
        var cu = Cu(Bounds);
        Tensor? h0 = withInitialState ? s0 : null;
        var leaves = withInitialState ? new[] { x, a, b, c, s0 } : new[] { x, a, b, c };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, f) = chunked ? SSD.Chunked(x, a, b, c, chunkSize, h0, cu) : SSD.Recurrent(x, a, b, c, h0, cu);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = SSD.Recurrent(x.narrow(2, s, n), a.narrow(2, s, n), b.narrow(2, s, n), c.narrow(2, s, n), h0?.narrow(0, i, 1));
                return new[] { o, f };
            }, 2);
    }

    [Fact]
    public void SSD_packed_over_several_segments_equals_each_sequence_alone()
    {
        // Chunk size 513: one chunk per segment, so the aligned row (1 + 2 + 1 chunks) runs in four segments.
        using var scope = NewDisposeScope();
        long[] bounds = { 0, 2, 602, 605 };
        var (x, a, b, c, s0) = SsdInputs(13, 605, 3, nh: 2, groups: 1, p: 2);
        var cu = Cu(bounds);
        AssertPackedEqualsAlone(bounds, new[] { x, a, b, c, s0 },
            () =>
            {
                var (o, f) = SSD.Chunked(x, a, b, c, 513, s0, cu);
                return new[] { o, f };
            },
            (i, s, n) =>
            {
                var (o, f) = SSD.Chunked(x.narrow(2, s, n), a.narrow(2, s, n), b.narrow(2, s, n), c.narrow(2, s, n), 513, s0.narrow(0, i, 1));
                return new[] { o, f };
            }, 2, 1e-9);
    }

    [Fact]
    public void SSD_one_packed_sequence_equals_the_unpacked_run()
    {
        using var scope = NewDisposeScope();
        var (x, a, b, c, s0) = SsdInputs(14, 9, 1);
        var (o1, f1) = SSD.Chunked(x, a, b, c, 4, s0, Cu(0, 9));
        var (o2, f2) = SSD.Chunked(x, a, b, c, 4, s0);
        MaxDiff(o1, o2).Should().BeLessThan(1e-12);
        MaxDiff(f1, f2).Should().BeLessThan(1e-12);
    }

    // ---------------------------------------------------------------- mLSTM

    private static (Tensor Q, Tensor K, Tensor V, Tensor I, Tensor F, MLSTMKernelState S0) MlstmInputs(long seed, long length, long n,
        long nh = 2, long dk = 4, long dv = 3)
    {
        var g = new Generator((ulong)seed);
        var q = Rand(g, 1, nh, length, dk);
        var k = Rand(g, 1, nh, length, dk);
        var v = Rand(g, 1, nh, length, dv);
        var ig = Rand(g, 1, nh, length);
        var fg = Rand(g, 1, nh, length) + 2;
        var c0 = Rand(g, n, nh, dk, dv) * 0.5;
        var n0 = Rand(g, n, nh, dk).abs();
        var m0 = Rand(g, n, nh) * 0.3;
        return (Leaf(q), Leaf(k), Leaf(v), Leaf(ig), Leaf(fg), new MLSTMKernelState(Leaf(c0), Leaf(n0), Leaf(m0)));
    }

    private static MLSTMKernelState? Slice(MLSTMKernelState? s, int i) => s is MLSTMKernelState x
        ? new MLSTMKernelState(x.C.narrow(0, i, 1), x.N.narrow(0, i, 1), x.M.narrow(0, i, 1))
        : null;

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void MLSTM_packed_equals_each_sequence_alone(bool chunked, bool withInitialState)
    {
        using var scope = NewDisposeScope();
        var (q, k, v, ig, fg, s0) = MlstmInputs(4, L, Count);
        var cu = Cu(Bounds);
        MLSTMKernelState? h0 = withInitialState ? s0 : null;
        var leaves = withInitialState ? new[] { q, k, v, ig, fg, s0.C, s0.N, s0.M } : new[] { q, k, v, ig, fg };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, f) = chunked
                    ? MLSTMKernel.Chunked(q, k, v, ig, fg, 4, h0, cuSeqlens: cu)
                    : MLSTMKernel.Recurrent(q, k, v, ig, fg, h0, cuSeqlens: cu);
                return new[] { o, f.C, f.N, f.M };
            },
            (i, s, n) =>
            {
                var (o, f) = MLSTMKernel.Recurrent(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), ig.narrow(2, s, n), fg.narrow(2, s, n),
                    Slice(h0, i));
                return new[] { o, f.C, f.N, f.M };
            }, 2, 1e-9);
    }

    [Fact]
    public void MLSTM_packed_over_several_segments_equals_each_sequence_alone()
    {
        using var scope = NewDisposeScope();
        long[] bounds = { 0, 2, 602, 605 };
        var (q, k, v, ig, fg, s0) = MlstmInputs(5, 605, 3, nh: 1, dk: 3, dv: 2);
        var cu = Cu(bounds);
        AssertPackedEqualsAlone(bounds, new[] { q, k, v, ig, fg, s0.C, s0.N, s0.M },
            () =>
            {
                var (o, f) = MLSTMKernel.Chunked(q, k, v, ig, fg, 513, s0, cuSeqlens: cu);
                return new[] { o, f.C, f.N, f.M };
            },
            (i, s, n) =>
            {
                var (o, f) = MLSTMKernel.Chunked(q.narrow(2, s, n), k.narrow(2, s, n), v.narrow(2, s, n), ig.narrow(2, s, n), fg.narrow(2, s, n),
                    513, Slice(s0, i));
                return new[] { o, f.C, f.N, f.M };
            }, 2, 1e-9);
    }

    // ---------------------------------------------------------------- LinearScan / BlockScan2x2

    public enum Form { Compiled, TensorPath, Recurrent, Parallel }

    public enum Coefficients { PerChannel, PerStep, PerBatchStep }

    public static TheoryData<Form, Coefficients, bool, bool> ScanCases()
    {
        var data = new TheoryData<Form, Coefficients, bool, bool>();
        foreach (var form in Enum.GetValues<Form>())
            foreach (var coefficients in Enum.GetValues<Coefficients>())
            {
                data.Add(form, coefficients, true, false);
                data.Add(form, coefficients, false, false);
            }
        foreach (var form in Enum.GetValues<Form>())
            data.Add(form, Coefficients.PerStep, true, true);
        return data;
    }

    private static (Tensor Output, Tensor Final) Linear(Form form, Tensor a, Tensor b, Tensor? h0, Tensor cu) => form switch
    {
        Form.Compiled => LinearScan.Scan(a, b, h0, cu),
        Form.TensorPath => LinearScan.ScanWithPath(a, b, h0, KernelPath.Tensor, cu),
        Form.Recurrent => LinearScan.Recurrent(a, b, h0, cu),
        _ => LinearScan.Parallel(a, b, h0, 4, cu),
    };

    [Theory]
    [MemberData(nameof(ScanCases))]
    public void LinearScan_packed_equals_each_sequence_alone(Form form, Coefficients layout, bool withInitialState, bool complexValued)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        const long n = 3;
        Tensor Values(params long[] shape) => complexValued ? complex(Rand(g, shape), Rand(g, shape)) * 0.6 : Rand(g, shape) * 0.6;
        var a = Leaf(layout switch { Coefficients.PerChannel => Values(n), Coefficients.PerStep => Values(L, n), _ => Values(1, L, n) });
        var b = Leaf(Values(1, L, n));
        var s0 = Leaf(Values(Count, n));
        Tensor? h0 = withInitialState ? s0 : null;
        var cu = Cu(Bounds);
        var leaves = withInitialState ? new[] { a, b, s0 } : new[] { a, b };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, f) = Linear(form, a, b, h0, cu);
                return new[] { o, f };
            },
            (i, s, len) =>
            {
                var ai = layout switch { Coefficients.PerChannel => a, Coefficients.PerStep => a.narrow(0, s, len), _ => a.narrow(1, s, len) };
                var (o, f) = LinearScan.Recurrent(ai, b.narrow(1, s, len), h0?.narrow(0, i, 1));
                return new[] { o, f };
            }, 1, 1e-12);
    }

    public static TheoryData<Form, Coefficients, bool> BlockCases()
    {
        var data = new TheoryData<Form, Coefficients, bool>();
        foreach (var form in Enum.GetValues<Form>())
            foreach (var coefficients in Enum.GetValues<Coefficients>())
            {
                data.Add(form, coefficients, true);
                data.Add(form, coefficients, false);
            }
        return data;
    }

    private static (Tensor Output, Tensor Final) Block(Form form, Tensor m, Tensor f, Tensor? h0, Tensor cu) => form switch
    {
        Form.Compiled => BlockScan2x2.Scan(m, f, h0, cu),
        Form.TensorPath => BlockScan2x2.ScanWithPath(m, f, h0, KernelPath.Tensor, cu),
        Form.Recurrent => BlockScan2x2.Recurrent(m, f, h0, cu),
        _ => BlockScan2x2.Parallel(m, f, h0, 4, cu),
    };

    [Theory]
    [MemberData(nameof(BlockCases))]
    public void BlockScan2x2_packed_equals_each_sequence_alone(Form form, Coefficients layout, bool withInitialState)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(8);
        const long n = 3;
        var m = Leaf(layout switch { Coefficients.PerChannel => Rand(g, n, 2, 2), Coefficients.PerStep => Rand(g, L, n, 2, 2), _ => Rand(g, 1, L, n, 2, 2) } * 0.5);
        var f = Leaf(Rand(g, 1, L, n, 2));
        var s0 = Leaf(Rand(g, Count, n, 2));
        Tensor? h0 = withInitialState ? s0 : null;
        var cu = Cu(Bounds);
        var leaves = withInitialState ? new[] { m, f, s0 } : new[] { m, f };
        AssertPackedEqualsAlone(Bounds, leaves,
            () =>
            {
                var (o, fin) = Block(form, m, f, h0, cu);
                return new[] { o, fin };
            },
            (i, s, len) =>
            {
                var mi = layout switch { Coefficients.PerChannel => m, Coefficients.PerStep => m.narrow(0, s, len), _ => m.narrow(1, s, len) };
                var (o, fin) = BlockScan2x2.Recurrent(mi, f.narrow(1, s, len), h0?.narrow(0, i, 1));
                return new[] { o, fin };
            }, 1, 1e-12);
    }

    // ---------------------------------------------------------------- FftConvolution

    [Theory]
    [InlineData(23L)]
    [InlineData(5L)]
    [InlineData(1L)]
    public void FftConvolution_packed_equals_each_sequence_alone(long kernelLength)
    {
        using var scope = NewDisposeScope();
        var g = new Generator(9);
        const long h = 3;
        var u = Leaf(Rand(g, 1, L, h));
        var kernel = Leaf(Rand(g, h, kernelLength));
        var cu = Cu(Bounds);
        AssertPackedEqualsAlone(Bounds, new[] { u, kernel },
            () => new[] { FftConvolution.Causal(u, kernel, cu) },
            (i, s, len) => new[] { FftConvolution.Causal(u.narrow(1, s, len), kernel.narrow(1, 0, Math.Min(kernelLength, len))) }, 1, 1e-12);
    }

    [Fact]
    public void FftConvolution_packed_output_matches_the_direct_sum()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(10);
        var u = Rand(g, 1, L, 2);
        var kernel = Rand(g, 2, L);
        var y = FftConvolution.Causal(u, kernel, Cu(Bounds));
        var expected = zeros_like(u);
        for (int i = 0; i < Count; i++)
            for (long t = Bounds[i]; t < Bounds[i + 1]; t++)
                for (long j = Bounds[i]; j <= t; j++)
                    expected[0, t] += kernel.select(1, t - j) * u[0, j];
        MaxDiff(y, expected).Should().BeLessThan(1e-12);
    }

    // ---------------------------------------------------------------- Validation

    public static TheoryData<string> Kernels() => new() { "delta", "deltaRecurrent", "gated", "gatedRecurrent", "ssd", "ssdRecurrent", "mlstm", "mlstmRecurrent", "linear", "block", "fft" };

    private static void Call(string kernel, Tensor cu, long batch = 1, long initialCount = -1)
    {
        var g = new Generator(11);
        const long len = 6;
        switch (kernel)
        {
            case "delta":
            case "deltaRecurrent":
            {
                var q = Rand(g, batch, 1, len, 2);
                var beta = Rand(g, batch, 1, len).sigmoid();
                var s0 = initialCount < 0 ? null : Rand(g, initialCount, 1, 2, 2);
                if (kernel == "delta") DeltaRule.Chunked(q, q, q, beta, 4, s0, cu);
                else DeltaRule.Recurrent(q, q, q, beta, s0, cu);
                break;
            }
            case "gated":
            case "gatedRecurrent":
            {
                var q = Rand(g, batch, 1, len, 2);
                var beta = Rand(g, batch, 1, len).sigmoid();
                var decay = -beta;
                var s0 = initialCount < 0 ? null : Rand(g, initialCount, 1, 2, 2);
                if (kernel == "gated") GatedDeltaRule.Chunked(q, q, q, decay, beta, 4, s0, cu);
                else GatedDeltaRule.Recurrent(q, q, q, decay, beta, s0, cu);
                break;
            }
            case "mlstm":
            case "mlstmRecurrent":
            {
                var q = Rand(g, batch, 1, len, 2);
                var gate = Rand(g, batch, 1, len);
                MLSTMKernelState? s0 = initialCount < 0 ? null
                    : new MLSTMKernelState(Rand(g, initialCount, 1, 2, 2), Rand(g, initialCount, 1, 2), Rand(g, initialCount, 1));
                if (kernel == "mlstm") MLSTMKernel.Chunked(q, q, q, gate, gate, 4, s0, cuSeqlens: cu);
                else MLSTMKernel.Recurrent(q, q, q, gate, gate, s0, cuSeqlens: cu);
                break;
            }
            case "ssd":
            case "ssdRecurrent":
            {
                var x = Rand(g, batch, 2, len, 2);
                var a = -Rand(g, batch, 2, len).abs();
                var bc = Rand(g, batch, 1, len, 3);
                var s0 = initialCount < 0 ? null : Rand(g, initialCount, 2, 2, 3);
                if (kernel == "ssd") SSD.Chunked(x, a, bc, bc, 4, s0, cu);
                else SSD.Recurrent(x, a, bc, bc, s0, cu);
                break;
            }
            case "linear":
                LinearScan.Scan(Rand(g, 3), Rand(g, batch, len, 3), initialCount < 0 ? null : Rand(g, initialCount, 3), cu);
                break;
            case "block":
                BlockScan2x2.Parallel(Rand(g, 3, 2, 2), Rand(g, batch, len, 3, 2), initialCount < 0 ? null : Rand(g, initialCount, 3, 2), cuSeqlens: cu);
                break;
            default:
                FftConvolution.Causal(Rand(g, batch, len, 3), Rand(g, 3, len), cu);
                break;
        }
    }

    private static string BatchName(string kernel) => kernel switch { "linear" => "b", "block" => "f", "fft" => "u", "ssd" or "ssdRecurrent" => "x", _ => "q" };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Bad_cuSeqlens_is_refused_naming_the_argument(string kernel)
    {
        using var scope = NewDisposeScope();
        var bad = new[]
        {
            tensor(new int[] { 0, 3, 6 }),                 // not int64
            tensor(new long[] { 0, 3, 3, 6 }).reshape(2, 2), // not rank 1
            tensor(new long[] { 0 }),                      // no sequence
            tensor(new long[] { 1, 3, 6 }),                // not starting at 0
            tensor(new long[] { 0, 3, 5 }),                // not ending at L
            tensor(new long[] { 0, 3, 7 }),                // past L
            tensor(new long[] { 0, 3, 3, 6 }),             // not strictly increasing
            tensor(new long[] { 0, 4, 2, 6 }),             // decreasing
        };
        foreach (var cu in bad)
        {
            var act = () => Call(kernel, cu);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("cuSeqlens", $"for {Check(cu)}");
        }
        var batch = () => Call(kernel, tensor(new long[] { 0, 3, 6 }), batch: 2);
        batch.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(BatchName(kernel));
        if (kernel != "fft")
        {
            var state = () => Call(kernel, tensor(new long[] { 0, 3, 6 }), initialCount: 3);
            state.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("initialState");
            Call(kernel, tensor(new long[] { 0, 3, 6 }), initialCount: 2);   // the right N is accepted
        }
        Call(kernel, tensor(new long[] { 0, 1, 6 }));
    }

    private static string Check(Tensor cu) => $"{cu.dtype} {string.Join(",", cu.shape)}";
}
