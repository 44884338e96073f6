using Discretax.Layers;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class FlaDeltaNetSequenceMixerTests
{
    /// <summary>
    /// The layer against fla's DeltaNet math (fla/layers/delta_net.py) written out step by step in float64 tensor ops, no
    /// kernel and no library layer: projections; the causal depthwise convolution as a sum over taps, with SiLU on q and k
    /// only for the silu feature map and always on v (without convolutions: silu(q), silu(k) for silu, silu(v) always);
    /// relu or elu + 1 per head; fla's l2norm u / sqrt(|u|^2 + 1e-6) or u / sum(u); q * Dk^-1/2; beta = sigmoid(b_proj x)
    /// per head (1 without b_proj, x 2 for negative eigenvalues); S += beta k (v - S^T k)^T, o = S^T q; then
    /// rms(o) * w (* silu(g_proj x)) and o_proj. Tolerance 1e-11 (float64 round-off over 11 steps).
    /// </summary>
    [Theory]
    [InlineData(2, 1.0, 1.0, true, false, true, false, false, FlaQKActivation.Silu, FlaQKNorm.L2, 64)]
    [InlineData(2, 0.5, 1.5, true, true, false, false, true, FlaQKActivation.Silu, FlaQKNorm.L2, 4)]
    [InlineData(1, 1.0, 2.0, false, false, true, true, false, FlaQKActivation.Elu, FlaQKNorm.Sum, 3)]
    [InlineData(2, 1.0, 1.0, true, true, true, false, true, FlaQKActivation.Relu, FlaQKNorm.L2, 5)]
    [InlineData(2, 1.0, 0.5, true, false, false, false, false, FlaQKActivation.Identity, FlaQKNorm.L2, 1)]
    public void ForwardEqualsFlasMathStepByStep(int heads, double expandK, double expandV, bool useBeta, bool gate, bool conv,
        bool convBias, bool negative, FlaQKActivation act, FlaQKNorm norm, int chunk)
    {
        const int h = 8, l = 11, batch = 2, convSize = 3;
        const double eps = 1e-5;
        int dk = (int)(h * expandK) / heads, dv = (int)(h * expandV) / heads;
        torch.manual_seed(3);
        using var m = new FlaDeltaNetSequenceMixer(h, heads, expandK, expandV, useBeta, gate, conv, convSize, convBias, negative, act, norm, eps, chunk);
        m.to(ScalarType.Float64);
        var gen = new Generator(9);
        var normWeight = m.o_norm is GatedRMSNorm gn ? gn.weight : ((RMSNorm)m.o_norm).weight!;
        Reference.Set(normWeight, TestUtil.Randn(gen, new long[] { dv }));
        using var x = TestUtil.Randn(gen, new long[] { batch, l, h });
        using var y = m.forward(x);

        using var scope = NewDisposeScope();
        Tensor Lin(Tensor w) => x.matmul(w.t());
        Tensor Conv(Tensor u, ShortConvolution c, bool silu)                       // y[t] = act(bias + sum_j w[:, j] u[t - (K-1) + j])
        {
            var padded = nn.functional.pad(u, new long[] { 0, 0, convSize - 1, 0 });
            var sum = c.bias is null ? zeros_like(u) : c.bias.expand_as(u).clone();
            for (int j = 0; j < convSize; j++) sum = sum + padded.narrow(1, j, l) * c.weight.select(1, 0).select(1, j);
            return silu ? nn.functional.silu(sum) : sum;
        }
        Tensor Map(Tensor u) => act switch
        {
            FlaQKActivation.Relu => u.clamp_min(0),
            FlaQKActivation.Elu => where(u > 0, u, u.exp() - 1) + 1,
            _ => u,
        };
        Tensor Norm(Tensor u) => norm == FlaQKNorm.L2 ? u / (u.square().sum(-1, keepdim: true) + 1e-6).sqrt() : u / u.sum(-1, keepdim: true);
        bool silu = act == FlaQKActivation.Silu;
        Tensor q = Lin(m.q_proj.weight!), k = Lin(m.k_proj.weight!), v = Lin(m.v_proj.weight!);
        if (conv) { q = Conv(q, m.q_conv1d!, silu); k = Conv(k, m.k_conv1d!, silu); v = Conv(v, m.v_conv1d!, true); }
        else { if (silu) { q = nn.functional.silu(q); k = nn.functional.silu(k); } v = nn.functional.silu(v); }
        var beta = (useBeta ? Lin(m.b_proj!.weight!).sigmoid() : ones(batch, l, heads, dtype: ScalarType.Float64)) * (negative ? 2 : 1);
        var outputs = zeros(batch, l, heads, dv, dtype: ScalarType.Float64);
        for (int b = 0; b < batch; b++)
            for (int hh = 0; hh < heads; hh++)
            {
                var s = zeros(dk, dv, dtype: ScalarType.Float64);
                for (int t = 0; t < l; t++)
                {
                    var qt = Norm(Map(q[b, t].narrow(0, hh * dk, dk))) / Math.Sqrt(dk);
                    var kt = Norm(Map(k[b, t].narrow(0, hh * dk, dk)));
                    var vt = v[b, t].narrow(0, hh * dv, dv);
                    s = s + beta[b, t, hh] * outer(kt, vt - s.t().matmul(kt));
                    outputs[b, t, hh] = s.t().matmul(qt);
                }
            }
        var o = outputs / (outputs.square().mean(new long[] { -1 }, keepdim: true) + eps).sqrt() * normWeight;
        if (gate) o = o * nn.functional.silu(Lin(m.g_proj!.weight!)).view(batch, l, heads, dv);
        var expected = o.reshape(batch, l, heads * dv).matmul(m.o_proj.weight!.t());
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-11);
    }

    [Fact]
    public void DefaultsNamesAndShapesAreFlas()
    {
        using var m = new FlaDeltaNetSequenceMixer(32);
        m.NumHeads.Should().Be(4);
        m.HeadKDim.Should().Be(8);
        m.HeadVDim.Should().Be(8);
        m.QKActivation.Should().Be(FlaQKActivation.Silu);
        m.QKNorm.Should().Be(FlaQKNorm.L2);
        m.UseBeta.Should().BeTrue();
        m.AllowNegativeEigenvalues.Should().BeFalse();
        m.q_conv1d!.KernelSize.Should().Be(4);
        m.q_conv1d.UseSilu.Should().BeTrue();
        m.v_conv1d!.UseSilu.Should().BeTrue();
        ((RMSNorm)m.o_norm).Eps.Should().Be(1e-5, "the layer's default norm_eps");
        var shapes = m.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        shapes.Keys.Should().Equal("q_proj.weight", "k_proj.weight", "v_proj.weight", "b_proj.weight",
            "q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight", "o_norm.weight", "o_proj.weight");   // fla's order
        shapes["q_proj.weight"].Should().Equal(32, 32);
        shapes["b_proj.weight"].Should().Equal(4, 32);
        shapes["q_conv1d.weight"].Should().Equal(32, 1, 4);
        shapes["o_norm.weight"].Should().Equal(8);
        shapes["o_proj.weight"].Should().Equal(32, 32);

        using var options = new FlaDeltaNetSequenceMixer(32, numHeads: 2, expandK: 0.5, expandV: 1.5, useBeta: false, useGate: true,
            useShortConv: true, convBias: true, qkActivation: FlaQKActivation.Relu);
        var o = options.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        o.Keys.Should().Equal("q_proj.weight", "k_proj.weight", "v_proj.weight", "q_conv1d.weight", "q_conv1d.bias",
            "k_conv1d.weight", "k_conv1d.bias", "v_conv1d.weight", "v_conv1d.bias", "g_proj.weight", "o_norm.weight", "o_proj.weight");
        o["q_proj.weight"].Should().Equal(16, 32);                              // int(32 * 0.5)
        o["v_proj.weight"].Should().Equal(48, 32);                              // int(32 * 1.5)
        o["g_proj.weight"].Should().Equal(48, 32);
        o["o_norm.weight"].Should().Equal(24);
        options.o_norm.Should().BeOfType<GatedRMSNorm>();
        options.q_conv1d!.UseSilu.Should().BeFalse("q and k convolutions have SiLU only for the silu feature map");
        options.v_conv1d!.UseSilu.Should().BeTrue();
    }

    [Fact]
    public void InvalidOptionsThrowNamingTheArgument()
    {
        ((Action)(() => new FlaDeltaNetSequenceMixer(10, numHeads: 4))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("numHeads");
        ((Action)(() => new FlaDeltaNetSequenceMixer(32, numHeads: 4, expandV: 0.1))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("numHeads");
        ((Action)(() => new FlaDeltaNetSequenceMixer(4, expandK: 0.1))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("expandK");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, numHeads: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("numHeads");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, expandV: double.NaN))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("expandV");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, qkActivation: (FlaQKActivation)9))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("qkActivation");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, qkNorm: (FlaQKNorm)9))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("qkNorm");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, normEps: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("normEps");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, convSize: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("convSize");
        ((Action)(() => new FlaDeltaNetSequenceMixer(8, chunkSize: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("chunkSize");
        ((Action)(() => new FlaDeltaNetSequenceMixer(0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("inFeatures");
    }

    /// <summary>With the sum norm, a padded step whose features sum to 0 (zero input, no convolution, the identity map)
    /// would divide by 0; its key is kept out of the memory, so the valid outputs equal the unpadded run's (1e-12, float64).</summary>
    [Fact]
    public void SumNormKeepsPaddedStepsOutOfTheMemory()
    {
        torch.manual_seed(5);
        using var m = new FlaDeltaNetSequenceMixer(8, numHeads: 2, useShortConv: false, qkActivation: FlaQKActivation.Identity, qkNorm: FlaQKNorm.Sum);
        m.to(ScalarType.Float64);
        var gen = new Generator(6);
        using var x = TestUtil.Randn(gen, new long[] { 2, 6, 8 });
        using var lengths = tensor(new long[] { 6, 3 });
        using var padded = m.forward(x, lengths);
        using var alone = m.forward(x[1].narrow(0, 0, 3));
        double.IsFinite(padded.abs().max().item<double>()).Should().BeTrue();
        TestUtil.MaxAbsDiff(padded[1].narrow(0, 0, 3), alone).Should().BeLessThan(1e-12);
        var (_, state) = m.Stream(x, null, lengths);
        using (state) double.IsFinite(((Discretax.Streaming.DeltaNetState)state).S.abs().max().item<double>()).Should().BeTrue();
    }
}
