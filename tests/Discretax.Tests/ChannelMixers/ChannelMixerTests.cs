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

    /// <summary>The tanh approximation of GELU, jax.nn.gelu's default (approximate=True), written out.</summary>
    private static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    /// <summary>xlstm-jax's GatedFeedForward: proj_down(gelu_tanh(proj_up_gate(x)) * proj_up(x)), biases included;
    /// the erf form and SiLU on request; the fused layout (gate rows, then z rows) computes the same.</summary>
    [Theory]
    [InlineData(Activation.GELU, true)]
    [InlineData(Activation.GELU, false)]
    [InlineData(Activation.SiLU, false)]
    public void GatedFeedForwardIsProjDownOfActGateTimesUp(Activation act, bool approximate)
    {
        using var m = new GatedFeedForward(3, 4, act, approximate, bias: true);
        m.to(ScalarType.Float64);
        var wg = Reference.Matrix(4, 3, 1); var bg = Reference.Vector(4, 2);
        var wu = Reference.Matrix(4, 3, 3); var bu = Reference.Vector(4, 4);
        var wd = Reference.Matrix(3, 4, 5); var bd = Reference.Vector(3, 6);
        Reference.Set(m.proj_up_gate!.weight!, Reference.ToTensor(wg)); Reference.Set(m.proj_up_gate.bias!, Reference.ToTensor(bg));
        Reference.Set(m.proj_up!.weight!, Reference.ToTensor(wu)); Reference.Set(m.proj_up.bias!, Reference.ToTensor(bu));
        Reference.Set(m.proj_down.weight!, Reference.ToTensor(wd)); Reference.Set(m.proj_down.bias!, Reference.ToTensor(bd));
        Func<double, double> f = act == Activation.SiLU ? Reference.Silu : approximate ? GeluTanh : Reference.Gelu;
        var gate = Reference.Linear(X, wg, bg); var up = Reference.Linear(X, wu, bu);
        var expected = Reference.Linear(gate.Select((g, i) => f(g) * up[i]).ToArray(), wd, bd);
        using var y = m.forward(Reference.ToTensor(X));
        ShouldMatch(y, expected);

        using var fused = new GatedFeedForward(3, 4, act, approximate, bias: true, fused: true);
        fused.to(ScalarType.Float64);
        fused.proj_up.Should().BeNull();
        fused.proj_up_gate_z!.weight!.shape.Should().Equal(8, 3);
        Reference.Set(fused.proj_up_gate_z.weight!, cat(new[] { Reference.ToTensor(wg), Reference.ToTensor(wu) }, 0));
        Reference.Set(fused.proj_up_gate_z.bias!, cat(new[] { Reference.ToTensor(bg), Reference.ToTensor(bu) }, 0));
        Reference.Set(fused.proj_down.weight!, Reference.ToTensor(wd)); Reference.Set(fused.proj_down.bias!, Reference.ToTensor(bd));
        using var yf = fused.forward(Reference.ToTensor(X));
        ShouldMatch(yf, expected);
        if (act == Activation.GELU && !approximate)
            ShouldMatch(y, Reference.Linear(gate.Select((g, i) => Reference.Gelu(g) * up[i]).ToArray(), wd, bd));
    }

    /// <summary>Names and inits (xlstm-jax): small init of the up-projections, Wang / Wang2 / zeros of proj_down, no
    /// biases by default; the middle size rounds 1.3 H up to a multiple of 64.</summary>
    [Fact]
    public void GatedFeedForwardNamesInitsAndWidth()
    {
        GatedFeedForward.UpProjDim(8, 1.3).Should().Be(64);
        GatedFeedForward.UpProjDim(4096, 1.3).Should().Be(5376);     // ceil(5324.8 / 64) = 84
        GatedFeedForward.UpProjDim(96, 2.0, 16).Should().Be(192);
        using var m = new GatedFeedForward(256, 512, numBlocks: 4);
        m.state_dict().Keys.Should().BeEquivalentTo("proj_up_gate.weight", "proj_up.weight", "proj_down.weight");
        double small = Math.Sqrt(2.0 / (5 * 256)), wang = 2.0 / 4 / Math.Sqrt(256);
        Rms(m.proj_up!.weight!).Should().BeApproximately(small, 0.03 * small);
        Rms(m.proj_up_gate!.weight!).Should().BeApproximately(small, 0.03 * small);
        Rms(m.proj_down.weight!).Should().BeApproximately(wang, 0.03 * wang);
        using var w2 = new GatedFeedForward(256, 512, numBlocks: 4, outputInitFn: Discretax.SequenceMixers.MLSTMOutputInit.Wang2);
        Rms(w2.proj_down.weight!).Should().BeApproximately(wang / 2, 0.03 * wang / 2);
        using var z = new GatedFeedForward(256, 512, outputInitFn: Discretax.SequenceMixers.MLSTMOutputInit.Zeros);
        TestUtil.Values(z.proj_down.weight!).Should().OnlyContain(v => v == 0);
        using var fused = new GatedFeedForward(8, 16, fused: true);
        fused.state_dict().Keys.Should().BeEquivalentTo("proj_up_gate_z.weight", "proj_down.weight");
    }

    private static double Rms(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64);
        return d.square().mean().sqrt().item<double>();
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
