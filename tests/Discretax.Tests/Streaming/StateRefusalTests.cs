using Discretax.Layers;
using Discretax.Models;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Streaming;

/// <summary>
/// The states that used to be accepted or to fail inside libtorch: each is now an ArgumentException named "state"
/// whose message says what was expected and what came.
/// </summary>
public class StateRefusalTests
{
    private static void Refused(SequenceModule m, Tensor x, StreamingState foreign, params string[] messageParts)
    {
        var act = () => m.Stream(x, foreign);
        var e = act.Should().Throw<ArgumentException>().Which;
        e.ParamName.Should().Be("state");
        foreach (var part in messageParts) e.Message.Should().Contain(part);
    }

    [Fact]
    public void AShortConvolutionRefusesTheStateOfAnotherKernelSize()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(1), new long[] { 2, 10, 16 }, ScalarType.Float32);
        var (_, other) = new ShortConvolution(16, kernelSize: 3).Stream(x);
        // It used to return 9 steps for 10.
        Refused(new ShortConvolution(16), x, other, "ShortConvolutionState", "[2, 3, 16]", "[2, 2, 16]");
    }

    [Fact]
    public void LinOSSRefusesTheStateOfAnotherStateDim()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(2), new long[] { 2, 5, 8 }, ScalarType.Float32);
        var (_, other) = new LinOSSSequenceMixer(8, stateDim: 6).Stream(x);
        Refused(new LinOSSSequenceMixer(8, stateDim: 4), x, other, "LinOSSState", "[2, 4, 2]");
    }

    [Fact]
    public void DeltaNetAndS4DRefuseAnLRUStateNamingBothTypes()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(3), new long[] { 2, 5, 8 }, ScalarType.Float32);
        var (_, lru) = new LRUSequenceMixer(8, stateDim: 4).Stream(x);
        Refused(new DeltaNetSequenceMixer(8, numHeads: 2), x, lru, "DeltaNetState", "LRUState");
        Refused(new S4DSequenceMixer(8, stateDim: 4), x, lru, "S4DState", "LRUState");
    }

    [Fact]
    public void TransformerDeltaNetRefusesTheStateOfAModelWithOtherBlocks()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(4), new long[] { 2, 5, 8 }, ScalarType.Float32);
        var (_, threeLayers) = new TransformerDeltaNet(8, chunkSize: 4, numLayers: 3).Stream(x);
        Refused(new TransformerDeltaNet(8, chunkSize: 4, numLayers: 2), x, threeLayers, "2 blocks", "3 block states");
        var (_, lruModel) = new LRU(8, numBlocks: 2, stateDim: 4).Stream(x);
        Refused(new TransformerDeltaNet(8, chunkSize: 4, numLayers: 2), x, lruModel, "DeltaNetState", "LRUState");
    }

    [Fact]
    public void LRURefusesAStateOfOtherSizesNamingState()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(5), new long[] { 2, 5, 8 }, ScalarType.Float32);
        var (_, other) = new LRUSequenceMixer(8, stateDim: 6).Stream(x);
        Refused(new LRUSequenceMixer(8, stateDim: 4), x, other, "LRUState", "[2, 4]", "[2, 6]");
    }

    [Fact]
    public void AStateOfAnotherDTypeIsRefused()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(6), new long[] { 2, 5, 8 });
        var m = new LRUSequenceMixer(8, stateDim: 4);
        m.to(ScalarType.Float64);
        var (_, state64) = m.Stream(x);
        m.to(ScalarType.Float32);
        Refused(m, x, state64, "Float64", "Float32");
    }

    [Fact]
    public void ADisposedStateIsRefused()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(7), new long[] { 2, 5, 8 }, ScalarType.Float32);
        var m = new LRUSequenceMixer(8, stateDim: 4);
        var (_, state) = m.Stream(x);
        state.Dispose();
        var act = () => m.Stream(x, state);
        act.Should().Throw<ObjectDisposedException>();
    }
}
