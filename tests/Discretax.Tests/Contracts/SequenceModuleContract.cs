using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Contracts;

/// <summary>
/// The shared contract suite of DESIGN.md §5 for every sequence mixer, block and model. A module joins with
/// one line: <c>public sealed class XContract() : SequenceModuleContract(8, h => new X(h));</c>.
/// Everything runs in float64, so the equalities are tight (stated per test).
/// </summary>
public abstract class SequenceModuleContract
{
    private readonly Func<long, SequenceModule> _factory;

    /// <param name="features">The feature size H the module is built for.</param>
    /// <param name="factory">Builds a fresh module for H features.</param>
    protected SequenceModuleContract(long features, Func<long, SequenceModule> factory)
    {
        Features = features;
        _factory = factory;
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
}
