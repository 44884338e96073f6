using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Contracts;

/// <summary>
/// The shared contract suite (docs/architecture.md, "The contract suite") for every sequence mixer, block and model. A module joins with
/// one line: <c>public sealed class XContract() : SequenceModuleContract(8, h => new X(h));</c>.
/// Everything runs in float64, so the equalities are tight (stated per test).
/// </summary>
public abstract class SequenceModuleContract
{
    private readonly Func<long, SequenceModule> _factory;
    private readonly Func<long, int, SequenceModule>? _chunked;

    /// <param name="features">The feature size H the module is built for.</param>
    /// <param name="factory">Builds a fresh module for H features.</param>
    /// <param name="chunked">For modules with a chunked kernel: builds the module for H features with a given chunk size
    /// (the chunk-size invariance test runs only with it).</param>
    protected SequenceModuleContract(long features, Func<long, SequenceModule> factory, Func<long, int, SequenceModule>? chunked = null)
    {
        Features = features;
        _factory = factory;
        _chunked = chunked;
    }

    protected long Features { get; }

    /// <summary>Streaming and causality tolerance (max abs difference, float64).</summary>
    protected virtual double Tolerance => 1e-9;

    /// <summary>The output feature size (H unless the module says otherwise).</summary>
    protected virtual long OutFeatures => Features;

    protected SequenceModule Create()
    {
        var m = _factory(Features);
        m.to(ScalarType.Float64);
        return m;
    }

    protected virtual Tensor Input(Generator g, params long[] shape) => TestUtil.Randn(g, shape);

    [Fact]
    public void BatchedInputKeepsBatchAndLength()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(11);
        using var x = Input(g, 3, 13, Features);
        using var y = m.forward(x);
        y.shape.Should().Equal(3, 13, OutFeatures);
        y.dtype.Should().Be(ScalarType.Float64);
        double.IsFinite(y.abs().max().item<double>()).Should().BeTrue();
    }

    [Fact]
    public void UnbatchedInputGivesTheBatchedResultUnbatched()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(12);
        using var x = Input(g, 9, Features);
        using var y = m.forward(x);
        y.shape.Should().Equal(9, OutFeatures);
        using var xb = x.unsqueeze(0);
        using var yb = m.forward(xb);
        TestUtil.MaxAbsDiff(y, yb.squeeze(0)).Should().BeLessThanOrEqualTo(Tolerance);
    }

    [Fact]
    public void OutputsBeforeAChangeDoNotDependOnIt()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(13);
        const int t0 = 7;
        using var x = Input(g, 2, 16, Features);
        using var noise = Input(g, 2, 16 - t0, Features);
        using var x2 = x.clone();
        x2.narrow(1, t0, 16 - t0).add_(noise);
        using var y = m.forward(x);
        using var y2 = m.forward(x2);
        TestUtil.MaxAbsDiff(y.narrow(1, 0, t0), y2.narrow(1, 0, t0)).Should().BeLessThanOrEqualTo(Tolerance,
            "outputs before t0 must not see a change at t0 or later");
        TestUtil.MaxAbsDiff(y.narrow(1, t0, 16 - t0), y2.narrow(1, t0, 16 - t0)).Should().BeGreaterThan(1e-6,
            "the change must reach the outputs at and after t0 (or the test proves nothing)");
    }

    [Theory]
    [InlineData(new[] { 1, 3, 7 }, 20)]
    [InlineData(new[] { 1, 1, 1, 1, 1 }, 5)]
    [InlineData(new[] { 19 }, 20)]
    public void StreamingInPiecesEqualsTheFullForward(int[] pieces, int length)
    {
        using var m = Create();
        m.eval();
        var g = new Generator(14);
        using var x = Input(g, 2, length, Features);
        using var full = m.forward(x);
        var outputs = new List<Tensor>();
        StreamingState? state = null;
        int start = 0;
        foreach (int size in pieces.Append(length - pieces.Sum()).Where(s => s > 0))
        {
            var (y, next) = m.Stream(x.narrow(1, start, size), state);
            state?.Dispose();
            state = next;
            outputs.Add(y);
            start += size;
        }
        state!.BatchSize.Should().Be(2);
        state.DType.Should().Be(ScalarType.Float64);
        state.Device.type.Should().Be(DeviceType.CPU);
        using var streamed = cat(outputs, 1);
        TestUtil.MaxAbsDiff(streamed, full).Should().BeLessThanOrEqualTo(Tolerance);
        state.Dispose();
        outputs.ForEach(o => o.Dispose());
    }

    [Fact]
    public void StreamingAnUnbatchedSequenceWorks()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(15);
        using var x = Input(g, 6, Features);
        using var full = m.forward(x);
        var (a, s1) = m.Stream(x.narrow(0, 0, 2));
        var (b, s2) = m.Stream(x.narrow(0, 2, 4), s1);
        a.shape.Should().Equal(2, OutFeatures);
        s2.BatchSize.Should().Be(1);
        using var joined = cat(new[] { a, b }, 0);
        TestUtil.MaxAbsDiff(joined, full).Should().BeLessThanOrEqualTo(Tolerance);
        s1.Dispose(); s2.Dispose(); a.Dispose(); b.Dispose();
    }

    [Fact]
    public void ForwardAndStreamLeaveOnlyTheirResultsInTheCallersDisposeScope()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(19);
        using var x = Input(g, 2, 8, Features);
        using (var scope = NewDisposeScope())
        {
            var y = m.forward(x);
            scope.DisposablesCount.Should().Be(1, "temporaries of forward must be disposed inside it");
        }
        using (var scope = NewDisposeScope())
        {
            var (y, state) = m.Stream(x);
            int stateTensors = CountTensors(state);
            scope.DisposablesCount.Should().Be(1 + stateTensors, "Stream may leave only its output and the state's tensors");
        }
    }

    private static int CountTensors(StreamingState? s) =>
        s is null ? 0 : s.Tensors.Count + s.Children.Sum(CountTensors);

    [Fact]
    public void GradientsReachEveryParameter()
    {
        using var m = Create();
        m.train();
        var g = new Generator(16);
        using var x = Input(g, 3, 10, Features);
        using var w = TestUtil.Randn(g, new long[] { 3, 10, OutFeatures });
        using var y = m.forward(x);
        using var loss = (y * w).sum();
        loss.backward();
        var parameters = m.named_parameters().ToList();
        parameters.Should().NotBeEmpty("every module under contract has parameters somewhere (or override this test)");
        foreach (var (name, p) in parameters)
        {
            p.grad.Should().NotBeNull($"parameter '{name}' must receive a gradient");
            double maxAbs = p.grad!.abs().max().item<double>();
            double.IsFinite(maxAbs).Should().BeTrue($"the gradient of '{name}' must be finite");
            maxAbs.Should().BeGreaterThan(0, $"the gradient of '{name}' must not be identically zero");
        }
    }

    [Fact]
    public void SaveAndLoadRoundTripIsBitExact()
    {
        using var a = Create();
        var g = new Generator(17);
        using (var warm = Input(g, 4, 12, Features))
        {
            a.train();
            using var _ = a.forward(warm); // moves running statistics, if any
        }
        a.eval();
        using var ms = new MemoryStream();
        a.save(new BinaryWriter(ms));
        ms.Position = 0;
        using var b = Create();
        b.load(new BinaryReader(ms));
        b.eval();
        b.state_dict().Keys.Should().Equal(a.state_dict().Keys);
        using var x = Input(g, 2, 9, Features);
        using var ya = a.forward(x);
        using var yb = b.forward(x);
        TestUtil.Values(yb).Should().Equal(TestUtil.Values(ya));
    }

    [Fact]
    public void BadInputThrowsArgumentExceptionNamingTheArgument()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(18);
        using var rank1 = Input(g, Features);
        using var rank4 = Input(g, 1, 2, 3, Features);
        using var wrongFeatures = Input(g, 2, 5, Features + 1);
        using var empty = zeros(new long[] { 2, 0, Features }, dtype: ScalarType.Float64);
        using var ints = ones(new long[] { 2, 5, Features }, dtype: ScalarType.Int64);
        foreach (var bad in new[] { rank1, rank4, wrongFeatures, empty, ints })
        {
            var act = () => m.forward(bad);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
            var stream = () => m.Stream(bad);
            stream.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
        }
        using var onMeta = randn(new long[] { 2, 4, Features }, dtype: ScalarType.Float64, device: torch.device("meta"));
        FluentActions.Invoking(() => m.forward(onMeta)).Should().Throw<ArgumentException>("an input on another device than the parameters")
            .Which.ParamName.Should().Be("x");
        using var x2 = Input(g, 2, 4, Features);
        using var x3 = Input(g, 3, 4, Features);
        var (y, state) = m.Stream(x2);
        using (y)
        using (state)
        {
            var mismatched = () => m.Stream(x3, state);
            mismatched.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state");
        }
    }

    [Fact]
    public void AForeignStateIsRefusedNamingState()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(21);
        using var x = Input(g, 2, 5, Features);
        var (y, own) = m.Stream(x);
        using (y)
        using (own)
        {
            using var foreign = Foreign(own);
            var act = () => m.Stream(x, foreign);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state", $"a {foreign.Describe()} is not a state of this module");
            if (own is not EmptyState)
            {
                using var empty = new EmptyState(2, x.device, own.DType);
                var act2 = () => m.Stream(x, empty);
                act2.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state");
            }
        }
    }

    [Fact]
    public void AStateOfOtherSizesIsRefusedNamingState()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(22);
        using var x = Input(g, 2, 5, Features);
        var (y, own) = m.Stream(x);
        using (y)
        using (own)
        {
            if (own.TensorCount == 0) return; // a module without a memory has no sizes to get wrong
            // Every tensor one larger in the dimension after the batch: consistent within the state, wrong for the module.
            using var grown = own.Map(t => cat(new[] { t, zeros_like(t.narrow(1, 0, Math.Min(1, t.shape[1])).expand(Grow(t.shape))) }, 1), own.Device);
            var act = () => m.Stream(x, grown);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state");
        }
    }

    private static long[] Grow(long[] shape)
    {
        var s = (long[])shape.Clone();
        s[1] = 1;
        return s;
    }

    /// <summary>A state of the same tree shape whose leaves are of another module's type.</summary>
    private static StreamingState Foreign(StreamingState own) => own switch
    {
        SequenceModelState s => new SequenceModelState(s.Blocks.Select(Foreign).ToArray()),
        BlockState b => new BlockState(Foreign(b.Mixer)),
        EmptyState e => new LRUState(zeros(new long[] { e.BatchSize, 3 }, dtype: ScalarType.ComplexFloat64), e.DType),
        _ => new EmptyState(own.BatchSize, own.Device, own.DType),
    };

    [Fact]
    public void AStateOfAnotherDTypeIsRefusedNamingState()
    {
        using var m = Create();
        m.eval();
        var g = new Generator(23);
        using var x = Input(g, 2, 5, Features);
        var (y, own) = m.Stream(x);
        using (y)
        using (own)
        {
            m.to(ScalarType.Float32);
            var act = () => m.Stream(x.to(ScalarType.Float32), own);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state", "a float64 module's state cannot continue in a float32 module");
        }
    }

    [Fact]
    public void NoModuleReturnsItsInputObject()
    {
        using var m = Create();
        var g = new Generator(24);
        using var x = Input(g, 2, 6, Features);
        using var xu = Input(g, 6, Features);
        foreach (bool training in new[] { false, true })
        {
            m.train(training);
            foreach (var input in new[] { x, xu })
            {
                using var y = m.forward(input);
                ReferenceEquals(y, input).Should().BeFalse("torch.nn.Sequential disposes what a module returns as an intermediate");
                var (ys, s) = m.Stream(input);
                ReferenceEquals(ys, input).Should().BeFalse();
                ys.Dispose();
                s.Dispose();
            }
        }
    }

    /// <summary>
    /// The dtype rule: a float32 module keeps float32 and bfloat16 inputs' dtypes (bfloat16 within relative RMS 5e-2 of
    /// the float32 output of the same rounded input); a float64 input into a float32 module gives exactly the float32
    /// output cast to float64; a bfloat16 module runs on bfloat16 input and gives finite bfloat16 output.
    /// </summary>
    [Fact]
    public void Float32AndBFloat16KeepTheirDTypes()
    {
        using var m = _factory(Features);
        m.eval();
        var g = new Generator(25);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, Features }, ScalarType.Float32);
        TestUtil.KeepsFloat32AndBFloat16Dtypes(m, x, 5e-2);
        using (var y32 = m.forward(x))
        using (var y64 = m.forward(x.to(ScalarType.Float64)))
        {
            y64.dtype.Should().Be(ScalarType.Float64);
            TestUtil.Values(y64).Should().Equal(TestUtil.Values(y32.to(ScalarType.Float64)), "the input is cast to the module's dtype and the output back");
        }
        m.to(ScalarType.BFloat16);
        using var yb = m.forward(x.to(ScalarType.BFloat16));
        yb.dtype.Should().Be(ScalarType.BFloat16);
        double.IsFinite(yb.to(ScalarType.Float32).abs().max().item<float>()).Should().BeTrue();
    }

    /// <summary>Chunked modules: chunk sizes 1, 3 and 16 give the outputs of chunk size 5 (float64, 1e-9), also streamed.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(16)]
    public void ResultsDoNotDependOnTheChunkSize(int chunkSize)
    {
        if (_chunked is null) return; // no chunked kernel inside
        using var a = _chunked(Features, 5);
        using var b = _chunked(Features, chunkSize);
        a.to(ScalarType.Float64);
        b.to(ScalarType.Float64);
        b.load_state_dict(a.state_dict());
        a.eval();
        b.eval();
        var g = new Generator(26);
        using var x = Input(g, 2, 17, Features);
        using var ya = a.forward(x);
        using var yb = b.forward(x);
        TestUtil.MaxAbsDiff(ya, yb).Should().BeLessThanOrEqualTo(1e-9);
        var (sa, stA) = a.Stream(x.narrow(1, 0, 7));
        var (sb, stB) = b.Stream(x.narrow(1, 0, 7), null);
        var (ta, stA2) = a.Stream(x.narrow(1, 7, 10), stA);
        var (tb, stB2) = b.Stream(x.narrow(1, 7, 10), stB);
        TestUtil.MaxAbsDiff(ta, tb).Should().BeLessThanOrEqualTo(1e-9);
        foreach (var d in new IDisposable[] { sa, sb, ta, tb, stA, stB, stA2, stB2 }) d.Dispose();
    }

    /// <summary>
    /// A forward on the <c>meta</c> device (shapes only, no data): catches tensors created on the CPU by default and
    /// CPU-only calls on the non-CPU path. Skipped, naming the op, where libtorch has no meta kernel for an op the
    /// module needs (measured with libtorch 2.10: <c>aten::complex</c>, <c>aten::polar</c>, FFTs, <c>aten::native_batch_norm</c>,
    /// <c>aten::relu</c>, <c>aten::log_sigmoid_forward</c>, convolutions); the skip message names it.
    /// </summary>
    [SkippableFact]
    public void ForwardRunsOnTheMetaDevice()
    {
        using var m = _factory(Features);
        m.eval();
        var meta = torch.device("meta");
        m.to(meta);
        using var x = randn(new long[] { 2, 9, Features }, device: meta);
        try
        {
            using var y = m.forward(x);
            y.device_type.Should().Be(DeviceType.META);
            y.shape.Should().Equal(2, 9, OutFeatures);
            y.dtype.Should().Be(ScalarType.Float32);
        }
        catch (ExternalException e) when (MissingMetaKernel(e) is string op)
        {
            Skip.If(true, $"libtorch 2.10 has no meta kernel for {op}");
        }
    }

    private static string? MissingMetaKernel(Exception e)
    {
        var match = Regex.Match(e.Message, @"(aten::[A-Za-z0-9_.]+): attempted to run this operator with Meta tensors");
        if (match.Success) return match.Groups[1].Value;
        // Convolutions dispatch to convolution_overrideable for backends other than CPU/CUDA/MKLDNN (meta included).
        return e.Message.Contains("convolution_overrideable not implemented") ? "aten::convolution (convolution_overrideable)" : null;
    }

    // ----- Right-padded batches with lengths (docs/variable-length.md) -----

    private static readonly long[] Lengths = { 11, 4, 1 };

    /// <summary>A batch of 3 sequences of lengths 11, 4, 1 padded to 11, with garbage (large values, NaN, inf) in the padding.</summary>
    private Tensor PaddedBatch(Generator g, out Tensor lengths)
    {
        var x = Input(g, 3, 11, Features);
        for (int b = 0; b < 3; b++)
        {
            long pad = 11 - Lengths[b];
            if (pad == 0) continue;
            var tail = x[b].narrow(0, Lengths[b], pad);
            tail.copy_(TestUtil.Randn(g, tail.shape) * 1e6);
            tail[0, 0] = double.NaN;
            tail[pad - 1, Features - 1] = double.PositiveInfinity;
        }
        lengths = tensor(Lengths, dtype: ScalarType.Int64);
        return x;
    }

    /// <summary>Valid outputs equal each sequence run alone (float64, 1e-9); padded outputs are exactly zero.</summary>
    [Fact]
    public void APaddedBatchGivesEachSequenceItsOwnOutputsAndZerosElsewhere()
    {
        using var scope = NewDisposeScope();
        var m = Create();
        m.eval();
        var x = PaddedBatch(new Generator(31), out var lengths);
        var y = m.forward(x, lengths);
        y.shape.Should().Equal(3, 11, OutFeatures);
        for (int b = 0; b < 3; b++)
        {
            var alone = m.forward(x[b].narrow(0, 0, Lengths[b]));
            TestUtil.MaxAbsDiff(y[b].narrow(0, 0, Lengths[b]), alone).Should().BeLessThanOrEqualTo(Tolerance, $"sequence {b} (length {Lengths[b]})");
            if (Lengths[b] < 11)
                y[b].narrow(0, Lengths[b], 11 - Lengths[b]).abs().max().item<double>().Should().Be(0, "padded outputs are zero");
        }
        var (ys, _) = m.Stream(x, null, lengths);
        TestUtil.MaxAbsDiff(ys, y).Should().BeLessThanOrEqualTo(Tolerance, "Stream with lengths gives the forward's outputs");
    }

    /// <summary>
    /// The state Stream returns for a padded batch is, per sequence, the one after its last valid step: continuing it
    /// with a second piece gives sequence b's outputs of its valid first part and the second piece run alone (1e-9).
    /// </summary>
    [Fact]
    public void TheStateOfAPaddedPieceContinuesEachSequenceAfterItsLastValidStep()
    {
        using var scope = NewDisposeScope();
        var m = Create();
        m.eval();
        var g = new Generator(32);
        var x1 = PaddedBatch(g, out var lengths);
        var x2 = Input(g, 3, 5, Features);
        var (_, state) = m.Stream(x1, null, lengths);
        var (y2, _) = m.Stream(x2, state);
        for (int b = 0; b < 3; b++)
        {
            var whole = cat(new[] { x1[b].narrow(0, 0, Lengths[b]), x2[b] }, 0);
            var alone = m.forward(whole).narrow(0, Lengths[b], 5);
            TestUtil.MaxAbsDiff(y2[b], alone).Should().BeLessThanOrEqualTo(Tolerance, $"sequence {b} continued from its state");
        }
    }

    /// <summary>
    /// In training too, nothing in the padding reaches a valid output or a running statistic: two different fillings
    /// of the padding give identical valid outputs and buffers (dropout off, batch norm in training mode).
    /// </summary>
    [Fact]
    public void PaddingChangesNothingInTraining()
    {
        using var scope = NewDisposeScope();
        var a = Create();
        var b = Create();
        b.load_state_dict(a.state_dict());
        foreach (var m in new[] { a, b })
        {
            m.train();
            foreach (var (_, child) in m.named_modules())
                if (child is Discretax.Layers.FastDropout) child.eval();
        }
        var xa = PaddedBatch(new Generator(33), out var lengths);
        var xb = xa.clone();
        xb[1].narrow(0, 4, 7).copy_(TestUtil.Randn(new Generator(34), new long[] { 7, Features }));
        xb[2].narrow(0, 1, 10).fill_(-3.0);
        var ya = a.forward(xa, lengths);
        var yb = b.forward(xb, lengths);
        TestUtil.Values(ya).Should().Equal(TestUtil.Values(yb), "valid outputs must not depend on the padding (and padded outputs are zero)");
        var buffersA = a.named_buffers().ToList();
        var buffersB = b.named_buffers().ToDictionary(kv => kv.name, kv => kv.buffer);
        foreach (var (name, buffer) in buffersA)
            TestUtil.Values(buffer).Should().Equal(TestUtil.Values(buffersB[name]), $"buffer '{name}' must not count padded steps");
    }

    [Fact]
    public void BadLengthsThrowArgumentExceptionNamingLengths()
    {
        using var scope = NewDisposeScope();
        var m = Create();
        m.eval();
        var x = Input(new Generator(35), 2, 6, Features);
        var bad = new (Tensor Lengths, string Why)[]
        {
            (tensor(new long[] { 6, 3, 2 }), "another batch size"),
            (tensor(new long[] { 6 }), "another batch size"),
            (tensor(new[] { 6.0, 3.0 }), "a floating dtype"),
            (tensor(new long[] { 6, 0 }), "a length below 1"),
            (tensor(new long[] { 7, 3 }), "a length above L"),
            (tensor(new long[,] { { 6, 3 } }), "rank 2"),
            (tensor(new long[] { 6, 3 }, device: torch.device("meta")), "another device"),
        };
        foreach (var (lengths, why) in bad)
        {
            var act = () => m.forward(x, lengths);
            act.Should().Throw<ArgumentException>(why).Which.ParamName.Should().Be("lengths", why);
            var stream = () => m.Stream(x, null, lengths);
            stream.Should().Throw<ArgumentException>(why).Which.ParamName.Should().Be("lengths", why);
        }
    }

    [Fact]
    public void AnUnbatchedSequenceTakesOneLength()
    {
        using var scope = NewDisposeScope();
        var m = Create();
        m.eval();
        var x = Input(new Generator(36), 7, Features);
        var y = m.forward(x, tensor(new long[] { 4 }));
        y.shape.Should().Equal(7, OutFeatures);
        TestUtil.MaxAbsDiff(y.narrow(0, 0, 4), m.forward(x.narrow(0, 0, 4))).Should().BeLessThanOrEqualTo(Tolerance);
        y.narrow(0, 4, 3).abs().max().item<double>().Should().Be(0);
    }

    // ----- Packed sequences (cu_seqlens) -----

    /// <summary>
    /// Packed sequences of lengths 5, 1, 8 in one row: each output segment equals that sequence run alone (float64),
    /// and the returned state (batch 3) continues each sequence; a streamed second packed piece equals the
    /// continuation of each sequence alone.
    /// </summary>
    [Fact]
    public void PackedSequencesEqualEachSequenceAlone()
    {
        using var scope = NewDisposeScope();
        var m = Create();
        m.eval();
        var g = new Generator(41);
        long[] lengths = { 5, 1, 8 };
        var x = Input(g, 1, 14, Features);
        var cu = tensor(new long[] { 0, 5, 6, 14 });
        var y = m.ForwardPacked(x, cu);
        y.shape.Should().Equal(1, 14, OutFeatures);
        var (ys, state) = m.StreamPacked(x, cu);
        TestUtil.MaxAbsDiff(ys, y).Should().BeLessThanOrEqualTo(Tolerance);
        state.BatchSize.Should().Be(3);
        var x2 = Input(g, 1, 6, Features);
        var (y2, _) = m.StreamPacked(x2, tensor(new long[] { 0, 2, 5, 6 }), state);
        long start = 0, start2 = 0;
        long[] lengths2 = { 2, 3, 1 };
        for (int n = 0; n < 3; n++)
        {
            var seq = x[0].narrow(0, start, lengths[n]);
            TestUtil.MaxAbsDiff(y[0].narrow(0, start, lengths[n]), m.forward(seq)).Should().BeLessThanOrEqualTo(Tolerance, $"sequence {n}");
            var whole = cat(new[] { seq, x2[0].narrow(0, start2, lengths2[n]) }, 0);
            TestUtil.MaxAbsDiff(y2[0].narrow(0, start2, lengths2[n]), m.forward(whole).narrow(0, lengths[n], lengths2[n]))
                .Should().BeLessThanOrEqualTo(Tolerance, $"sequence {n} continued");
            start += lengths[n];
            start2 += lengths2[n];
        }
        var bad = new (Tensor Cu, string Why)[]
        {
            (tensor(new long[] { 1, 5, 14 }), "not starting at 0"),
            (tensor(new long[] { 0, 5, 13 }), "not ending at T"),
            (tensor(new long[] { 0, 5, 5, 14 }), "an empty sequence"),
            (tensor(new[] { 0.0, 14.0 }), "a floating dtype"),
        };
        foreach (var (c, why) in bad)
            FluentActions.Invoking(() => m.ForwardPacked(x, c)).Should().Throw<ArgumentException>(why).Which.ParamName.Should().Be("cuSeqlens", why);
        FluentActions.Invoking(() => m.ForwardPacked(Input(g, 2, 14, Features), cu)).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
    }

    /// <summary>Parameter gradients through packed sequences equal those through each sequence alone (float64, eval, 1e-9 relative).</summary>
    [Fact]
    public void PackedGradientsEqualThoseOfEachSequenceAlone()
    {
        using var scope = NewDisposeScope();
        var a = Create();
        var b = Create();
        b.load_state_dict(a.state_dict());
        a.eval();
        b.eval();
        var g = new Generator(42);
        long[] lengths = { 3, 9, 1, 6 };
        var x = Input(g, 1, 19, Features);
        var w = TestUtil.Randn(g, new long[] { 1, 19, OutFeatures });
        (a.ForwardPacked(x, tensor(new long[] { 0, 3, 12, 13, 19 })) * w).sum().backward();
        long start = 0;
        Tensor total = zeros(1, dtype: ScalarType.Float64);
        foreach (long len in lengths)
        {
            total = total + (b.forward(x[0].narrow(0, start, len)) * w[0].narrow(0, start, len)).sum();
            start += len;
        }
        total.backward();
        var gradsB = b.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        foreach (var (name, p) in a.named_parameters())
        {
            var ga = p.grad;
            var gb = gradsB[name];
            (ga is null).Should().Be(gb is null, name);
            if (ga is null) continue;
            double scale = Math.Max(1.0, gb!.abs().max().item<double>());
            TestUtil.MaxAbsDiff(ga, gb).Should().BeLessThanOrEqualTo(1e-9 * scale, $"gradient of {name}");
        }
    }

    /// <summary>
    /// Causality in training mode (dropout off), for every module without batch norm: batch norm's training
    /// statistics span all steps, so a batch-norm module is causal in eval mode only (docs/architecture.md); every
    /// other module must be causal while it trains too, as a language model needs (float64, 1e-9).
    /// </summary>
    [Fact]
    public void OutputsBeforeAChangeDoNotDependOnItInTrainingToo()
    {
        using var scope = NewDisposeScope();
        var m = Create();
        if (m.named_modules().Any(c => c.module is TorchSharp.Modules.BatchNorm1d or Discretax.Layers.EquinoxBatchNorm)) return; // causal in eval mode only, by design
        m.train();
        foreach (var (_, child) in m.named_modules())
            if (child is Discretax.Layers.FastDropout) child.eval();
        var g = new Generator(43);
        const int t0 = 6;
        var x = Input(g, 2, 14, Features);
        var x2 = x.clone();
        x2.narrow(1, t0, 14 - t0).add_(Input(g, 2, 14 - t0, Features));
        var y = m.forward(x);
        var y2 = m.forward(x2);
        TestUtil.MaxAbsDiff(y.narrow(1, 0, t0), y2.narrow(1, 0, t0)).Should().BeLessThanOrEqualTo(Tolerance,
            "in training mode too, outputs before t0 must not see a change at t0 or later");
        TestUtil.MaxAbsDiff(y.narrow(1, t0, 14 - t0), y2.narrow(1, t0, 14 - t0)).Should().BeGreaterThan(1e-6);
    }
}
