using Discretax.ChannelMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.ChannelMixers;

/// <summary>Every channel mixer against scalar double loops with hand-set weights.</summary>
public class ChannelMixerTests
{
    private const double Tol = 1e-12;
    private static readonly double[] X = { 0.5, -1.25, 2.0 };

    private static void ShouldMatch(Tensor y, double[] expected)
    {
        var actual = TestUtil.Values(y);
        actual.Length.Should().Be(expected.Length);
        for (int i = 0; i < expected.Length; i++) actual[i].Should().BeApproximately(expected[i], Tol);
    }

    [Fact]
    public void GLUIsW1TimesSigmoidOfW2()
    {
        using var glu = new GLU(3, outFeatures: 2);
        glu.to(ScalarType.Float64);
        var w1 = Reference.Matrix(2, 3, 1); var b1 = Reference.Vector(2, 2);
        var w2 = Reference.Matrix(2, 3, 3); var b2 = Reference.Vector(2, 4);
        Reference.Set(glu.w1.weight!, Reference.ToTensor(w1)); Reference.Set(glu.w1.bias!, Reference.ToTensor(b1));
        Reference.Set(glu.w2.weight!, Reference.ToTensor(w2)); Reference.Set(glu.w2.bias!, Reference.ToTensor(b2));
        using var y = glu.forward(Reference.ToTensor(X));
        var v = Reference.Linear(X, w1, b1); var gate = Reference.Linear(X, w2, b2);
        ShouldMatch(y, v.Select((a, i) => a * Reference.Sigmoid(gate[i])).ToArray());
        new GLU(3, useBias: false).w1.bias.Should().BeNull();
    }

    [Fact]
    public void SwiGLUIsW2OfSiluW1TimesW3()
    {
        using var m = new SwiGLU(3, intermediateDim: 4, outFeatures: 2);
        m.to(ScalarType.Float64);
        var w1 = Reference.Matrix(4, 3, 1); var w3 = Reference.Matrix(4, 3, 2); var w2 = Reference.Matrix(2, 4, 3);
        Reference.Set(m.w1.weight!, Reference.ToTensor(w1));
        Reference.Set(m.w2.weight!, Reference.ToTensor(w2));
        Reference.Set(m.w3.weight!, Reference.ToTensor(w3));
        m.w1.bias.Should().BeNull();
        using var y = m.forward(Reference.ToTensor(X));
        var a = Reference.Linear(X, w1); var b = Reference.Linear(X, w3);
        ShouldMatch(y, Reference.Linear(a.Select((v, i) => Reference.Silu(v) * b[i]).ToArray(), w2));
    }

    [Theory]
    [InlineData(64, 4.0, 256)]   // int(170.67) = 170 -> 256
    [InlineData(384, 4.0, 1024)] // int(1024) = 1024 -> 1024
    [InlineData(100, 4.0, 512)]  // int(266.67) = 266 -> 512
    [InlineData(8, 2.0, 256)]    // int(10.67) = 10 -> 256
    public void SwiGLUDefaultWidthRoundsUpToAMultipleOf256(long h, double ratio, long expected)
    {
        SwiGLU.DefaultIntermediateDim(h, ratio).Should().Be(expected);
        using var m = new SwiGLU(h, hiddenRatio: ratio);
        m.IntermediateDim.Should().Be(expected);
        m.w1.weight!.shape.Should().Equal(expected, h);
    }

    [Theory]
    [InlineData(Activation.ReLU)]
    [InlineData(Activation.GELU)]
    [InlineData(Activation.Swish)]
    [InlineData(Activation.SiLU)]
    [InlineData(Activation.Tanh)]
    public void MLPIsActivationOfLinear(Activation act)
    {
        using var m = new MLPChannelMixer(3, outFeatures: 4, nonLinearity: act, useBias: true);
        m.to(ScalarType.Float64);
        var w = Reference.Matrix(4, 3, 5); var b = Reference.Vector(4, 6);
        Reference.Set(m.linear.weight!, Reference.ToTensor(w)); Reference.Set(m.linear.bias!, Reference.ToTensor(b));
        using var y = m.forward(Reference.ToTensor(X));
        Func<double, double> f = act switch
        {
            Activation.ReLU => v => Math.Max(0, v),
            Activation.GELU => Reference.Gelu,
            Activation.Tanh => Math.Tanh,
            _ => Reference.Silu,
        };
        ShouldMatch(y, Reference.Linear(X, w, b).Select(f).ToArray());
        new MLPChannelMixer(3).linear.bias.Should().BeNull("discretax's default is no bias");
    }

    [Fact]
    public void IdentityReturnsANewHandleWithTheSameValues()
    {
        using var m = new IdentityChannelMixer(3);
        using var x = Reference.ToTensor(X);
        using var y = m.forward(x);
        ReferenceEquals(x, y).Should().BeFalse();
        TestUtil.Values(y).Should().Equal(X);
        var act = () => new IdentityChannelMixer(3, outFeatures: 4);
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("outFeatures");
    }

    [Fact]
    public void ChannelMixersApplyPerPositionOnAnyLeadingShape()
    {
        using var m = new GLU(3);
        m.to(ScalarType.Float64);
        var g = new Generator(7);
        using var x = TestUtil.Randn(g, new long[] { 2, 5, 3 });
        using var y = m.forward(x);
        using var row = m.forward(x[1, 3]);
        TestUtil.MaxAbsDiff(y[1, 3], row).Should().BeLessThan(1e-14);
    }

    [Fact]
    public void WrongFeatureSizeOrDtypeThrowsNamingTheArgument()
    {
        using var m = new SwiGLU(3);
        using var wrong = zeros(2, 4);
        using var ints = zeros(new long[] { 2, 3 }, dtype: ScalarType.Int32);
        foreach (var bad in new[] { wrong, ints })
        {
            var act = () => m.forward(bad);
            act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
        }
    }
}
