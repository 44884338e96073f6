using Discretax.Kernels;
using Discretax.Layers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class MLSTMSequenceMixerTests
{
    /// <summary>The configurations the literal reference is checked on.</summary>
    public static TheoryData<string> Configs => new() { "default", "convgate-rms-cap-bias-v2-qk05", "xmlstm-gate", "convact-gate-k2", "v1", "v1-rms-cap-bias-qk05" };

    private static SequenceMixer Build(string config) => config switch
    {
        "default" => new MLSTMSequenceMixer(8, chunkSize: 4),
        "convgate-rms-cap-bias-v2-qk05" => new MLSTMSequenceMixer(8, conv1dKernelSize: 3, bias: true, qkDimFactor: 0.5, vDimFactor: 2.0,
            normType: MLSTMNormType.RMSNorm, gateInput: MLSTMGateInput.XMlstmConv, gateSoftCap: 5.0, chunkSize: 4),
        "xmlstm-gate" => new MLSTMSequenceMixer(8, numHeads: 2, gateInput: MLSTMGateInput.XMlstm, chunkSize: 3),
        "convact-gate-k2" => new MLSTMSequenceMixer(8, conv1dKernelSize: 2, qkvProjBlocksize: 8, gateInput: MLSTMGateInput.XMlstmConvAct, chunkSize: 64),
        "v1" => new MLSTMV1SequenceMixer(8, chunkSize: 4),
        "v1-rms-cap-bias-qk05" => new MLSTMV1SequenceMixer(8, bias: true, qkDimFactor: 0.5, vDimFactor: 1.5,
            normType: MLSTMNormType.RMSNorm, gateSoftCap: 3.0, chunkSize: 4),
        _ => throw new ArgumentException(config),
    };

    /// <summary>Overwrites every parameter with seeded random values (gates included, so that they vary in time).</summary>
    private static void Randomize(nn.Module m, Generator g)
    {
        using var _ = no_grad();
        foreach (var (name, p) in m.named_parameters())
        {
            using var r = randn(p.shape, dtype: ScalarType.Float64, generator: g);
            double scale = name.EndsWith("gate.weight") ? 0.3 : name.Contains("conv1d") ? 0.5 : 0.4;
            p.copy_(r * scale + (name == "fgate.bias" ? 2.0 : name.EndsWith("norm.weight") || name == "learnable_skip" ? 1.0 : 0.0));
        }
    }

    private static Tensor Lin(Tensor x, Tensor w, Tensor? b) => b is null ? x.matmul(w.t()) : x.matmul(w.t()) + b;

    // Head-wise block-diagonal map, one block at a time.
    private static Tensor Headwise(Tensor x, LinearHeadwiseExpand p)
    {
        long nb = p.weight.shape[0], inPer = p.weight.shape[2];
        var parts = new List<Tensor>();
        for (long h = 0; h < nb; h++)
            parts.Add(x.narrow(-1, h * inPer, inPer).matmul(p.weight[h].t()));
        var y = cat(parts, -1);
        return p.bias is null ? y : y + p.bias;
    }

    /// <summary>
    /// The layer's literal math in float64, from the module's own parameter tensors (so autograd reaches them):
    /// projections, the causal convolution as a sum of shifted inputs, the gates, the stabilized recurrence one step
    /// at a time (C, n, m), the per-head norm written out, skip, output gate and down-projection. Optionally continues
    /// from a kernel state (C0, n0, m0) and a convolution history (the K-1 inputs before x).
    /// </summary>
    private static (Tensor Y, Tensor C, Tensor N, Tensor M) Literal(SequenceMixer layer, Tensor x)
    {
        long b = x.shape[0], l = x.shape[1];
        var (nh, dk, dv, softCap, normType, igate, fgate, outnorm, projDown) = layer switch
        {
            MLSTMSequenceMixer a => ((long)a.NumHeads, a.QKDim / a.NumHeads, a.VDim / a.NumHeads, a.GateSoftCap, a.NormType, a.igate, a.fgate, a.outnorm, a.proj_down),
            MLSTMV1SequenceMixer a => ((long)a.NumHeads, a.QKDim / a.NumHeads, a.VDim / a.NumHeads, a.GateSoftCap, a.NormType, a.igate, a.fgate, a.outnorm, a.proj_down),
            _ => throw new ArgumentException(layer.GetType().Name),
        };
        Tensor q, k, v, gin, skip = null!, z = null!, o = null!;
        if (layer is MLSTMSequenceMixer m)
        {
            var up = Lin(x, m.proj_up!.weight!, m.proj_up.bias);
            var xm = up.narrow(-1, 0, m.InnerDim);
            z = up.narrow(-1, m.InnerDim, m.VDim);
            int kk = m.conv1d!.KernelSize;
            var w = m.conv1d.weight; // [I, 1, K]
            var steps = new List<Tensor>();
            for (long t = 0; t < l; t++)
            {
                var acc = m.conv1d.bias!.expand(b, m.InnerDim);
                for (int j = 0; j < kk; j++)
                {
                    long src = t - (kk - 1) + j;
                    if (src >= 0) acc = acc + w[.., 0, j] * xm.select(1, src);
                }
                steps.Add(acc);
            }
            var xc = stack(steps, 1);
            var c = xc * (1.0 / (1.0 + (-xc).exp()));
            q = Headwise(c, m.q_proj!);
            k = Headwise(c, m.k_proj!);
            v = Headwise(xm, m.v_proj!);
            gin = m.GateInput switch
            {
                MLSTMGateInput.Qkv => cat(new[] { q, k, v }, -1),
                MLSTMGateInput.XMlstm => xm,
                MLSTMGateInput.XMlstmConv => xc,
                _ => c,
            };
            skip = m.x_mlstm_conv_scaling is null ? c : Headwise(c, m.x_mlstm_conv_scaling);
        }
        else
        {
            var v1 = (MLSTMV1SequenceMixer)layer;
            q = Lin(x, v1.dense_q.weight!, v1.dense_q.bias);
            k = Lin(x, v1.dense_k.weight!, v1.dense_k.bias);
            v = Lin(x, v1.dense_v.weight!, v1.dense_v.bias);
            o = Lin(x, v1.dense_o.weight!, v1.dense_o.bias);
            gin = x;
        }
        var ig = Lin(gin, igate.weight!, igate.bias);
        var fg = Lin(gin, fgate.weight!, fgate.bias);
        if (softCap is double cap) { ig = cap * (ig / cap).tanh(); fg = cap * (fg / cap).tanh(); }

        var C = zeros(new long[] { b, nh, dk, dv }, dtype: ScalarType.Float64);
        var n = zeros(new long[] { b, nh, dk }, dtype: ScalarType.Float64);
        var mm = zeros(new long[] { b, nh }, dtype: ScalarType.Float64);
        var hs = new List<Tensor>();
        for (long t = 0; t < l; t++)
        {
            var qt = q.select(1, t).reshape(b, nh, dk) / Math.Sqrt(dk);
            var kt = k.select(1, t).reshape(b, nh, dk);
            var vt = v.select(1, t).reshape(b, nh, dv);
            var it = ig.select(1, t);
            var lf = -(1.0 + (-fg.select(1, t)).exp()).log();          // log sigmoid
            var mNew = maximum(lf + mm, it);
            var fa = (lf + mm - mNew).exp();
            var ia = (it - mNew).exp();
            C = fa.unsqueeze(-1).unsqueeze(-1) * C + ia.unsqueeze(-1).unsqueeze(-1) * kt.unsqueeze(-1) * vt.unsqueeze(-2);
            n = fa.unsqueeze(-1) * n + ia.unsqueeze(-1) * kt;
            mm = mNew;
            var num = (C * qt.unsqueeze(-1)).sum(-2);                 // C^T q~  [b, nh, dv]
            var den = maximum((n * qt).sum(-1).abs(), (-mm).exp()) + 1e-6;
            var h = num / den.unsqueeze(-1);                          // [b, nh, dv]
            Tensor hn;
            if (normType == MLSTMNormType.LayerNorm)
            {
                var cen = h - h.mean(new long[] { -1 }, keepdim: true);
                hn = cen / (cen.square().mean(new long[] { -1 }, keepdim: true) + 1e-6).sqrt();
            }
            else
            {
                hn = h / (h.square().mean(new long[] { -1 }, keepdim: true) + 1e-6).sqrt();
            }
            hs.Add(hn.reshape(b, nh * dv) * outnorm.weight);
        }
        var hcat = stack(hs, 1);                                      // [b, l, Dv]
        Tensor gated = layer is MLSTMSequenceMixer ml
            ? (hcat + ml.learnable_skip * skip) * (z * (1.0 / (1.0 + (-z).exp())))
            : (1.0 / (1.0 + (-o).exp())) * hcat;
        return (Lin(gated, projDown.weight!, projDown.bias), C, n, mm);
    }

    /// <summary>
    /// Forward (chunkwise kernel, L = 11 not a multiple of the chunk) equals the literal float64 math to 1e-10
    /// (max abs), and the final streaming state (C, n, m) equals the literal recurrence's; gradients of a random
    /// projection of the output with respect to the input and every parameter agree to 1e-9 relative.
    /// </summary>
    [Theory]
    [MemberData(nameof(Configs))]
    public void ForwardStateAndGradientsEqualTheLiteralMath(string config)
    {
        using var m = Build(config);
        m.to(ScalarType.Float64);
        m.eval();
        var g = new Generator(101);
        Randomize(m, g);
        using var xBase = TestUtil.Randn(g, new long[] { 2, 11, 8 });
        using var w = TestUtil.Randn(g, new long[] { 2, 11, 8 });

        var x1 = xBase.detach().requires_grad_(true);
        using var y = m.forward(x1);
        (y * w).sum().backward();
        var gx1 = x1.grad!.clone();
        var pg1 = m.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        foreach (var (_, p) in m.named_parameters()) p.grad!.zero_();

        var x2 = xBase.detach().requires_grad_(true);
        var (yr, cr, nr, mr) = Literal(m, x2);
        (yr * w).sum().backward();

        TestUtil.MaxAbsDiff(y, yr).Should().BeLessThan(1e-10);
        TestUtil.MaxAbsDiff(gx1, x2.grad!).Should().BeLessThan(1e-9 * (1 + x2.grad!.abs().max().item<double>()));
        foreach (var (name, p) in m.named_parameters())
        {
            double scale = 1 + p.grad!.abs().max().item<double>();
            TestUtil.MaxAbsDiff(pg1[name], p.grad!).Should().BeLessThan(1e-9 * scale, $"gradient of {name}");
        }

        var (ys, state) = m.Stream(xBase);
        using (ys)
        using (state)
        {
            var cell = (MLSTMState)state;
            TestUtil.MaxAbsDiff(cell.C, cr).Should().BeLessThan(1e-10);
            TestUtil.MaxAbsDiff(cell.N, nr).Should().BeLessThan(1e-10);
            TestUtil.MaxAbsDiff(cell.M, mr).Should().BeLessThan(1e-12);
            (cell.Conv is null).Should().Be(m is MLSTMV1SequenceMixer);
        }
    }

    /// <summary>Pinned outputs, recorded before the layer was split into MLSTMSequenceMixer and MLSTMV1SequenceMixer:
    /// with every parameter drawn from a seeded generator in <c>named_parameters</c> order (so the parameter order is
    /// pinned too), the float64 forward and the streamed state give these sums (relative 1e-12).</summary>
    [Theory]
    [InlineData("default", 65.51890719830966, 1633.0693942644953, -24.509870077017375)]
    [InlineData("convgate-rms-cap-bias-v2-qk05", -114.40340006141511, 2689.7786067441534, 63.552773002332756)]
    [InlineData("xmlstm-gate", 32.20825553846713, 1144.3522554801623, 24.775625334244843)]
    [InlineData("convact-gate-k2", 13.52800074212955, 928.9948438344568, 45.22341889477271)]
    [InlineData("v1", 4.7478532055843505, 79.08974843801224, 28.53324170301667)]
    [InlineData("v1-rms-cap-bias-qk05", 48.171968555222904, 211.100830966296, -16.527047799135104)]
    public void OutputsMatchThePinnedValues(string config, double sum, double sumSquares, double stateSum)
    {
        using var m = Build(config);
        m.to(ScalarType.Float64);
        m.eval();
        var g = new Generator(105);
        Randomize(m, g);
        using var x = TestUtil.Randn(g, new long[] { 2, 11, 8 });
        using var _ = no_grad();
        using var y = m.forward(x);
        var (ys, state) = m.Stream(x);
        using (ys)
        using (state)
        {
            var cell = (MLSTMState)state;
            double[] got = { y.sum().item<double>(), y.square().sum().item<double>(), cell.C.sum().item<double>() + cell.N.sum().item<double>() + cell.M.sum().item<double>() };
            double[] expected = { sum, sumSquares, stateSum };
            for (int i = 0; i < 3; i++)
                got[i].Should().BeApproximately(expected[i], 1e-12 * Math.Max(1, Math.Abs(expected[i])), $"pinned value {i} of {config}");
        }
    }

    /// <summary>Continuing from a state: pieces 4 + 7 (the second from the first's state) equal the literal math over all 11 steps to 1e-10.</summary>
    [Theory]
    [InlineData("default")]
    [InlineData("convgate-rms-cap-bias-v2-qk05")]
    [InlineData("v1")]
    public void StreamingFromAStateEqualsTheLiteralMath(string config)
    {
        using var m = Build(config);
        m.to(ScalarType.Float64);
        m.eval();
        var g = new Generator(102);
        Randomize(m, g);
        using var x = TestUtil.Randn(g, new long[] { 2, 11, 8 });
        using var noGrad = no_grad();
        var (a, s1) = m.Stream(x.narrow(1, 0, 4));
        var (b, s2) = m.Stream(x.narrow(1, 4, 7), s1);
        var (yr, _, _, _) = Literal(m, x);
        using var joined = cat(new[] { a, b }, 1);
        TestUtil.MaxAbsDiff(joined, yr).Should().BeLessThan(1e-10);
        a.Dispose(); b.Dispose(); s1.Dispose(); s2.Dispose();
    }

    /// <summary>xlstm-jax's inits: gate weights 0, forget bias linspace(3, 6), input bias N(0, 0.1^2), learnable skip and
    /// norm gain 1, projections at the small-init std sqrt(2/(5E)) and proj_down at Wang's 2/numBlocks/sqrt(E).
    /// Statistical bounds are more than 4 standard errors wide.</summary>
    [Fact]
    public void DefaultInitIsXlstmJaxs()
    {
        const int e = 256, nh = 256;
        using var m = new MLSTMSequenceMixer(e, numHeads: nh, numBlocks: 4);
        m.InnerDim.Should().Be(512);
        TestUtil.Values(m.igate.weight!).Should().OnlyContain(v => v == 0);
        TestUtil.Values(m.fgate.weight!).Should().OnlyContain(v => v == 0);
        var fb = TestUtil.Values(m.fgate.bias!);
        for (int i = 0; i < nh; i++) fb[i].Should().BeApproximately(3.0 + 3.0 * i / (nh - 1), 1e-6);
        using (var ib = m.igate.bias!.to(ScalarType.Float64))
        {
            ib.std().item<double>().Should().BeInRange(0.075, 0.125);
            Math.Abs(ib.mean().item<double>()).Should().BeLessThan(0.035);
        }
        TestUtil.Values(m.learnable_skip!).Should().OnlyContain(v => v == 1);
        TestUtil.Values(m.outnorm.weight).Should().OnlyContain(v => v == 1);
        double small = Math.Sqrt(2.0 / (5.0 * e));
        Std(m.proj_up!.weight!).Should().BeApproximately(small, 0.03 * small);
        Std(m.q_proj!.weight).Should().BeApproximately(small, 0.07 * small);
        Std(m.k_proj!.weight).Should().BeApproximately(small, 0.07 * small);
        Std(m.v_proj!.weight).Should().BeApproximately(small, 0.07 * small);
        double wang = 2.0 / 4 / Math.Sqrt(e);
        Std(m.proj_down.weight!).Should().BeApproximately(wang, 0.03 * wang);
        m.q_proj.weight.shape.Should().Equal(128, 4, 4);
        double convBound = 1.0 / Math.Sqrt(4);
        TestUtil.Values(m.conv1d!.weight).Should().OnlyContain(v => Math.Abs(v) <= convBound);
        m.proj_up.bias.Should().BeNull();
        m.conv1d.bias.Should().NotBeNull();
    }

    /// <summary>Uniform draws lie within sqrt(3) std and have std "std"; truncated normal draws lie within 2 std and
    /// have std 0.8796 std (the truncated distribution's); small output init; V1's output gate projection is zero.</summary>
    [Fact]
    public void InitDistributionsAndOutputInitFollowTheOptions()
    {
        const int e = 256;
        double small = Math.Sqrt(2.0 / (5.0 * e));
        using (var u = new MLSTMSequenceMixer(e, initDistribution: MLSTMInitDistribution.Uniform, outputInitFn: MLSTMOutputInit.Small))
        {
            TestUtil.Values(u.proj_up!.weight!).Should().OnlyContain(v => Math.Abs(v) <= Math.Sqrt(3) * small + 1e-7);
            Std(u.proj_up.weight!).Should().BeApproximately(small, 0.03 * small);
            Std(u.proj_down.weight!).Should().BeApproximately(small, 0.03 * small);
        }
        using (var t = new MLSTMSequenceMixer(e, initDistribution: MLSTMInitDistribution.TruncatedNormal))
        {
            TestUtil.Values(t.proj_up!.weight!).Should().OnlyContain(v => Math.Abs(v) <= 2 * small + 1e-7);
            Std(t.proj_up.weight!).Should().BeApproximately(0.8796 * small, 0.03 * small);
        }
        // xlstm-jax's "wang2" (Wang's with twice the blocks) and "zeros".
        using (var w2 = new MLSTMSequenceMixer(e, outputInitFn: MLSTMOutputInit.Wang2, numBlocks: 4))
        {
            double wang2 = 2.0 / 8 / Math.Sqrt(e);
            Std(w2.proj_down.weight!).Should().BeApproximately(wang2, 0.03 * wang2);
        }
        using (var z = new MLSTMV1SequenceMixer(e, outputInitFn: MLSTMOutputInit.Zeros, initDistribution: MLSTMInitDistribution.Uniform))
            TestUtil.Values(z.proj_down.weight!).Should().OnlyContain(v => v == 0);
        using var v1 = new MLSTMV1SequenceMixer(e, bias: true);
        TestUtil.Values(v1.dense_o.weight!).Should().OnlyContain(v => v == 0);
        TestUtil.Values(v1.dense_q!.bias!).Should().OnlyContain(v => v == 0);
        Std(v1.dense_q.weight!).Should().BeApproximately(small, 0.03 * small);
    }

    private static double Std(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64);
        return d.square().mean().sqrt().item<double>();
    }

    /// <summary>state_dict names follow NX-AI xlstm's mLSTMLayer (cell parameters at the layer level) and xlstm-jax's V1 layer.</summary>
    [Fact]
    public void StateDictNamesFollowTheReference()
    {
        using var m = new MLSTMSequenceMixer(8);
        m.state_dict().Keys.Should().BeEquivalentTo(new[]
        {
            "proj_up.weight", "conv1d.weight", "conv1d.bias", "q_proj.weight", "k_proj.weight", "v_proj.weight",
            "learnable_skip", "igate.weight", "igate.bias", "fgate.weight", "fgate.bias", "outnorm.weight", "proj_down.weight",
        });
        using var v2 = new MLSTMSequenceMixer(8, vDimFactor: 2, bias: true);
        v2.state_dict().Keys.Should().Contain(new[] { "x_mlstm_conv_scaling.weight", "proj_up.bias", "q_proj.bias", "proj_down.bias" });
        v2.proj_up!.weight!.shape.Should().Equal(64 + 128, 8);
        v2.learnable_skip!.shape.Should().Equal(128);
        using var v1 = new MLSTMV1SequenceMixer(8);
        v1.state_dict().Keys.Should().BeEquivalentTo(new[]
        {
            "dense_q.weight", "dense_k.weight", "dense_v.weight", "dense_o.weight",
            "igate.weight", "igate.bias", "fgate.weight", "fgate.bias", "outnorm.weight", "proj_down.weight",
        });
    }

    /// <summary>Every combination of the enum options of both layers (soft cap, bias and, for the mLSTM layer, the
    /// stabilizer start alternating) builds, gives
    /// finite outputs of the right shape, and streams in two pieces to the full forward (1e-9, float64).</summary>
    [Fact]
    public void EveryOptionCombinationBuildsRunsAndStreams()
    {
        var g = new Generator(103);
        using var x = TestUtil.Randn(g, new long[] { 2, 6, 8 });
        var layers = new List<(string Name, Func<SequenceMixer> Make)>();
        int count = 0;
        foreach (var normType in Enum.GetValues<MLSTMNormType>())
        foreach (var dist in Enum.GetValues<MLSTMInitDistribution>())
        // Wang2 (Wang's std halved) and Zeros (no draw) with the normal distribution only.
        foreach (var outInit in Enum.GetValues<MLSTMOutputInit>().Where(o => dist == MLSTMInitDistribution.Normal || o is MLSTMOutputInit.Wang or MLSTMOutputInit.Small))
        {
            foreach (var gateInput in Enum.GetValues<MLSTMGateInput>())
            {
                count++;
                double? cap = count % 2 == 0 ? 15.0 : null;
                bool bias = count % 3 == 0;
                var start = count % 4 < 2 ? MLSTMStabilizerStart.Zero : MLSTMStabilizerStart.NegativeInfinity;
                layers.Add(($"mlstm {normType} {gateInput} {dist} {outInit} {start}", () => new MLSTMSequenceMixer(8, normType: normType,
                    gateInput: gateInput, initDistribution: dist, outputInitFn: outInit, gateSoftCap: cap, bias: bias, chunkSize: 4,
                    stabilizerStart: start)));
            }
            count++;
            double? capV1 = count % 2 == 0 ? 15.0 : null;
            bool biasV1 = count % 3 == 0;
            layers.Add(($"mlstm_v1 {normType} {dist} {outInit}", () => new MLSTMV1SequenceMixer(8, normType: normType,
                initDistribution: dist, outputInitFn: outInit, gateSoftCap: capV1, bias: biasV1, chunkSize: 4)));
        }
        foreach (var (name, make) in layers)
        {
            using var m = make();
            m.to(ScalarType.Float64);
            m.eval();
            using var scope = NewDisposeScope();
            var y = m.forward(x);
            y.shape.Should().Equal(2, 6, 8);
            double.IsFinite(y.abs().max().item<double>()).Should().BeTrue();
            var (a, s) = m.Stream(x.narrow(1, 0, 1));
            var (b, s2) = m.Stream(x.narrow(1, 1, 5), s);
            TestUtil.MaxAbsDiff(cat(new[] { a, b }, 1), y).Should().BeLessThan(1e-9, name);
            s.Dispose(); s2.Dispose();
        }
        layers.Count.Should().Be(64 + 16);   // 2 norms x (3 distributions x 2 output inits + 2 more) x (4 gate inputs + V1)
    }

    /// <summary>float32 forward against the same layer in float64: RMS(diff)/RMS(ref) below 1e-5. bfloat16 runs, stays
    /// finite, and keeps the cell state in float32.</summary>
    [Fact]
    public void Float32MatchesFloat64AndBFloat16KeepsAFloat32State()
    {
        var g = new Generator(104);
        using var m = new MLSTMSequenceMixer(8, chunkSize: 8);
        m.eval();
        using var x = TestUtil.Randn(g, new long[] { 2, 20, 8 }, ScalarType.Float32);
        using var y32 = m.forward(x);
        m.to(ScalarType.Float64);
        using var x64 = x.to(ScalarType.Float64);
        using var y64 = m.forward(x64);
        TestUtil.RelRms(y32, y64).Should().BeLessThan(1e-5);

        m.to(ScalarType.BFloat16);
        using var xb = x.to(ScalarType.BFloat16);
        var (yb, state) = m.Stream(xb);
        using (yb)
        using (state)
        {
            yb.dtype.Should().Be(ScalarType.BFloat16);
            double.IsFinite(yb.to(ScalarType.Float32).abs().max().item<float>()).Should().BeTrue();
            ((MLSTMState)state).C.dtype.Should().Be(ScalarType.Float32);
            TestUtil.RelRms(yb, y64).Should().BeLessThan(0.05);
        }
    }

    /// <summary>Bad options of the mlstm layer throw ArgumentException / ArgumentOutOfRangeException naming the argument.</summary>
    [Fact]
    public void BadOptionsThrowNamingTheArgument()
    {
        var cases = new (Func<MLSTMSequenceMixer> Make, string Param)[]
        {
            (() => new MLSTMSequenceMixer(0), "embeddingDim"),
            (() => new MLSTMSequenceMixer(8, numHeads: 0), "numHeads"),
            (() => new MLSTMSequenceMixer(8, numHeads: 3), "numHeads"),                     // 3 does not divide 64
            (() => new MLSTMSequenceMixer(8, numHeads: 128), "numHeads"),
            (() => new MLSTMSequenceMixer(8, qkvProjBlocksize: 3), "qkvProjBlocksize"),      // 3 does not divide 64
            (() => new MLSTMSequenceMixer(8, qkvProjBlocksize: 0), "qkvProjBlocksize"),
            (() => new MLSTMSequenceMixer(8, qkDimFactor: 0.3), "qkDimFactor"),              // round(19.2) = 19 not a multiple of 16 blocks
            (() => new MLSTMSequenceMixer(8, qkDimFactor: 0), "qkDimFactor"),
            (() => new MLSTMSequenceMixer(8, qkDimFactor: double.PositiveInfinity), "qkDimFactor"),
            (() => new MLSTMSequenceMixer(8, vDimFactor: -1), "vDimFactor"),
            (() => new MLSTMSequenceMixer(8, vDimFactor: 0.3), "vDimFactor"),                // round(19.2) = 19 not a multiple of 16 blocks
            (() => new MLSTMSequenceMixer(8, projFactor: 0), "projFactor"),
            (() => new MLSTMSequenceMixer(8, projFactor: double.NaN), "projFactor"),
            (() => new MLSTMSequenceMixer(8, conv1dKernelSize: 0), "conv1dKernelSize"),
            (() => new MLSTMSequenceMixer(8, dropout: 1.0), "dropout"),
            (() => new MLSTMSequenceMixer(8, chunkSize: 0), "chunkSize"),
            (() => new MLSTMSequenceMixer(8, gateSoftCap: 0), "gateSoftCap"),
            (() => new MLSTMSequenceMixer(8, gateSoftCap: double.NaN), "gateSoftCap"),
            (() => new MLSTMSequenceMixer(8, numBlocks: 0), "numBlocks"),
            (() => new MLSTMSequenceMixer(8, normEps: 0), "normEps"),
            (() => new MLSTMSequenceMixer(8, normType: (MLSTMNormType)7), "normType"),
            (() => new MLSTMSequenceMixer(8, gateInput: (MLSTMGateInput)7), "gateInput"),
            (() => new MLSTMSequenceMixer(8, initDistribution: (MLSTMInitDistribution)7), "initDistribution"),
            (() => new MLSTMSequenceMixer(8, outputInitFn: (MLSTMOutputInit)7), "outputInitFn"),
        };
        foreach (var (make, param) in cases)
            make.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }

    /// <summary>Bad options of the mlstm_v1 layer throw naming the argument.</summary>
    [Fact]
    public void BadV1OptionsThrowNamingTheArgument()
    {
        var cases = new (Func<MLSTMV1SequenceMixer> Make, string Param)[]
        {
            (() => new MLSTMV1SequenceMixer(0), "embeddingDim"),
            (() => new MLSTMV1SequenceMixer(8, numHeads: 0), "numHeads"),
            (() => new MLSTMV1SequenceMixer(6, numHeads: 4), "numHeads"),                   // 4 does not divide 6
            (() => new MLSTMV1SequenceMixer(8, qkDimFactor: 0.5, numHeads: 8), "numHeads"), // 8 does not divide 4
            (() => new MLSTMV1SequenceMixer(8, qkDimFactor: 0), "qkDimFactor"),
            (() => new MLSTMV1SequenceMixer(8, qkDimFactor: 0.1), "qkDimFactor"),           // int(0.8) = 0
            (() => new MLSTMV1SequenceMixer(8, vDimFactor: -1), "vDimFactor"),
            (() => new MLSTMV1SequenceMixer(8, vDimFactor: 0.01), "vDimFactor"),
            (() => new MLSTMV1SequenceMixer(8, dropout: -0.1), "dropout"),
            (() => new MLSTMV1SequenceMixer(8, chunkSize: 0), "chunkSize"),
            (() => new MLSTMV1SequenceMixer(8, gateSoftCap: -1), "gateSoftCap"),
            (() => new MLSTMV1SequenceMixer(8, gateSoftCap: double.PositiveInfinity), "gateSoftCap"),
            (() => new MLSTMV1SequenceMixer(8, numBlocks: 0), "numBlocks"),
            (() => new MLSTMV1SequenceMixer(8, normEps: double.NaN), "normEps"),
            (() => new MLSTMV1SequenceMixer(8, normType: (MLSTMNormType)7), "normType"),
            (() => new MLSTMV1SequenceMixer(8, initDistribution: (MLSTMInitDistribution)7), "initDistribution"),
            (() => new MLSTMV1SequenceMixer(8, outputInitFn: (MLSTMOutputInit)7), "outputInitFn"),
        };
        foreach (var (make, param) in cases)
            make.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }

    /// <summary>A state of another module (a bare state) is rejected by both layers naming "state".</summary>
    [Fact]
    public void AForeignStateIsRejected()
    {
        using var x = zeros(1, 3, 8);
        using var foreign = new EmptyState(1, x.device, x.dtype);
        foreach (SequenceMixer m in new SequenceMixer[] { new MLSTMSequenceMixer(8), new MLSTMV1SequenceMixer(8) })
        {
            using (m)
            {
                var act = () => m.Stream(x, foreign);
                act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state");
            }
        }
    }

    /// <summary>States are refused across the two layers even where the cell's sizes agree (the mlstm layer's state
    /// carries a convolution state, the mlstm_v1 layer's none), and across head counts and sizes; each layer continues
    /// its own state.</summary>
    [Fact]
    public void AStateOfTheOtherLayerOrOtherSizesIsRejected()
    {
        using var x = zeros(1, 3, 8);
        using var mlstm = new MLSTMSequenceMixer(8);                              // NH 4, Dk = Dv = 64 / 4
        using var v1 = new MLSTMV1SequenceMixer(8, qkDimFactor: 8, vDimFactor: 8); // NH 4, Dk = Dv = 64 / 4
        using var mlstm2 = new MLSTMSequenceMixer(8, numHeads: 2);
        using var mlstmK3 = new MLSTMSequenceMixer(8, conv1dKernelSize: 3);
        using var v1Small = new MLSTMV1SequenceMixer(8);
        using var v1Heads2 = new MLSTMV1SequenceMixer(8, qkDimFactor: 8, vDimFactor: 8, numHeads: 2);
        using var noGrad = no_grad();
        var states = new Dictionary<string, StreamingState>
        {
            ["mlstm"] = mlstm.Stream(x).State, ["v1"] = v1.Stream(x).State, ["mlstm2"] = mlstm2.Stream(x).State,
            ["mlstmK3"] = mlstmK3.Stream(x).State, ["v1Small"] = v1Small.Stream(x).State, ["v1Heads2"] = v1Heads2.Stream(x).State,
        };
        ((MLSTMState)states["v1"]).C.shape.Should().Equal(((MLSTMState)states["mlstm"]).C.shape);
        var refused = new (SequenceMixer Layer, string State)[]
        {
            (mlstm, "v1"), (v1, "mlstm"), (mlstm, "mlstm2"), (mlstm, "mlstmK3"), (mlstmK3, "mlstm"),
            (v1, "v1Small"), (v1Small, "v1"), (v1, "v1Heads2"), (v1Heads2, "v1"),
        };
        foreach (var (layer, name) in refused)
        {
            var act = () => layer.Stream(x, states[name]);
            act.Should().Throw<ArgumentException>($"{layer.GetType().Name} given the state of {name}").Which.ParamName.Should().Be("state");
        }
        foreach (var (layer, name) in new (SequenceMixer, string)[] { (mlstm, "mlstm"), (v1, "v1") })
        {
            var (y, next) = layer.Stream(x, states[name]);
            y.Dispose();
            next.Dispose();
        }
        foreach (var state in states.Values) state.Dispose();
    }
}
