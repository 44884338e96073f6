using Discretax.ChannelMixers;
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Layers;
using Discretax.Models;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Streaming;

/// <summary><see cref="SequenceNetwork"/>: forward as <c>Sequential</c>, streaming equal to the forward, state checks.</summary>
public class SequenceNetworkTests
{
    private static SequenceNetwork Build(long features = 3, long hidden = 8)
    {
        var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(features, hidden)),
            ("model", new LRU(hidden, numBlocks: 2, stateDim: 4)),
            ("head", new RegressionHead(hidden, 2, reduce: false)));
        net.to(ScalarType.Float64);
        return net;
    }

    [Fact]
    public void ForwardEqualsSequentialOfTheSameStagesAndKeysAreTheSame()
    {
        using var net = Build();
        net.eval();
        using var x = TestUtil.Randn(new Generator(1), new long[] { 2, 7, 3 });
        using var y = net.forward(x);
        using var seq = nn.Sequential(("encoder", net["encoder"]), ("model", net["model"]), ("head", net["head"]));
        using var ys = seq.forward(x);
        TestUtil.Values(y).Should().Equal(TestUtil.Values(ys));
        net.state_dict().Keys.Should().Equal(seq.state_dict().Keys);
        net.state_dict().Keys.Should().Contain("model.blocks.1.sequence_mixer.nu_log");
    }

    /// <summary>Pieces 1, 4, 5 continue each other: equal to the full forward to 1e-12 (float64, eval).</summary>
    [Fact]
    public void StreamingInPiecesEqualsTheFullForward()
    {
        using var net = Build();
        net.eval();
        using var x = TestUtil.Randn(new Generator(2), new long[] { 2, 10, 3 });
        using var full = net.forward(x);
        var (a, s1) = net.Stream(x.narrow(1, 0, 1));
        var (b, s2) = net.Stream(x.narrow(1, 1, 4), s1);
        var (c, s3) = net.Stream(x.narrow(1, 5, 5), s2);
        using var joined = cat(new[] { a, b, c }, 1);
        TestUtil.MaxAbsDiff(joined, full).Should().BeLessThan(1e-12);
        s3.Should().BeOfType<SequenceModelState>().Which.Blocks.Should().HaveCount(2, "two stages stream: the model and the head");
        foreach (var d in new IDisposable[] { a, b, c, s1, s2, s3 }) d.Dispose();
    }

    /// <summary>
    /// A pooling classification head streams the running mean: after each piece the output is the full forward's
    /// output for the sequence so far (float64, 1e-12), and after the last piece the full sequence's.
    /// </summary>
    [Fact]
    public void APoolingHeadStreamsTheMeanOfEveryStepSoFar()
    {
        using var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(3, 8)),
            ("model", new DeltaNet(8, numBlocks: 2, numHeads: 2, chunkSize: 3)),
            ("head", new ClassificationHead(8, 4)));
        net.to(ScalarType.Float64);
        net.eval();
        using var x = TestUtil.Randn(new Generator(5), new long[] { 2, 9, 3 });
        StreamingState? state = null;
        int start = 0;
        foreach (int size in new[] { 2, 1, 6 })
        {
            var (y, next) = net.Stream(x.narrow(1, start, size), state);
            state?.Dispose();
            state = next;
            start += size;
            using (y)
            using (var full = net.forward(x.narrow(1, 0, start)))
            {
                y.shape.Should().Equal(2, 4);
                TestUtil.MaxAbsDiff(y, full).Should().BeLessThan(1e-12);
            }
        }
        TestUtil.Values(state!.Children[1].Should().BeOfType<PoolingState>().Which.Count).Should().Equal(9, 9);
        state.Dispose();
    }

    /// <summary>
    /// Lengths thread from the encoder through the model to a pooling head: each sequence of a padded batch gets the
    /// prediction of that sequence alone (float64, 1e-12), and streaming padded pieces continues each sequence.
    /// </summary>
    [Fact]
    public void LengthsThreadThroughTheWholeNetwork()
    {
        using var scope = NewDisposeScope();
        var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(3, 8)),
            ("model", new DeltaNet(8, numBlocks: 2, numHeads: 2, chunkSize: 3)),
            ("head", new ClassificationHead(8, 4)));
        net.to(ScalarType.Float64);
        net.eval();
        var x = TestUtil.Randn(new Generator(6), new long[] { 3, 8, 3 });
        var lengths = tensor(new long[] { 8, 5, 2 });
        var y = net.forward(x, lengths);
        for (int b = 0; b < 3; b++)
            TestUtil.MaxAbsDiff(y[b], net.forward(x[b].narrow(0, 0, lengths[b].item<long>()))).Should().BeLessThan(1e-12);
        var (_, state) = net.Stream(x, null, lengths);
        var more = TestUtil.Randn(new Generator(7), new long[] { 3, 2, 3 });
        var (y2, _) = net.Stream(more, state);
        var whole1 = cat(new[] { x[1].narrow(0, 0, 5), more[1] }, 0);
        TestUtil.MaxAbsDiff(y2[1], net.forward(whole1)).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void AStateOfAnotherNetworkIsRefusedNamingState()
    {
        using var net = Build();
        net.eval();
        using var other = new SequenceNetwork(("model", new SequenceModel(8, new[] {
            new Discretax.Blocks.StandardBlock(8, new ShortConvolution(8), new GLU(8)) })));
        other.to(ScalarType.Float64);
        other.eval();
        using var x = TestUtil.Randn(new Generator(3), new long[] { 2, 4, 3 });
        using var h = TestUtil.Randn(new Generator(4), new long[] { 2, 4, 8 });
        var (y, foreign) = other.Stream(h);
        using (y)
        using (foreign)
        {
            var act = () => net.Stream(x, foreign);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state");
        }
    }

    [Fact]
    public void BadStagesAreRefused()
    {
        FluentActions.Invoking(() => new SequenceNetwork()).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("stages");
        FluentActions.Invoking(() => new SequenceNetwork(("head", new RegressionHead(4, 1))))
            .Should().Throw<ArgumentException>().WithMessage("*sequence module*");
        FluentActions.Invoking(() => new SequenceNetwork(("a", new ShortConvolution(4)), ("a", new ShortConvolution(4))))
            .Should().Throw<ArgumentException>().WithMessage("*twice*");
        FluentActions.Invoking(() => new SequenceNetwork(("a.b", new ShortConvolution(4))))
            .Should().Throw<ArgumentException>().WithMessage("*without '.'*");
    }
}
