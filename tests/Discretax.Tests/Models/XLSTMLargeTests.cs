using System.Text.Json;
using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.Models;

/// <summary>
/// The xLSTM-7B architecture (xlstm/xlstm_large/model.py) against its math written out in float64: the mLSTM layer
/// step by step, the block, the block stack, the CausalLM around it with the logit soft cap, the config's fields and
/// sizes. (Parity with the reference's own code: Interop/XLSTMFixtureTests.)
/// </summary>
public class XLSTMLargeTests
{
    private static void Randomize(nn.Module m, Generator g)
    {
        using var _ = no_grad();
        foreach (var (name, p) in m.named_parameters())
        {
            using var r = randn(p.shape, dtype: ScalarType.Float64, generator: g);
            double mean = name.Contains("norm") ? 1.0 : name.StartsWith("fgate") ? 2.0 : 0.0;
            p.copy_(r * (name.Contains("gate_preact.weight") ? 1.0 : 0.4) + mean);
        }
    }

    private static Tensor Lin(Tensor x, Tensor w, Tensor? b = null) => b is null ? x.matmul(w.t()) : x.matmul(w.t()) + b;

    /// <summary>
    /// The layer's math: q, k, v, o projections; soft-capped gates; the stabilized recurrence from m_0 = 0 one step
    /// at a time (mlstm_kernels' native step); the per-head layer norm written out; sigmoid output gate; out_proj.
    /// Chunk 3 with L = 8 (padding) against the literal math, 1e-10 (float64).
    /// </summary>
    [Fact]
    public void LayerIsTheWrittenOutMathOfXlstmLarge()
    {
        using var scope = NewDisposeScope();
        const long e = 8, nh = 2, b = 2, l = 8;
        var layer = new XLSTMLargeSequenceMixer(e, numHeads: 2, gateSoftCap: 3.0, normEps: 1e-3, chunkSize: 3, eps: 1e-4);
        layer.to(ScalarType.Float64);
        var g = new Generator(501);
        Randomize(layer, g);
        var x = TestUtil.Randn(g, [b, l, e]);
        var y = layer.forward(x);

        long dk = layer.QKDim / nh, dv = layer.VDim / nh;
        (dk, dv).Should().Be((2L, 4L));
        var q = Lin(x, layer.q!.weight!);
        var k = Lin(x, layer.k!.weight!);
        var v = Lin(x, layer.v!.weight!);
        var o = Lin(x, layer.ogate_preact!.weight!);
        var ig = 3.0 * (Lin(x, layer.igate_preact!.weight!, layer.igate_preact.bias) / 3.0).tanh();
        var fg = 3.0 * (Lin(x, layer.fgate_preact!.weight!, layer.fgate_preact.bias) / 3.0).tanh();
        var hs = new List<Tensor>();
        var c = zeros(new[] { b, nh, dk, dv }, dtype: ScalarType.Float64);
        var n = zeros(new[] { b, nh, dk }, dtype: ScalarType.Float64);
        var m = zeros(new[] { b, nh }, dtype: ScalarType.Float64);
        for (long t = 0; t < l; t++)
        {
            var qt = q.select(1, t).reshape(b, nh, dk) / Math.Sqrt(dk);
            var kt = k.select(1, t).reshape(b, nh, dk);
            var vt = v.select(1, t).reshape(b, nh, dv);
            var it = ig.select(1, t);
            var lf = -(1 + (-fg.select(1, t)).exp()).log();
            var mNew = maximum(lf + m, it);
            var fa = (lf + m - mNew).exp();
            var ia = (it - mNew).exp();
            c = fa.unsqueeze(-1).unsqueeze(-1) * c + ia.unsqueeze(-1).unsqueeze(-1) * kt.unsqueeze(-1).matmul(vt.unsqueeze(-2));
            n = fa.unsqueeze(-1) * n + ia.unsqueeze(-1) * kt;
            m = mNew;
            var num = qt.unsqueeze(-2).matmul(c).squeeze(-2);
            var den = maximum((n * qt).sum(-1).abs(), (-m).exp()) + 1e-4;
            var h = num / den.unsqueeze(-1);                                         // [B, NH, Dv]
            var centered = h - h.mean(new long[] { -1 }, keepdim: true);
            hs.Add((centered / (centered.square().mean(new long[] { -1 }, keepdim: true) + 1e-3).sqrt()).reshape(b, nh * dv));
        }
        var hn = stack(hs, 1) * layer.multihead_norm.weight;
        var expected = Lin(torch.nn.functional.sigmoid(o) * hn, layer.out_proj.weight!);
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-10);

        layer.state_dict().Keys.Should().BeEquivalentTo("q.weight", "k.weight", "v.weight", "ogate_preact.weight",
            "igate_preact.weight", "igate_preact.bias", "fgate_preact.weight", "fgate_preact.bias", "multihead_norm.weight", "out_proj.weight");
        layer.q.weight!.shape.Should().Equal(4, 8);
        layer.igate_preact.weight!.shape.Should().Equal(2, 8);
    }

    /// <summary>weight_mode "fused": qkv_opreact = [q; k; v; o] and ifgate_preact = [i; f] stacked by rows, as
    /// convert_single_weights_to_fused_weights stacks them, gives the single layer's outputs (1e-12, float64).</summary>
    [Fact]
    public void FusedLayerEqualsSingleWithStackedWeights()
    {
        using var scope = NewDisposeScope();
        var single = new XLSTMLargeSequenceMixer(8, numHeads: 2, chunkSize: 4);
        var fused = new XLSTMLargeSequenceMixer(8, numHeads: 2, chunkSize: 4, weightMode: XLSTMWeightMode.Fused);
        single.to(ScalarType.Float64);
        fused.to(ScalarType.Float64);
        var g = new Generator(502);
        Randomize(single, g);
        fused.state_dict().Keys.Should().BeEquivalentTo("qkv_opreact.weight", "ifgate_preact.weight", "ifgate_preact.bias",
            "multihead_norm.weight", "out_proj.weight");
        using (no_grad())
        {
            fused.qkv_opreact!.weight!.copy_(cat(new[] { single.q!.weight!, single.k!.weight!, single.v!.weight!, single.ogate_preact!.weight! }, 0));
            fused.ifgate_preact!.weight!.copy_(cat(new[] { single.igate_preact!.weight!, single.fgate_preact!.weight! }, 0));
            fused.ifgate_preact.bias!.copy_(cat(new[] { single.igate_preact.bias!, single.fgate_preact.bias! }, 0));
            fused.multihead_norm.weight.copy_(single.multihead_norm.weight);
            fused.out_proj.weight!.copy_(single.out_proj.weight!);
        }
        var x = TestUtil.Randn(g, [2, 6, 8]);
        TestUtil.MaxAbsDiff(fused.forward(x), single.forward(x)).Should().BeLessThan(1e-12);
    }

    /// <summary>The init of transformers' _init_weights: gate weights zero, input-gate bias -10, forget-gate bias
    /// linspace(3, 6), the projections N(0, 2 / (5 E)), out_proj Wang's N(0, (2 / blocks / sqrt(E))^2); the fused gate
    /// bias holds the same two halves.</summary>
    [Fact]
    public void InitFollowsTransformers()
    {
        using var scope = NewDisposeScope();
        var layer = new XLSTMLargeSequenceMixer(256, numHeads: 4, numBlocks: 4);
        TestUtil.Values(layer.igate_preact!.weight!).Should().OnlyContain(v => v == 0);
        TestUtil.Values(layer.igate_preact.bias!).Should().OnlyContain(v => v == -10);
        TestUtil.Values(layer.fgate_preact!.bias!).Should().Equal(3, 4, 5, 6);
        double small = Math.Sqrt(2.0 / (5 * 256)), wang = 2.0 / 4 / Math.Sqrt(256);
        Rms(layer.q!.weight!).Should().BeApproximately(small, 0.05 * small);
        Rms(layer.ogate_preact!.weight!).Should().BeApproximately(small, 0.05 * small);
        Rms(layer.out_proj.weight!).Should().BeApproximately(wang, 0.05 * wang);
        TestUtil.Values(layer.multihead_norm.weight).Should().OnlyContain(v => v == 1);
        var fused = new XLSTMLargeSequenceMixer(16, numHeads: 2, weightMode: XLSTMWeightMode.Fused);
        TestUtil.Values(fused.ifgate_preact!.bias!).Should().Equal(-10, -10, 3, 6);
    }

    private static double Rms(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64);
        return d.square().mean().sqrt().item<double>();
    }

    private static XLSTMLargeConfig Tiny(int blocks = 2) => new()
    {
        EmbeddingDim = 8, NumHeads = 2, NumBlocks = blocks, VocabSize = 12, ChunkSize = 4, FfnRoundUpToMultipleOf = 8,
    };

    /// <summary>The block stack: each block is x + layer(rms(x)) then h + SwiGLU(rms(h)), then out_norm (RMS, eps
    /// norm_eps), all written out (1e-12, float64); the names are xLSTMLargeBlockStack's.</summary>
    [Fact]
    public void BlockStackIsBlocksThenOutNormWithTheReferenceNames()
    {
        using var scope = NewDisposeScope();
        var model = new XLSTMLarge(Tiny() with { NormEps = 1e-3 });
        model.to(ScalarType.Float64);
        model.eval();
        var g = new Generator(503);
        Randomize(model, g);
        var x = TestUtil.Randn(g, [2, 5, 8]) * 0.1;
        var y = model.forward(x);
        Tensor Rms(Tensor v, Tensor w) => v / (v.square().mean(new long[] { -1 }, keepdim: true) + 1e-3).sqrt() * w;
        var h = x;
        foreach (var block in model.blocks)
        {
            var blk = (XLSTMLargeBlock)block;
            h = h + blk.mlstm_layer.forward(Rms(h, blk.norm_mlstm.weight!));
            var f = Rms(h, blk.norm_ffn.weight!);
            var ffn = blk.ffn;
            h = h + Lin(torch.nn.functional.silu(Lin(f, ffn.proj_up_gate!.weight!)) * Lin(f, ffn.proj_up!.weight!), ffn.proj_down.weight!);
        }
        TestUtil.MaxAbsDiff(y, Rms(h, model.out_norm!.weight!)).Should().BeLessThan(1e-12);

        var expectedNames = new List<string>();
        for (int i = 0; i < 2; i++)
        {
            string p = $"blocks.{i}.";
            expectedNames.AddRange(new[] { "norm_mlstm.weight", "mlstm_layer.q.weight", "mlstm_layer.k.weight", "mlstm_layer.v.weight",
                "mlstm_layer.ogate_preact.weight", "mlstm_layer.igate_preact.weight", "mlstm_layer.igate_preact.bias",
                "mlstm_layer.fgate_preact.weight", "mlstm_layer.fgate_preact.bias", "mlstm_layer.multihead_norm.weight",
                "mlstm_layer.out_proj.weight", "norm_ffn.weight", "ffn.proj_up_gate.weight", "ffn.proj_up.weight", "ffn.proj_down.weight" }
                .Select(n => p + n));
        }
        expectedNames.Add("out_norm.weight");
        model.state_dict().Keys.Should().BeEquivalentTo(expectedNames);
        ((XLSTMLargeBlock)model.blocks[0]).ffn.UpProjDimension.Should().Be(24);    // int(((8 * 2.6667 + 7) // 8) * 8)

        var noNorm = new XLSTMLarge(Tiny() with { AddOutNorm = false });
        noNorm.out_norm.Should().BeNull();
        noNorm.state_dict().Keys.Should().NotContain("out_norm.weight");
    }

    /// <summary>The CausalLM of CreateCausalLM: logits are 30 tanh(lm_head(stack(embedding(ids))) / 30); the loss is
    /// the cross-entropy of the capped logits; greedy generation equals the argmax of full forwards over the growing
    /// sequence (no state), so streaming with the mLSTM states gives the same tokens (float64).</summary>
    [Fact]
    public void CausalLMCapsTheLogitsAndGeneratesAsFullForwards()
    {
        using var scope = NewDisposeScope();
        var lm = XLSTMLarge.CreateCausalLM(Tiny());
        lm.to(ScalarType.Float64);
        lm.eval();
        var g = new Generator(504);
        Randomize(lm, g);
        using (no_grad()) lm.lm_head!.weight!.mul_(20.0);     // logits beyond the cap
        lm.LogitSoftCap.Should().Be(30.0);
        lm.state_dict().Keys.Should().Contain(new[] { "embeddings.weight", "model.blocks.0.mlstm_layer.q.weight", "model.out_norm.weight", "lm_head.weight" });
        var ids = tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5 }, new long[] { 1, 11 });
        var raw = lm.lm_head.forward(lm.model.forward(lm.embeddings.forward(ids)));
        raw.abs().max().item<double>().Should().BeGreaterThan(30);
        var logits = lm.forward(ids);
        TestUtil.MaxAbsDiff(logits, 30.0 * (raw / 30.0).tanh()).Should().BeLessThan(1e-12);
        var logProbs = (30.0 * (raw / 30.0).tanh()).log_softmax(-1)[0];
        double ce = 0;
        for (int t = 0; t < 10; t++) ce -= logProbs[t, ids[0, t + 1].item<long>()].item<double>();
        lm.Loss(ids).item<double>().Should().BeApproximately(ce / 10, 1e-12);

        var generated = lm.Generate(new[] { new long[] { 3, 1, 4 } }, maxNewTokens: 5, temperature: 0)[0];
        var sequence = new List<long> { 3, 1, 4 };
        for (int step = 0; step < 5; step++)
        {
            var full = lm.forward(tensor(sequence.ToArray(), new long[] { 1, sequence.Count }));
            sequence.Add(full[0, sequence.Count - 1].argmax().item<long>());
        }
        generated.Should().Equal(sequence.Skip(3));

        var tied = XLSTMLarge.CreateCausalLM(Tiny(1) with { TieWordEmbeddings = true, OutputLogitSoftCap = null });
        tied.lm_head.Should().BeNull();
        tied.LogitSoftCap.Should().BeNull();
    }

    private static JsonElement Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }

    /// <summary>config.json: the four required fields and xLSTMLargeConfig's defaults; transformers' hidden_size and
    /// num_hidden_layers win over embedding_dim and num_blocks; null soft caps; the kernel fields kept in Extra and
    /// written back.</summary>
    [Fact]
    public void ConfigReadsXlstmAndTransformersFieldsWithTheReferenceDefaults()
    {
        var c = XLSTMLargeConfig.FromJson(Parse("""{"embedding_dim": 4096, "num_heads": 8, "num_blocks": 32, "vocab_size": 50304}"""));
        c.QKDimFactor.Should().Be(0.5);
        c.VDimFactor.Should().Be(1.0);
        c.GateSoftCap.Should().Be(15.0);
        c.OutputLogitSoftCap.Should().Be(30.0);
        c.NormEps.Should().Be(1e-6);
        c.Eps.Should().Be(1e-6);
        c.ChunkSize.Should().Be(64);
        c.FfnProjFactor.Should().Be(2.6667);
        c.FfnRoundUpToMultipleOf.Should().Be(64);
        c.WeightMode.Should().Be(XLSTMWeightMode.Single);
        c.AddOutNorm.Should().BeTrue();
        c.UseBias.Should().BeFalse();
        (c.QKDim, c.VDim, c.FfnDim).Should().Be((2048L, 4096L, 10944L));   // the xLSTM-7B's [2048, 4096], [10944, 4096]
        (c with { FfnProjFactor = 2.667 }).FfnDim.Should().Be(10944);

        var t = XLSTMLargeConfig.FromJson(Parse("""
            {"hidden_size": 64, "embedding_dim": 32, "num_hidden_layers": 3, "num_blocks": 1, "num_heads": 4, "vocab_size": 10,
             "gate_soft_cap": null, "output_logit_soft_cap": null, "weight_mode": "fused", "tie_word_embeddings": true,
             "mode": "inference", "max_inference_chunksize": 16384}
            """));
        (t.EmbeddingDim, t.NumBlocks).Should().Be((64L, 3));
        t.GateSoftCap.Should().BeNull();
        t.OutputLogitSoftCap.Should().BeNull();
        t.WeightMode.Should().Be(XLSTMWeightMode.Fused);
        t.TieWordEmbeddings.Should().BeTrue();
        t.Extra.Keys.Should().BeEquivalentTo("mode", "max_inference_chunksize");

        var back = XLSTMLargeConfig.FromJson(Parse(t.ToJson().ToJsonString()));
        back.Should().BeEquivalentTo(t, o => o.Excluding(x => x.Extra));
        back.Extra.Keys.Should().BeEquivalentTo("mode", "max_inference_chunksize", "model_type", "architectures");
        t.ToJson()["num_blocks"]!.GetValue<int>().Should().Be(3);
    }

    /// <summary>xlstm_large rounds the feed-forward with Python's float floor division, ((x + m - 1) // m) m, which
    /// differs from xlstm-jax's ceil for a fractional part below 1: 64.5 gives 64 here and 128 there.</summary>
    [Fact]
    public void FeedForwardRoundingIsPythonsFloorDivision()
    {
        var c = new XLSTMLargeConfig { EmbeddingDim = 1, NumHeads = 1, NumBlocks = 1, VocabSize = 2, FfnProjFactor = 64.5 };
        c.FfnDim.Should().Be(64);
        GatedFeedForward.UpProjDim(1, 64.5).Should().Be(128);
        (c with { FfnProjFactor = 65.0 }).FfnDim.Should().Be(128);
        (c with { FfnProjFactor = 64.0 }).FfnDim.Should().Be(64);
    }

    /// <summary>Bad config fields and options throw naming the argument (the config's field in the message).</summary>
    [Fact]
    public void BadConfigAndOptionsThrowNamingTheArgument()
    {
        var configs = new[]
        {
            ("""{"num_heads": 2, "num_blocks": 1, "vocab_size": 4}""", "embedding_dim"),
            ("""{"embedding_dim": 8, "num_heads": 2, "num_blocks": 1}""", "vocab_size"),
            ("""{"embedding_dim": 8, "num_heads": "2", "num_blocks": 1, "vocab_size": 4}""", "num_heads"),
            ("""{"embedding_dim": 8, "num_heads": 2, "num_blocks": 1, "vocab_size": 4, "weight_mode": "split"}""", "weight_mode"),
            ("""{"embedding_dim": 8, "num_heads": 2, "num_blocks": 1, "vocab_size": 4, "use_bias": 1}""", "use_bias"),
            ("""[1, 2]""", "JSON object"),
        };
        foreach (var (json, field) in configs)
            FluentActions.Invoking(() => XLSTMLargeConfig.FromJson(Parse(json))).Should().Throw<ArgumentException>()
                .Where(e => e.ParamName == "config").WithMessage($"*{field}*");

        FluentActions.Invoking(() => new XLSTMLarge(Tiny() with { UseBias = true })).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "config").WithMessage("*use_bias*");
        var cases = new (Func<object> Make, string Param)[]
        {
            (() => new XLSTMLargeSequenceMixer(0), "embeddingDim"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 3), "numHeads"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, qkDimFactor: 0), "qkDimFactor"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, vDimFactor: 0.01), "vDimFactor"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, gateSoftCap: 0), "gateSoftCap"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, normEps: 0), "normEps"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, eps: -1), "eps"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, chunkSize: 0), "chunkSize"),
            (() => new XLSTMLargeSequenceMixer(8, numHeads: 2, weightMode: (XLSTMWeightMode)5), "weightMode"),
            (() => new XLSTMLargeBlock(new XLSTMLargeSequenceMixer(8, numHeads: 2), new GatedFeedForward(4, 8)), "ffn"),
            (() => new XLSTMLargeBlock(new XLSTMLargeSequenceMixer(8, numHeads: 2), new GatedFeedForward(8, 8), normEps: 0), "normEps"),
            (() => new CausalLM(4, new XLSTMLarge(Tiny()), logitSoftCap: 0), "logitSoftCap"),
            (() => new CausalLM(4, new XLSTMLarge(Tiny()), logitSoftCap: double.NaN), "logitSoftCap"),
        };
        foreach (var (make, param) in cases)
            make.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }
}
