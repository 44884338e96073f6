using System.Text.Json;
using System.Text.Json.Nodes;
using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Interop;
using Discretax.Layers;
using Discretax.Models;
using Discretax.SequenceMixers;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Models;

public class FlaForCausalLMTests
{
    private static DeltaNetConfig SmallDeltaNet(bool tie = false, double range = 0.02) => new()
    {
        HiddenSize = 16, NumHiddenLayers = 2, NumHeads = 2, VocabSize = 40, IntermediateSize = 24, TieWordEmbeddings = tie,
        InitializerRange = range,
    };

    private static GatedDeltaNetConfig SmallGatedDeltaNet(bool tie = false) => new()
    {
        HiddenSize = 16, NumHiddenLayers = 2, NumHeads = 2, HeadDim = 4, NumVHeads = 4, ExpandV = 1, VocabSize = 40,
        IntermediateSize = 24, TieWordEmbeddings = tie, InitializerRange = 0.2,
    };

    private static JsonElement Json(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    private static Tensor Ids(ulong seed, long batch = 2, long length = 9, long vocab = 40) =>
        randint(0, vocab, new long[] { batch, length }, generator: new Generator(seed));

    /// <summary>The state_dict keys are fla's, written down from fla's modules (DeltaNetModel: embeddings, layers, norm;
    /// DeltaNetBlock: attn_norm, attn, mlp_norm, mlp; GatedMLP: gate_proj, up_proj, down_proj), in fla's order.</summary>
    [Fact]
    public void KeysAreExactlyFlasStateDictKeys()
    {
        using var lm = new DeltaNetForCausalLM(SmallDeltaNet());
        var layer = new[] { "attn_norm.weight", "attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight", "attn.b_proj.weight",
            "attn.q_conv1d.weight", "attn.k_conv1d.weight", "attn.v_conv1d.weight", "attn.o_norm.weight", "attn.o_proj.weight",
            "mlp_norm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight" };
        var expected = new[] { "model.embeddings.weight" }
            .Concat(Enumerable.Range(0, 2).SelectMany(i => layer.Select(n => $"model.layers.{i}.{n}")))
            .Concat(new[] { "model.norm.weight", "lm_head.weight" });
        lm.state_dict().Keys.Should().Equal(expected);
        var shapes = lm.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        shapes["model.embeddings.weight"].Should().Equal(40, 16);
        shapes["model.layers.1.mlp.gate_proj.weight"].Should().Equal(24, 16);
        shapes["model.layers.1.mlp.down_proj.weight"].Should().Equal(16, 24);
        shapes["lm_head.weight"].Should().Equal(40, 16);
        lm.embeddings.Should().BeSameAs(lm.Decoder.embeddings);
        lm.norm.Should().BeNull();
        lm.FinalNorm.Should().BeNull();

        using var tied = new GatedDeltaNetForCausalLM(SmallGatedDeltaNet(tie: true));
        tied.state_dict().Keys.Should().NotContain("lm_head.weight").And.NotContain("embeddings.weight")
            .And.Contain(new[] { "model.embeddings.weight", "model.layers.1.attn.A_log", "model.layers.1.attn.dt_bias", "model.layers.0.attn.a_proj.weight" });
        tied.lm_head.Should().BeNull();
    }

    [Fact]
    public void ConfigDefaultsAreFlas()
    {
        var d = DeltaNetConfig.FromJson(Json("""{"model_type": "delta_net"}"""));
        (d.HiddenSize, d.NumHiddenLayers, d.NumHeads, d.VocabSize, d.ConvSize).Should().Be((2048L, 24, 16, 32000L, 4));
        (d.ExpandK, d.ExpandV, d.HiddenRatio, d.IntermediateSize, d.NormEps, d.InitializerRange).Should().Be((1.0, 1.0, (double?)4, (long?)null, 1e-6, 0.02));
        (d.UseBeta, d.UseGate, d.UseShortConv, d.AllowNegEigval, d.TieWordEmbeddings).Should().Be((true, false, true, false, false));
        (d.QKActivation, d.QKNorm, d.HiddenAct).Should().Be((FlaQKActivation.Silu, FlaQKNorm.L2, "swish"));
        (d.PadTokenId, d.BosTokenId, d.EosTokenId).Should().Be(((long?)null, (long?)1, (long?)2));
        var g = GatedDeltaNetConfig.FromJson(Json("""{"model_type": "gated_deltanet"}"""));
        (g.HiddenSize, g.NumHiddenLayers, g.NumHeads, g.HeadDim, g.NumVHeads, g.ExpandV).Should().Be((2048L, 21, 6, 256, (int?)null, 2.0));
        (g.UseGate, g.UseShortConv, g.NormEps).Should().Be((true, true, 1e-6));
        new GatedDeltaNetConfig().NumHiddenLayers.Should().Be(21);
        FlaForCausalLM.SupportedModelTypes.Should().BeEquivalentTo("delta_net", "gated_deltanet", "mamba2");
    }

    [Fact]
    public void ConfigFieldsAreReadWithFlasNamesAndUnreadOnesAreKept()
    {
        var c = (DeltaNetConfig)FlaForCausalLM.ParseConfig(Json("""
            {"model_type": "delta_net", "hidden_size": 64, "num_hidden_layers": 3, "num_heads": 8, "expand_k": 0.5, "expand_v": 2,
             "use_beta": false, "use_gate": true, "use_short_conv": false, "conv_size": 3, "allow_neg_eigval": true,
             "qk_activation": "relu", "qk_norm": "sum", "hidden_ratio": 3, "intermediate_size": null, "norm_eps": 1e-5,
             "vocab_size": 100, "tie_word_embeddings": true, "initializer_range": 0.1, "pad_token_id": 0, "eos_token_id": 7,
             "fuse_norm": false, "attn": null, "attnres_block_size": null, "use_output_norm": true, "transformers_version": "4.57.1",
             "torch_dtype": "bfloat16", "architectures": ["DeltaNetForCausalLM"]}
            """));
        (c.HiddenSize, c.NumHiddenLayers, c.NumHeads, c.ExpandK, c.ExpandV, c.ConvSize).Should().Be((64L, 3, 8, 0.5, 2.0, 3));
        (c.UseBeta, c.UseGate, c.UseShortConv, c.AllowNegEigval, c.TieWordEmbeddings).Should().Be((false, true, false, true, true));
        (c.QKActivation, c.QKNorm, c.HiddenRatio, c.IntermediateSize, c.NormEps).Should().Be((FlaQKActivation.Relu, FlaQKNorm.Sum, (double?)3, (long?)null, 1e-5));
        (c.VocabSize, c.InitializerRange, c.PadTokenId, c.EosTokenId).Should().Be((100L, 0.1, (long?)0, (long?)7));
        c.Extra.Keys.Should().BeEquivalentTo("fuse_norm", "use_output_norm", "transformers_version");
        var back = c.ToJson("float32");
        back["fuse_norm"]!.GetValue<bool>().Should().BeFalse();
        back["transformers_version"]!.GetValue<string>().Should().Be("4.57.1");
        back["torch_dtype"]!.GetValue<string>().Should().Be("float32");
        back["architectures"]!.AsArray().Select(a => a!.GetValue<string>()).Should().Equal("DeltaNetForCausalLM");
        back["qk_activation"]!.GetValue<string>().Should().Be("relu");
        back["expand_k"]!.GetValue<double>().Should().Be(0.5);
        back["hidden_ratio"]!.ToJsonString().Should().Be("3");
        back["norm_eps"]!.ToJsonString().Should().Be("1e-05");                  // as Python's json writes floats
        back["expand_v"]!.ToJsonString().Should().Be("2.0");
        ((DeltaNetConfig)FlaForCausalLM.ParseConfig(JsonDocument.Parse(back.ToJsonString()).RootElement))
            .Should().BeEquivalentTo(c, o => o.Excluding(x => x.Extra));
    }

    [Fact]
    public void UnsupportedOrMalformedConfigsAreRefusedNamingTheField()
    {
        ((Action)(() => FlaForCausalLM.ParseConfig(Json("""{"model_type": "rwkv7"}""")))).Should().Throw<NotSupportedException>()
            .WithMessage("*'rwkv7'*delta_net*gated_deltanet*mamba2*");
        ((Action)(() => FlaForCausalLM.ParseConfig(Json("""{"hidden_size": 8}""")))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "config" && e.Message.Contains("model_type"));
        ((Action)(() => DeltaNetConfig.FromJson(Json("""{"model_type": "delta_net", "attn": {"layers": [1], "num_heads": 4}}"""))))
            .Should().Throw<NotSupportedException>().WithMessage("*attn*");
        ((Action)(() => GatedDeltaNetConfig.FromJson(Json("""{"model_type": "gated_deltanet", "attnres_block_size": 4}"""))))
            .Should().Throw<NotSupportedException>().WithMessage("*attnres_block_size*");
        ((Action)(() => DeltaNetConfig.FromJson(Json("""{"model_type": "gated_deltanet"}""")))).Should().Throw<ArgumentException>()
            .WithMessage("*delta_net*gated_deltanet*");
        ((Action)(() => DeltaNetConfig.FromJson(Json("""{"model_type": "delta_net", "qk_activation": "tanh"}""")))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "config" && e.Message.Contains("qk_activation") && e.Message.Contains("tanh"));
        ((Action)(() => DeltaNetConfig.FromJson(Json("""{"model_type": "delta_net", "qk_norm": "l1"}""")))).Should().Throw<ArgumentException>()
            .WithMessage("*qk_norm*l1*");
        ((Action)(() => DeltaNetConfig.FromJson(Json("""{"model_type": "delta_net", "num_heads": 2.5}""")))).Should().Throw<ArgumentException>()
            .WithMessage("*num_heads*integer*2.5*");
        ((Action)(() => DeltaNetConfig.FromJson(Json("""{"model_type": "delta_net", "use_gate": "yes"}""")))).Should().Throw<ArgumentException>()
            .WithMessage("*use_gate*true or false*");
        ((Action)(() => new DeltaNetForCausalLM(SmallDeltaNet().With(hiddenAct: "powlu")))).Should().Throw<NotSupportedException>()
            .WithMessage("*hidden_act*powlu*");
        ((Action)(() => new DeltaNetForCausalLM(new DeltaNetConfig { HiddenSize = 16, NumHeads = 3, NumHiddenLayers = 1, VocabSize = 8 })))
            .Should().Throw<ArgumentException>().Which.ParamName.Should().Be("numHeads");
        ((Action)(() => new DeltaNetForCausalLM(new DeltaNetConfig { HiddenSize = 16, NumHeads = 2, NumHiddenLayers = 0, VocabSize = 8 })))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*num_hidden_layers*");
    }

    /// <summary>fla's GatedMLP width: int(H ratio 2/3) rounded up to a multiple of 256 (hand-derived: 2048 x 4 -> 5461.3
    /// -> 5632; 1024 x 4 -> 2730.7 -> 2816; 32 x 4 -> 85.3 -> 256; ratio null is 4), unless intermediate_size is given.</summary>
    [Fact]
    public void GatedMLPIsFlasSwiGLUWithFlasWidthRuleAndNames()
    {
        new GatedMLP(2048).IntermediateSize.Should().Be(5632);
        new GatedMLP(1024, hiddenRatio: null).IntermediateSize.Should().Be(2816);
        new GatedMLP(32).IntermediateSize.Should().Be(256);
        new GatedMLP(32, hiddenRatio: 2, intermediateSize: 40).IntermediateSize.Should().Be(40);
        using var lm = new DeltaNetForCausalLM(new DeltaNetConfig { HiddenSize = 32, NumHeads = 2, NumHiddenLayers = 1, VocabSize = 8, HiddenRatio = 6 });
        ((GatedMLP)((FlaBlock)lm.Decoder.layers[0]).mlp).IntermediateSize.Should().Be(256 * 1);   // int(128) -> 256

        torch.manual_seed(2);
        using var mlp = new GatedMLP(6, intermediateSize: 5);
        mlp.to(ScalarType.Float64);
        mlp.state_dict().Keys.Should().Equal("gate_proj.weight", "up_proj.weight", "down_proj.weight");
        using var x = TestUtil.Randn(new Generator(3), new long[] { 2, 4, 6 });
        using var y = mlp.forward(x);
        using var scope = NewDisposeScope();
        var gate = x.matmul(mlp.gate_proj.weight!.t());
        var expected = (gate * gate.sigmoid() * x.matmul(mlp.up_proj.weight!.t())).matmul(mlp.down_proj.weight!.t());
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-14);
    }

    /// <summary>fla's block: h = x + attn(attn_norm(x)), y = h + mlp(mlp_norm(h)), both norms with norm_eps (1e-14, float64).</summary>
    [Fact]
    public void FlaBlockIsTwoPreNormResiduals()
    {
        torch.manual_seed(4);
        using var block = new FlaBlock(8, new FlaDeltaNetSequenceMixer(8, numHeads: 2), new GatedMLP(8, intermediateSize: 12), normEps: 1e-3);
        block.to(ScalarType.Float64);
        var g = new Generator(5);
        Reference.Set(block.attn_norm.weight!, TestUtil.Randn(g, new long[] { 8 }));
        Reference.Set(block.mlp_norm.weight!, TestUtil.Randn(g, new long[] { 8 }));
        block.state_dict().Keys.Should().StartWith(new[] { "attn_norm.weight", "attn.q_proj.weight" }).And.Contain("mlp_norm.weight").And.Contain("mlp.up_proj.weight");
        using var x = TestUtil.Randn(g, new long[] { 2, 7, 8 });
        using var y = block.forward(x);
        using var scope = NewDisposeScope();
        Tensor Rms(Tensor u, RMSNorm n) => u / (u.square().mean(new long[] { -1 }, keepdim: true) + 1e-3).sqrt() * n.weight!;
        var h = x + block.attn.forward(Rms(x, block.attn_norm));
        var expected = h + block.mlp.forward(Rms(h, block.mlp_norm));
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-14);
    }

    /// <summary>Tied: the head multiplies by the embedding (logits = norm(h) E^T, exact). Untied, the pad id's embedding row
    /// gets no gradient (fla's padding_idx; tied, the head's gradient reaches it, as in fla).</summary>
    [Fact]
    public void TiedModelsUseTheEmbeddingAndThePadRowGetsNoGradient()
    {
        torch.manual_seed(9);
        using var tied = new DeltaNetForCausalLM(SmallDeltaNet(tie: true, range: 0.3));
        tied.TiedWeights.Should().BeTrue();
        using var ids = Ids(10);
        using var logits = tied.forward(ids);
        using (var scope = NewDisposeScope())
        {
            var h = tied.Decoder.forward(tied.embeddings.forward(ids));
            TestUtil.MaxAbsDiff(logits, h.matmul(tied.embeddings.weight!.t())).Should().Be(0);
        }
        using var lm = new DeltaNetForCausalLM(SmallDeltaNet(range: 0.3).With(padTokenId: 3));
        using var loss = lm.Loss(ids);
        loss.backward();
        using var grad = lm.embeddings.weight!.grad!;
        TestUtil.Values(grad[3]).Should().OnlyContain(v => v == 0);
        TestUtil.Values(grad).Should().Contain(v => v != 0);
    }

    /// <summary>Export then import: FlaCheckpoint.Save writes config.json + model.safetensors under fla's names, and
    /// FlaCheckpoint.Load of that directory gives the same model class, config and bit-identical logits; a bfloat16 export
    /// loads as bfloat16 (kept) or as float32 holding exactly the bfloat16 values.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ExportThenImportGivesIdenticalOutputs(bool gated)
    {
        string dir = TempDir();
        try
        {
            torch.manual_seed(11);
            using FlaForCausalLM lm = gated ? new GatedDeltaNetForCausalLM(SmallGatedDeltaNet(tie: true)) : new DeltaNetForCausalLM(SmallDeltaNet(range: 0.3));
            lm.eval();
            FlaCheckpoint.Save(lm, dir);
            Directory.GetFiles(dir).Select(Path.GetFileName).Should().BeEquivalentTo("config.json", "model.safetensors");
            using (var file = SafeTensors.Read(Path.Combine(dir, "model.safetensors")))
            {
                file.Keys.Should().BeEquivalentTo(lm.state_dict().Keys);
                file.Metadata["format"].Should().Be("pt");
            }
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
            json["model_type"]!.GetValue<string>().Should().Be(gated ? "gated_deltanet" : "delta_net");
            json["torch_dtype"]!.GetValue<string>().Should().Be("float32");

            using var back = FlaCheckpoint.Load(dir);
            back.GetType().Should().Be(lm.GetType());
            back.Config.Should().BeEquivalentTo(lm.Config, o => o.Excluding(c => c.Extra));
            using var ids = Ids(12);
            using var expected = lm.forward(ids);
            using var actual = back.forward(ids);
            Same(actual, expected).Should().BeTrue("the same float32 weights give the same logits bit for bit");

            string half = Path.Combine(dir, "bf16");
            FlaCheckpoint.Save(lm, half, ScalarType.BFloat16);
            JsonNode.Parse(File.ReadAllText(Path.Combine(half, "config.json")))!["torch_dtype"]!.GetValue<string>().Should().Be("bfloat16");
            using var kept = FlaCheckpoint.Load(half, CheckpointDType.Checkpoint);
            using (var w = kept.embeddings.weight!) w.dtype.Should().Be(ScalarType.BFloat16);
            using var widened = FlaCheckpoint.Load(half);
            foreach (var (name, t) in widened.state_dict())
            {
                t.dtype.Should().Be(ScalarType.Float32, name);
                using var rounded = lm.state_dict()[name].to(ScalarType.BFloat16);
                Same(t, rounded.to(ScalarType.Float32)).Should().BeTrue(name);
            }
            using var halfLogits = kept.forward(ids);
            halfLogits.dtype.Should().Be(ScalarType.BFloat16);

            // fla keeps A_log (and an ungated o_norm.weight) in float32 in a bfloat16 model: kept, they follow the embedding's dtype.
            using (var file = SafeTensors.Read(Path.Combine(half, "model.safetensors")))
            using (var scope = NewDisposeScope())
                SafeTensors.Write(Path.Combine(half, "model.safetensors"),
                    file.Select(p => p.Key.EndsWith("A_log") || p.Key.EndsWith("o_norm.weight") ? new KeyValuePair<string, Tensor>(p.Key, p.Value.to(ScalarType.Float32)) : p), null);
            using var mixed = FlaCheckpoint.Load(half, CheckpointDType.Checkpoint);
            mixed.state_dict().Values.Should().OnlyContain(t => t.dtype == ScalarType.BFloat16);
            using var mixedLogits = mixed.forward(ids);
            Same(mixedLogits, halfLogits).Should().BeTrue("float32 copies of bfloat16 values convert back exactly");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A sharded safetensors directory (index + two shards) loads like the single file; a missing tensor fails the
    /// strict load naming it; a tied checkpoint that carries an lm_head.weight other than the embedding is refused; an
    /// untied one without lm_head.weight fails as missing.</summary>
    [Fact]
    public void ShardedDirectoriesLoadAndBadCheckpointsAreRefusedNamingTheTensor()
    {
        string dir = TempDir();
        try
        {
            torch.manual_seed(13);
            using var lm = new DeltaNetForCausalLM(SmallDeltaNet(range: 0.3));
            lm.eval();
            FlaCheckpoint.Save(lm, dir);
            using var tensors = SafeTensors.Read(Path.Combine(dir, "model.safetensors"));

            string sharded = Path.Combine(dir, "sharded");
            Directory.CreateDirectory(sharded);
            File.Copy(Path.Combine(dir, "config.json"), Path.Combine(sharded, "config.json"));
            var names = tensors.Keys.ToList();
            var first = names.Take(names.Count / 2).ToList();
            SafeTensors.Write(Path.Combine(sharded, "model-00001-of-00002.safetensors"), tensors.Where(p => first.Contains(p.Key)), null);
            SafeTensors.Write(Path.Combine(sharded, "model-00002-of-00002.safetensors"), tensors.Where(p => !first.Contains(p.Key)), null);
            var map = new JsonObject();
            foreach (var n in names) map[n] = first.Contains(n) ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
            File.WriteAllText(Path.Combine(sharded, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
            using (var loaded = FlaCheckpoint.Load(sharded))
            using (var ids = Ids(14))
            using (var a = loaded.forward(ids))
            using (var b = lm.forward(ids))
                Same(a, b).Should().BeTrue();

            string missing = Path.Combine(dir, "missing");
            Directory.CreateDirectory(missing);
            File.Copy(Path.Combine(dir, "config.json"), Path.Combine(missing, "config.json"));
            SafeTensors.Write(Path.Combine(missing, "model.safetensors"), tensors.Where(p => p.Key != "model.layers.1.attn.b_proj.weight"), null);
            ((Action)(() => FlaCheckpoint.Load(missing))).Should().Throw<ArgumentException>()
                .WithMessage("*missing*'model.layers.1.attn.b_proj.weight' [2, 16]*");
            using (var partial = FlaCheckpoint.Load(missing, strict: false)) partial.Should().BeOfType<DeltaNetForCausalLM>();

            string tied = Path.Combine(dir, "tied");
            Directory.CreateDirectory(tied);
            var config = lm.Config.ToJson();
            config["tie_word_embeddings"] = true;
            File.WriteAllText(Path.Combine(tied, "config.json"), config.ToJsonString());
            SafeTensors.Write(Path.Combine(tied, "model.safetensors"), tensors, null);
            ((Action)(() => FlaCheckpoint.Load(tied))).Should().Throw<ArgumentException>().WithMessage("*ties*lm_head.weight*");
            using (var e = tensors["model.embeddings.weight"].clone())
            {
                SafeTensors.Write(Path.Combine(tied, "model.safetensors"), tensors.Select(p => p.Key == "lm_head.weight" ? new KeyValuePair<string, Tensor>(p.Key, e) : p), null);
                using var ok = FlaCheckpoint.Load(tied);
                ok.TiedWeights.Should().BeTrue();
            }

            File.WriteAllText(Path.Combine(missing, "config.json"), """{"model_type": "delta_net", "num_heads": "four"}""");
            ((Action)(() => FlaCheckpoint.Load(missing))).Should().Throw<CheckpointFormatException>().WithMessage("*config.json*num_heads*");
            File.Delete(Path.Combine(missing, "config.json"));
            ((Action)(() => FlaCheckpoint.Load(missing))).Should().Throw<FileNotFoundException>().WithMessage("*config.json*");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The fla models use CausalLM's machinery: the packed loss equals the padded-batch loss (1e-5, float32), and
    /// greedy generation of the Gated DeltaNet LM is the argmax of a full forward at every step.</summary>
    [Fact]
    public void PackedLossAndStreamingGenerationWorkAsForCausalLM()
    {
        torch.manual_seed(15);
        using var lm = new GatedDeltaNetForCausalLM(SmallGatedDeltaNet(), chunkSize: 4);
        lm.eval();
        using var scope = NewDisposeScope();
        var docs = new[] { Ids(16, 1, 7)[0], Ids(17, 1, 4)[0], Ids(18, 1, 9)[0] };
        var packed = cat(docs, 0);
        var cu = tensor(new long[] { 0, 7, 11, 20 });
        var (packedLoss, count) = lm.LossPacked(packed, cu);
        count.Should().Be(17);
        var padded = zeros(3, 9, dtype: ScalarType.Int64);
        for (int i = 0; i < 3; i++) padded[i].narrow(0, 0, docs[i].shape[0]).copy_(docs[i]);
        var paddedLoss = lm.Loss(padded, tensor(new long[] { 7, 4, 9 }));
        packedLoss.item<float>().Should().BeApproximately(paddedLoss.item<float>(), 1e-5f);

        var prompt = new long[] { 3, 1, 4, 1, 5 };
        var generated = lm.Generate(new[] { prompt }, maxNewTokens: 6, temperature: 0)[0];
        var ids = prompt.ToList();
        foreach (var token in generated)
        {
            token.Should().Be(lm.forward(tensor(ids.ToArray(), new long[] { 1, ids.Count }, ScalarType.Int64))[0, -1].argmax().item<long>());
            ids.Add(token);
        }
    }
}

/// <summary>Copies of configs with one field changed (the configs are init-only classes, not records).</summary>
internal static class FlaConfigCopies
{
    public static DeltaNetConfig With(this DeltaNetConfig c, string? hiddenAct = null, long? padTokenId = null) => new()
    {
        HiddenSize = c.HiddenSize, NumHiddenLayers = c.NumHiddenLayers, NumHeads = c.NumHeads, VocabSize = c.VocabSize,
        IntermediateSize = c.IntermediateSize, TieWordEmbeddings = c.TieWordEmbeddings, InitializerRange = c.InitializerRange,
        HiddenAct = hiddenAct ?? c.HiddenAct, PadTokenId = padTokenId ?? c.PadTokenId,
    };
}

/// <summary>fla models' initialization statistics after a global seed: apart from parallel tests (SeededDrawsCollection).</summary>
[Collection(nameof(SeededDrawsCollection))]
public class FlaForCausalLMInitializationTests
{
    /// <summary>fla's _init_weights: linear and convolution weights and the embedding normal(0, initializer_range), norm gains
    /// 1, Gated DeltaNet's A = exp(A_log) in (0, 16). Sample standard deviations of about 10^4 values: within 5 %.</summary>
    [Fact]
    public void InitializationIsFlas()
    {
        torch.manual_seed(8);
        using var lm = new GatedDeltaNetForCausalLM(new GatedDeltaNetConfig
        {
            HiddenSize = 64, NumHiddenLayers = 1, NumHeads = 2, HeadDim = 16, VocabSize = 200, IntermediateSize = 160, InitializerRange = 0.05,
        });
        var sd = lm.state_dict();
        double Std(string name) => sd[name].std().item<float>();
        foreach (var name in new[] { "model.embeddings.weight", "lm_head.weight", "model.layers.0.attn.q_proj.weight", "model.layers.0.attn.g_proj.weight",
                     "model.layers.0.mlp.down_proj.weight" })
            Std(name).Should().BeApproximately(0.05, 0.0025, name);
        using (var convs = cat(new[] { sd["model.layers.0.attn.q_conv1d.weight"].flatten(), sd["model.layers.0.attn.k_conv1d.weight"].flatten(),
                   sd["model.layers.0.attn.v_conv1d.weight"].flatten() }))
            ((double)convs.std().item<float>()).Should().BeApproximately(0.05, 0.005, "fla's ShortConvolution is an nn.Conv1d (1024 values)");
        foreach (var name in new[] { "model.norm.weight", "model.layers.0.attn_norm.weight", "model.layers.0.attn.o_norm.weight" })
            TestUtil.Values(sd[name]).Should().OnlyContain(v => v == 1, name);
        TestUtil.Values(sd["model.layers.0.attn.A_log"].exp()).Should().OnlyContain(v => v > 0 && v < 16);
    }
}
