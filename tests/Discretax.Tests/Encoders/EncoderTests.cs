using Discretax.Encoders;
using static TorchSharp.torch;

namespace Discretax.Tests.Encoders;

public class EncoderTests
{
    [Fact]
    public void LinearEncoderMapsEveryStep()
    {
        using var enc = new LinearEncoder(3, 2);
        enc.to(ScalarType.Float64);
        enc.linear.bias.Should().BeNull("no bias by default, as discretax");
        var w = Reference.Matrix(2, 3, 1);
        Reference.Set(enc.linear.weight!, Reference.ToTensor(w));
        var x = new[] { 1.0, 2, 3, -1, 0.5, 0 };
        using var y = enc.forward(tensor(x, new long[] { 1, 2, 3 }, ScalarType.Float64));
        y.shape.Should().Equal(1, 2, 2);
        var expected = Reference.Linear(x[..3], w).Concat(Reference.Linear(x[3..], w)).ToArray();
        var actual = TestUtil.Values(y);
        for (int i = 0; i < 4; i++) actual[i].Should().BeApproximately(expected[i], 1e-14);
        using var unbatched = enc.forward(tensor(x, new long[] { 2, 3 }, ScalarType.Float64));
        unbatched.shape.Should().Equal(2, 2);
    }

    [Fact]
    public void EmbeddingEncoderLooksUpRowsAndRejectsBadIds()
    {
        using var enc = new EmbeddingEncoder(5, 3);
        using var ids = tensor(new long[] { 4, 0, 2 }, new long[] { 1, 3 });
        using var y = enc.forward(ids);
        y.shape.Should().Equal(1, 3, 3);
        TestUtil.MaxAbsDiff(y[0, 0], enc.embedding.weight![4]).Should().Be(0);
        TestUtil.MaxAbsDiff(y[0, 2], enc.embedding.weight![2]).Should().Be(0);

        using var tooLarge = tensor(new long[] { 1, 5 });
        var act = () => enc.forward(tooLarge);
        act.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("ids");
        using var floats = tensor(new float[] { 1, 2 });
        var act2 = () => enc.forward(floats);
        act2.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("ids");
    }
}
