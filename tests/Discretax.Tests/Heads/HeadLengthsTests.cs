using Discretax.Heads;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Heads;

/// <summary>Heads on right-padded batches: pooling over valid steps only, zeros at padded steps, streaming counts.</summary>
public class HeadLengthsTests
{
    /// <summary>With <c>reduce</c>, the mean runs over each sequence's valid steps: equal to the head of that sequence alone (1e-12).</summary>
    [Fact]
    public void APoolingHeadAveragesValidStepsOnly()
    {
        using var scope = NewDisposeScope();
        var head = new ClassificationHead(4, 3);
        head.to(ScalarType.Float64);
        var x = TestUtil.Randn(new Generator(1), new long[] { 3, 6, 4 });
        x[1].narrow(0, 2, 4).fill_(1e9);
        var lengths = tensor(new long[] { 6, 2, 5 });
        var y = head.forward(x, lengths);
        y.shape.Should().Equal(3, 3);
        for (int b = 0; b < 3; b++)
            TestUtil.MaxAbsDiff(y[b], head.forward(x[b].narrow(0, 0, lengths[b].item<long>()))).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void APerStepHeadGivesZerosAtPaddedSteps()
    {
        using var scope = NewDisposeScope();
        var head = new RegressionHead(4, 2, reduce: false);
        head.to(ScalarType.Float64);
        var x = TestUtil.Randn(new Generator(2), new long[] { 2, 5, 4 });
        var y = head.forward(x, tensor(new long[] { 5, 3 }));
        TestUtil.Values(y[0]).Should().Equal(TestUtil.Values(head.forward(x[0])));
        TestUtil.Values(y[1].narrow(0, 0, 3)).Should().Equal(TestUtil.Values(head.forward(x[1].narrow(0, 0, 3))));
        y[1].narrow(0, 3, 2).abs().max().item<double>().Should().Be(0);
    }

    /// <summary>Streaming a pooling head over padded pieces counts each sequence's valid steps (1e-12).</summary>
    [Fact]
    public void APoolingHeadStreamsPaddedPieces()
    {
        using var scope = NewDisposeScope();
        var head = new ClassificationHead(4, 3);
        head.to(ScalarType.Float64);
        var g = new Generator(3);
        var x1 = TestUtil.Randn(g, new long[] { 2, 4, 4 });
        var x2 = TestUtil.Randn(g, new long[] { 2, 3, 4 });
        var (_, s1) = head.Stream(x1, null, tensor(new long[] { 4, 1 }));
        var (y, s2) = head.Stream(x2, s1);
        TestUtil.Values(((PoolingState)s2).Count).Should().Equal(7, 4);
        var seq1 = cat(new[] { x1[1].narrow(0, 0, 1), x2[1] }, 0);
        TestUtil.MaxAbsDiff(y[1], head.forward(seq1)).Should().BeLessThan(1e-12);
        TestUtil.MaxAbsDiff(y[0], head.forward(cat(new[] { x1[0], x2[0] }, 0))).Should().BeLessThan(1e-12);
    }

    [Fact]
    public void BadLengthsNameLengths()
    {
        using var scope = NewDisposeScope();
        var head = new ClassificationHead(4, 3);
        var x = TestUtil.Randn(new Generator(4), new long[] { 2, 5, 4 }, ScalarType.Float32);
        foreach (var bad in new[] { tensor(new long[] { 5 }), tensor(new long[] { 5, 6 }), tensor(new long[] { 0, 2 }), tensor(new[] { 1.0f, 2.0f }) })
        {
            FluentActions.Invoking(() => head.forward(x, bad)).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("lengths");
            FluentActions.Invoking(() => head.Stream(x, null, bad)).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("lengths");
        }
    }
}
