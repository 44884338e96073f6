using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class Mamba2SequenceMixerTests
{
    /// <summary>
    /// The mixer against mamba_ssm's Mamba2 math written out step by step in float64 tensor ops (no kernel, no library
    /// layer): in_proj split [z, xBC, dt], causal depthwise convolution with bias + SiLU written as a sum over taps,
    /// split [x, B, C], dt = clamp(softplus(dt + dt_bias)), A = -exp(A_log), per head (group h / (NH / G))
    /// h_t = exp(dt A) h + dt x B^T, y = h C + D x, then rms over groups of d_inner / G of y * silu(z), times the gain,
    /// and out_proj. Tolerance 1e-11.
    /// </summary>
    [Theory]
    [InlineData(1, false, false, true, 64)]
    [InlineData(2, true, true, true, 4)]
    [InlineData(4, false, true, false, 5)]
    [InlineData(1, true, false, false, 1)]
    public void ForwardEqualsMambasMathStepByStep(int groups, bool dPerChannel, bool limit, bool useNorm, int chunk)
    {
        const int hDim = 8, n = 3, p = 4, expand = 2, l = 11, batch = 2, convSize = 4;
        const double eps = 1e-5;
        int inner = expand * hDim, nh = inner / p;
        torch.manual_seed(3);
        using var m = new Mamba2SequenceMixer(hDim, n, convSize, expand, p, groups, dtLimit: limit ? (0.02, 0.5) : null,
            dHasHeadDim: dPerChannel, useNorm: useNorm, useBias: true, normEps: eps, chunkSize: chunk);
        m.to(ScalarType.Float64);
        var gen = new Generator(9);
        Reference.Set(m.D, TestUtil.Randn(gen, m.D.shape));
        if (useNorm) Reference.Set(m.norm!.weight, TestUtil.Randn(gen, new long[] { inner }));
        using var u = TestUtil.Randn(gen, new long[] { batch, l, hDim });
        using var y = m.forward(u);

        using var scope = NewDisposeScope();
        var proj = u.matmul(m.in_proj.weight!.t()) + m.in_proj.bias!;
        var z = proj.narrow(-1, 0, inner);
        var xbc = proj.narrow(-1, inner, inner + 2 * groups * n);
        var dtRaw = proj.narrow(-1, 2 * inner + 2 * groups * n, nh);
        var padded = nn.functional.pad(xbc, new long[] { 0, 0, convSize - 1, 0 });
        var conv = m.conv1d.bias!.expand_as(xbc).clone();
        for (int j = 0; j < convSize; j++) conv = conv + padded.narrow(1, j, l) * m.conv1d.weight.select(1, 0).select(1, j);
        conv = nn.functional.silu(conv);
        var xs = conv.narrow(-1, 0, inner);
        var bs = conv.narrow(-1, inner, groups * n);
        var cs = conv.narrow(-1, inner + groups * n, groups * n);
        var dt = (dtRaw + m.dt_bias).exp().log1p();
        if (limit) dt = dt.clamp(0.02, 0.5);
        var aRate = -m.A_log.exp();
        var ys = zeros(batch, l, nh, p, dtype: ScalarType.Float64);
        for (int b = 0; b < batch; b++)
            for (int hd = 0; hd < nh; hd++)
            {
                int grp = hd / (nh / groups);
                var state = zeros(p, n, dtype: ScalarType.Float64);
                for (int t = 0; t < l; t++)
                {
                    var xt = xs[b, t].narrow(0, hd * p, p);
                    var bt = bs[b, t].narrow(0, grp * n, n);
                    var ct = cs[b, t].narrow(0, grp * n, n);
                    var dtt = dt[b, t, hd];
                    state = state * (dtt * aRate[hd]).exp() + outer(xt * dtt, bt);
                    var skip = dPerChannel ? m.D.narrow(0, hd * p, p) : m.D[hd];
                    ys[b, t, hd] = state.matmul(ct) + skip * xt;
                }
            }
        var yFlat = ys.reshape(batch, l, inner);
        Tensor gated;
        if (useNorm)
        {
            var g = (yFlat * nn.functional.silu(z)).view(batch, l, groups, inner / groups);
            gated = (g / (g.square().mean(new long[] { -1 }, keepdim: true) + eps).sqrt()).reshape(batch, l, inner) * m.norm!.weight;
        }
        else gated = yFlat * nn.functional.silu(z);
        var expected = gated.matmul(m.out_proj.weight!.t()) + m.out_proj.bias!;
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-11);
    }

    [Fact]
    public void ParameterNamesAndShapesAreMambas()
    {
        using var m = new Mamba2SequenceMixer(16, stateSize: 8, headDim: 8, numGroups: 2);
        var shapes = m.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        shapes.Keys.Should().BeEquivalentTo("in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D", "norm.weight", "out_proj.weight");
        // d_inner 32, 4 heads, conv_dim = 32 + 2 * 2 * 8 = 64, in_proj = 32 + 64 + 4.
        shapes["in_proj.weight"].Should().Equal(100, 16);
        shapes["conv1d.weight"].Should().Equal(64, 1, 4);
        shapes["conv1d.bias"].Should().Equal(64);
        shapes["dt_bias"].Should().Equal(4);
        shapes["A_log"].Should().Equal(4);
        shapes["D"].Should().Equal(4);
        shapes["norm.weight"].Should().Equal(32);
        shapes["out_proj.weight"].Should().Equal(16, 32);
        m.norm!.GroupSize.Should().Be(16);
        using var model = new Mamba2(16, numBlocks: 2);
        model.state_dict().Keys.Should().Contain("blocks.1.sequence_mixer.in_proj.weight").And.Contain("blocks.0.channel_mixer.w1.weight");
    }

    /// <summary>mamba_ssm's initialization: A = exp(A_log) uniform on [1, 16], softplus(dt_bias) = dt log-uniform in [1e-3, 0.1], D = 1.</summary>
    [Fact]
    public void InitializationIsMambas()
    {
        torch.manual_seed(12);
        using var m = new Mamba2SequenceMixer(2048, stateSize: 1, headDim: 1, expand: 1, useNorm: false);
        var a = TestUtil.Values(m.A_log.exp());
        a.Should().OnlyContain(v => v >= 1 - 1e-6 && v <= 16 + 1e-5);
        a.Average().Should().BeApproximately(8.5, 0.4);
        var dt = TestUtil.Values(nn.functional.softplus(m.dt_bias));
        dt.Should().OnlyContain(v => v >= 0.001 * (1 - 1e-5) && v <= 0.1 * (1 + 1e-5));
        dt.Select(v => Math.Log(v)).Average().Should().BeApproximately((Math.Log(0.001) + Math.Log(0.1)) / 2, 0.08);
        TestUtil.Values(m.D).Should().OnlyContain(v => v == 1);
    }

    [Fact]
    public void InvalidOptionsThrowNamingTheArgument()
    {
        ((Action)(() => new Mamba2SequenceMixer(10, headDim: 3))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("headDim");
        ((Action)(() => new Mamba2SequenceMixer(8, headDim: 4, numGroups: 3))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("numGroups");
        ((Action)(() => new Mamba2SequenceMixer(8, headDim: 4, stateSize: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("stateSize");
        ((Action)(() => new Mamba2SequenceMixer(8, headDim: 4, dtLimit: (0.5, 0.1)))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("dtLimit");
        ((Action)(() => new Mamba2SequenceMixer(8, headDim: 4, chunkSize: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("chunkSize");
    }
}
