using Discretax.Layers;
using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class GatedDeltaNetSequenceMixerTests
{
    /// <summary>
    /// The mixer against fla's GatedDeltaNet layer math written out step by step in float64 tensor ops (no kernel, no
    /// library layer): projections, causal depthwise convolution + SiLU written as a sum over taps (or SiLU alone),
    /// fla's l2norm x / sqrt(|x|^2 + 1e-6), q * Dk^-1/2, beta = sigmoid (x2), g = -exp(A_log) softplus(a + dt_bias),
    /// value head i reading query/key head i / (HV / NH), S = exp(g) S; S += beta k (v - S^T k)^T; o = S^T q, then
    /// rms(o) * w (* silu(g_proj x)) and o_proj. Tolerance 1e-11 (float64 round-off over 13 steps).
    /// </summary>
    [Theory]
    [InlineData(2, 2, true, true, false, false, 64)]
    [InlineData(2, 4, false, false, true, true, 4)]
    [InlineData(1, 3, true, false, false, true, 5)]
    [InlineData(2, 2, false, true, true, false, 1)]
    public void ForwardEqualsFlasMathStepByStep(int heads, int vHeads, bool gate, bool conv, bool convBias, bool negative, int chunk)
    {
        const int h = 8, dk = 4, l = 13, batch = 2, convSize = 3;
        const double expandV = 1.5, eps = 1e-5;
        int dv = (int)(dk * expandV);
        torch.manual_seed(7);
        using var m = new GatedDeltaNetSequenceMixer(h, heads, dk, vHeads, expandV, gate, conv, convSize, convBias, negative, eps, chunk);
        m.to(ScalarType.Float64);
        var gen = new Generator(5);
        var normWeight = m.o_norm is GatedRMSNorm gn ? gn.weight : ((RMSNorm)m.o_norm).weight!;
        Reference.Set(normWeight, TestUtil.Randn(gen, new long[] { dv }));
        Reference.Set(m.A_log, TestUtil.Randn(gen, new long[] { vHeads }));        // decays of both sizes
        using var x = TestUtil.Randn(gen, new long[] { batch, l, h });
        using var y = m.forward(x);

        using var scope = NewDisposeScope();
        Tensor Lin(Tensor w) => x.matmul(w.t());
        Tensor Conv(Tensor u, ShortConvolution c)                                  // y[t] = silu(bias + sum_j w[:, j] u[t - (K-1) + j])
        {
            var padded = nn.functional.pad(u, new long[] { 0, 0, convSize - 1, 0 });
            var sum = c.bias is null ? zeros_like(u) : c.bias.expand_as(u).clone();
            for (int j = 0; j < convSize; j++) sum = sum + padded.narrow(1, j, l) * c.weight.select(1, 0).select(1, j);
            return nn.functional.silu(sum);
        }
        Tensor L2(Tensor u) => u / (u.square().sum(-1, keepdim: true) + 1e-6).sqrt();
        Tensor q = Lin(m.q_proj.weight!), k = Lin(m.k_proj.weight!), v = Lin(m.v_proj.weight!);
        if (conv) { q = Conv(q, m.q_conv1d!); k = Conv(k, m.k_conv1d!); v = Conv(v, m.v_conv1d!); }
        else { q = nn.functional.silu(q); k = nn.functional.silu(k); v = nn.functional.silu(v); }
        var beta = Lin(m.b_proj.weight!).sigmoid() * (negative ? 2 : 1);             // [B, L, HV]
        var decay = -m.A_log.exp() * (Lin(m.a_proj.weight!) + m.dt_bias).exp().log1p();  // [B, L, HV]
        var outputs = zeros(batch, l, vHeads, dv, dtype: ScalarType.Float64);
        for (int b = 0; b < batch; b++)
            for (int hv = 0; hv < vHeads; hv++)
            {
                int hq = hv / (vHeads / heads);
                var s = zeros(dk, dv, dtype: ScalarType.Float64);
                for (int t = 0; t < l; t++)
                {
                    var qt = L2(q[b, t].narrow(0, hq * dk, dk)) / Math.Sqrt(dk);
                    var kt = L2(k[b, t].narrow(0, hq * dk, dk));
                    var vt = v[b, t].narrow(0, hv * dv, dv);
                    s = s * decay[b, t, hv].exp();
                    s = s + beta[b, t, hv] * outer(kt, vt - s.t().matmul(kt));
                    outputs[b, t, hv] = s.t().matmul(qt);
                }
            }
        var o = outputs / (outputs.square().mean(new long[] { -1 }, keepdim: true) + eps).sqrt() * normWeight;
        if (gate) o = o * nn.functional.silu(Lin(m.g_proj!.weight!)).view(batch, l, vHeads, dv);
        var expected = o.reshape(batch, l, vHeads * dv).matmul(m.o_proj.weight!.t());
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-11);
    }

    [Fact]
    public void ParameterNamesAndShapesAreFlas()
    {
        using var m = new GatedDeltaNetSequenceMixer(16, numHeads: 2, headDim: 8, numVHeads: 4);
        var shapes = m.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        shapes.Keys.Should().BeEquivalentTo("q_proj.weight", "k_proj.weight", "v_proj.weight", "a_proj.weight", "b_proj.weight", "A_log", "dt_bias",
            "q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight", "g_proj.weight", "o_norm.weight", "o_proj.weight");
        shapes["q_proj.weight"].Should().Equal(16, 16);
        shapes["v_proj.weight"].Should().Equal(64, 16);                         // HV * Dv = 4 * 16 (expand_v 2)
        shapes["a_proj.weight"].Should().Equal(4, 16);
        shapes["b_proj.weight"].Should().Equal(4, 16);
        shapes["A_log"].Should().Equal(4);
        shapes["dt_bias"].Should().Equal(4);
        shapes["q_conv1d.weight"].Should().Equal(16, 1, 4);
        shapes["v_conv1d.weight"].Should().Equal(64, 1, 4);
        shapes["g_proj.weight"].Should().Equal(64, 16);
        shapes["o_norm.weight"].Should().Equal(16);
        shapes["o_proj.weight"].Should().Equal(16, 64);
        using var plain = new GatedDeltaNetSequenceMixer(16, numHeads: 2, headDim: 8, useGate: false, useShortConv: false, convBias: true);
        plain.state_dict().Keys.Should().BeEquivalentTo("q_proj.weight", "k_proj.weight", "v_proj.weight", "a_proj.weight", "b_proj.weight",
            "A_log", "dt_bias", "o_norm.weight", "o_proj.weight");
        using var biased = new GatedDeltaNetSequenceMixer(16, numHeads: 2, headDim: 8, convBias: true);
        biased.state_dict().Keys.Should().Contain(new[] { "q_conv1d.bias", "k_conv1d.bias", "v_conv1d.bias" });
        using var model = new GatedDeltaNet(16, numBlocks: 2);
        model.state_dict().Keys.Should().Contain("blocks.1.sequence_mixer.A_log").And.Contain("blocks.0.channel_mixer.w1.weight");
    }

    /// <summary>fla's initialization: A = exp(A_log) uniform on (0, 16), softplus(dt_bias) = dt in [1e-3, 0.1], log-uniform.</summary>
    [Fact]
    public void InitializationIsFlas()
    {
        torch.manual_seed(11);
        using var m = new GatedDeltaNetSequenceMixer(8, numHeads: 1, headDim: 4, numVHeads: 4096, expandV: 0.25, useShortConv: false);
        var a = TestUtil.Values(m.A_log.exp());
        a.Should().OnlyContain(v => v > 0 && v < 16);
        a.Average().Should().BeApproximately(8, 0.3);                          // U(0, 16): mean 8, sd of the mean 4.6 / 64
        var dt = TestUtil.Values(nn.functional.softplus(m.dt_bias));
        dt.Should().OnlyContain(v => v >= 0.001 * (1 - 1e-5) && v <= 0.1 * (1 + 1e-5));
        dt.Select(v => Math.Log(v)).Average().Should().BeApproximately((Math.Log(0.001) + Math.Log(0.1)) / 2, 0.05);   // log-uniform
        m.o_norm.Should().BeOfType<GatedRMSNorm>("useGate is on by default, as in fla");
    }

    [Fact]
    public void InvalidOptionsThrowNamingTheArgument()
    {
        ((Action)(() => new GatedDeltaNetSequenceMixer(8, numHeads: 2, headDim: 4, numVHeads: 3))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("numVHeads");
        ((Action)(() => new GatedDeltaNetSequenceMixer(8, numHeads: 2, headDim: 4, expandV: 0.3))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("expandV");
        ((Action)(() => new GatedDeltaNetSequenceMixer(8, numHeads: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("numHeads");
        ((Action)(() => new GatedDeltaNetSequenceMixer(8, headDim: 4, chunkSize: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("chunkSize");
        ((Action)(() => new GatedDeltaNet(10, numHeads: 4))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("numHeads");
    }
}
