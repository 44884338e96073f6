using System.Text.Json;
using System.Text.Json.Nodes;
using Discretax.Blocks;
using Discretax.Interop;
using Discretax.Layers;
using Discretax.Models;
using Discretax.SequenceMixers;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Models;

public class Mamba2ForCausalLMTests
{
    private static Mamba2Config Small(bool tie = false, bool bias = false, int groups = 1, double range = 0.2) => new()
    {
        HiddenSize = 16, NumHiddenLayers = 2, VocabSize = 40, StateSize = 8, HeadDim = 8, NGroups = groups, UseBias = bias,
        TieWordEmbeddings = tie, InitializerRange = range, ChunkSize = 4,
    };

    private static JsonElement Json(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    private static Tensor Ids(ulong seed, long batch = 2, long length = 9, long vocab = 40) =>
        randint(0, vocab, new long[] { batch, length }, generator: new Generator(seed));

    /// <summary>The state_dict keys are fla's, written down from fla's modules (Mamba2ForCausalLM: backbone, lm_head;
    /// Mamba2Model: embeddings, layers, norm_f; Mamba2Block: norm, mixer; Mamba2: dt_bias, A_log, D, conv1d, in_proj,
    /// norm, out_proj), with fla's shapes at d_inner 32, 4 heads, 1 group of state 8 (conv channels 32 + 2 8 = 48,
    /// in_proj rows 32 + 48 + 4 = 84). Tied, there is no lm_head; biases appear with use_bias.</summary>
    [Fact]
    public void KeysAndShapesAreFlas()
    {
        using var lm = new Mamba2ForCausalLM(Small());
        var layer = new[] { "norm.weight", "mixer.dt_bias", "mixer.A_log", "mixer.D", "mixer.in_proj.weight", "mixer.conv1d.weight",
            "mixer.conv1d.bias", "mixer.norm.weight", "mixer.out_proj.weight" };
        var expected = new[] { "backbone.embeddings.weight" }
            .Concat(Enumerable.Range(0, 2).SelectMany(i => layer.Select(n => $"backbone.layers.{i}.{n}")))
            .Concat(new[] { "backbone.norm_f.weight", "lm_head.weight" });
        lm.state_dict().Keys.Should().BeEquivalentTo(expected);
        lm.state_dict().Keys.First().Should().Be("backbone.embeddings.weight");
        lm.state_dict().Keys.Last().Should().Be("lm_head.weight");
        var shapes = lm.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        shapes["backbone.embeddings.weight"].Should().Equal(40, 16);
        shapes["backbone.layers.1.norm.weight"].Should().Equal(16);
        shapes["backbone.layers.1.mixer.in_proj.weight"].Should().Equal(84, 16);
        shapes["backbone.layers.1.mixer.conv1d.weight"].Should().Equal(48, 1, 4);
        shapes["backbone.layers.1.mixer.conv1d.bias"].Should().Equal(48);
        shapes["backbone.layers.1.mixer.dt_bias"].Should().Equal(4);
        shapes["backbone.layers.1.mixer.A_log"].Should().Equal(4);
        shapes["backbone.layers.1.mixer.D"].Should().Equal(4);
        shapes["backbone.layers.1.mixer.norm.weight"].Should().Equal(32);
        shapes["backbone.layers.1.mixer.out_proj.weight"].Should().Equal(16, 32);
        shapes["lm_head.weight"].Should().Equal(40, 16);
        lm.DecoderName.Should().Be("backbone");
        lm.embeddings.Should().BeSameAs(lm.Decoder.embeddings);
        lm.Decoder.layers.Should().AllBeOfType<Mamba2Block>();

        using var tied = new Mamba2ForCausalLM(Small(tie: true, bias: true));
        tied.lm_head.Should().BeNull();
        tied.state_dict().Keys.Should().NotContain("lm_head.weight")
            .And.Contain(new[] { "backbone.layers.0.mixer.in_proj.bias", "backbone.layers.0.mixer.out_proj.bias" });
    }

    [Fact]
    public void ConfigDefaultsAreFlas()
    {
        var c = Mamba2Config.FromJson(Json("""{"model_type": "mamba2"}"""));
        (c.HiddenSize, c.NumHiddenLayers, c.VocabSize, c.HeadDim, c.StateSize, c.Expand, c.ConvKernel, c.NGroups, c.NumHeads)
            .Should().Be((2048L, 48, 32000L, 64, 128, 2, 4, 1, 64));
        (c.NormEps, c.InitializerRange, c.DtMin, c.DtMax, c.DtInitFloor, c.ChunkSize).Should().Be((1e-5, 0.02, 0.001, 0.1, 1e-4, 256));
        (c.AInitRange, c.DtLimit).Should().Be(((1.0, 16.0), (0.0, double.PositiveInfinity)));
        (c.UseBias, c.UseConvBias, c.DHasHdim, c.ResidualInFp32, c.RescalePrenormResidual, c.RmsNorm, c.NormBeforeGate, c.TieWordEmbeddings)
            .Should().Be((false, true, false, true, true, true, false, false));
        (c.HiddenAct, c.ConvInit, c.HiddenRatio, c.IntermediateSize).Should().Be(("silu", (double?)null, (double?)null, (long?)null));
        (c.PadTokenId, c.BosTokenId, c.EosTokenId).Should().Be(((long?)0, (long?)1, (long?)2));
        c.Should().BeEquivalentTo(new Mamba2Config(), o => o.Excluding(x => x.Extra));
        var json = c.ToJson();
        json.ContainsKey("hidden_ratio").Should().BeFalse("fla's Mamba2 config has no feed-forward fields");
        json.ContainsKey("intermediate_size").Should().BeFalse();
        json["dt_limit"]!.ToJsonString().Should().Be("[0.0,1e999]");
        json["A_init_range"]!.ToJsonString().Should().Be("[1,16]");
        json["num_heads"]!.GetValue<int>().Should().Be(64);
        (json["model_type"]!.GetValue<string>(), json["architectures"]![0]!.GetValue<string>()).Should().Be(("mamba2", "Mamba2ForCausalLM"));
    }

    /// <summary>Every field is read under fla's name, written back under it, and the written config reads back equal; unread
    /// fields (fla's kernel switches, and 'attn', which fla's Mamba2 config does not have) are kept in Extra.</summary>
    [Fact]
    public void ConfigRoundTripsWithFlasNames()
    {
        var c = (Mamba2Config)FlaForCausalLM.ParseConfig(Json("""
            {"model_type": "mamba2", "hidden_size": 48, "num_hidden_layers": 3, "vocab_size": 100, "head_dim": 12, "state_size": 32,
             "expand": 3, "conv_kernel": 3, "n_groups": 3, "num_heads": 12, "use_bias": true, "use_conv_bias": false, "conv_init": 0.25,
             "A_init_range": [2, 8.5], "D_has_hdim": true, "hidden_act": "swish", "initializer_range": 0.1, "residual_in_fp32": false,
             "dt_min": 0.002, "dt_max": 0.2, "dt_init_floor": 0.001, "dt_limit": [0.01, 5], "rescale_prenorm_residual": false,
             "rmsnorm": false, "norm_before_gate": true, "chunk_size": 64, "norm_eps": 1e-6, "tie_word_embeddings": true,
             "pad_token_id": 3, "fuse_norm": false, "use_l2warp": true, "attn": null, "transformers_version": "4.57.1"}
            """));
        (c.HiddenSize, c.NumHiddenLayers, c.VocabSize, c.HeadDim, c.StateSize, c.Expand, c.ConvKernel, c.NGroups, c.NumHeads)
            .Should().Be((48L, 3, 100L, 12, 32, 3, 3, 3, 12));
        (c.UseBias, c.UseConvBias, c.ConvInit, c.AInitRange, c.DHasHdim, c.HiddenAct, c.ResidualInFp32).Should().Be((true, false, (double?)0.25, (2.0, 8.5), true, "swish", false));
        (c.DtMin, c.DtMax, c.DtInitFloor, c.DtLimit, c.RescalePrenormResidual, c.RmsNorm, c.NormBeforeGate, c.ChunkSize).Should().Be((0.002, 0.2, 0.001, (0.01, 5.0), false, false, true, 64));
        (c.NormEps, c.TieWordEmbeddings, c.PadTokenId, c.InitializerRange).Should().Be((1e-6, true, (long?)3, 0.1));
        c.Extra.Keys.Should().BeEquivalentTo("fuse_norm", "use_l2warp", "attn", "transformers_version");
        var back = c.ToJson("bfloat16");
        back["A_init_range"]!.ToJsonString().Should().Be("[2,8.5]");
        back["dt_limit"]!.ToJsonString().Should().Be("[0.01,5.0]");
        back["conv_init"]!.ToJsonString().Should().Be("0.25");
        back["norm_eps"]!.ToJsonString().Should().Be("1e-06");
        back["use_l2warp"]!.GetValue<bool>().Should().BeTrue();
        back["torch_dtype"]!.GetValue<string>().Should().Be("bfloat16");
        var again = (Mamba2Config)FlaForCausalLM.ParseConfig(JsonDocument.Parse(back.ToJsonString()).RootElement);
        again.Should().BeEquivalentTo(c, o => o.Excluding(x => x.Extra));
        again.Extra.Keys.Should().BeEquivalentTo(c.Extra.Keys);
        using var lm = (Mamba2ForCausalLM)FlaForCausalLM.FromConfig(c);
        var mixer = lm.Mixers.First();
        (mixer.NumHeads, mixer.NumGroups, mixer.HeadDim, mixer.StateSize, mixer.InnerDim, mixer.ChunkSize, mixer.norm is null).Should().Be((12, 3, 12, 32, 144L, 64, true));
    }

    [Fact]
    public void BadConfigsAreRefusedNamingTheField()
    {
        void Refused<T>(string json, string pattern) where T : Exception =>
            ((Action)(() => new Mamba2ForCausalLM(Mamba2Config.FromJson(Json(json))))).Should().Throw<T>().WithMessage(pattern);
        Refused<NotSupportedException>("""{"model_type": "mamba2", "hidden_act": "gelu"}""", "*hidden_act*gelu*silu*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "hidden_size": 36, "head_dim": 16}""", "*head_dim (16)*expand * hidden_size (72)*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "hidden_size": 32, "head_dim": 16, "n_groups": 3}""", "*n_groups (3)*num_heads*(4)*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "hidden_size": 32, "head_dim": 16, "num_heads": 8}""", "*num_heads*2 * 32 / 16*8*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "A_init_range": [0, 16]}""", "*A_init_range*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "A_init_range": 16}""", "*A_init_range*pair*16*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "dt_limit": [0.5, 0.1]}""", "*dt_limit*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "dt_limit": [0.0, 1.0, 2.0]}""", "*dt_limit*pair*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "dt_min": 0.5, "dt_max": 0.1}""", "*dt_min*dt_max*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "dt_init_floor": 0}""", "*dt_init_floor*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "conv_init": -1}""", "*conv_init*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "expand": 2.5}""", "*expand*integer*2.5*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "state_size": 0}""", "*state_size*");
        Refused<ArgumentException>("""{"model_type": "mamba2", "rmsnorm": "yes"}""", "*rmsnorm*true or false*");
        ((Action)(() => Mamba2Config.FromJson(Json("""{"model_type": "delta_net"}""")))).Should().Throw<ArgumentException>().WithMessage("*mamba2*delta_net*");
        ((Action)(() => new Mamba2ForCausalLM(Small(), chunkSize: 0))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("chunkSize");
        ((Action)(() => new Mamba2ForCausalLM(null!))).Should().Throw<ArgumentNullException>();

        string dir = TempDir();
        try
        {
            using (var lm = new Mamba2ForCausalLM(Small())) FlaCheckpoint.Save(lm, dir);
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            config["n_groups"] = 3;
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            ((Action)(() => FlaCheckpoint.Load(dir))).Should().Throw<CheckpointFormatException>().WithMessage("*config.json*n_groups*");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>fla's block: y = x + mixer(rms(x) w), the norm with norm_eps (float64, 1e-14). In bfloat16 the residual sum
    /// is taken in float32 and rounded once (residual_in_fp32), or in bfloat16 without it: both exact.</summary>
    [Fact]
    public void Mamba2BlockIsOnePreNormResidualSummedInFloat32()
    {
        torch.manual_seed(3);
        using var block = new Mamba2Block(8, new Mamba2SequenceMixer(8, stateSize: 4, headDim: 4, chunkSize: 3), normEps: 1e-3);
        block.to(ScalarType.Float64);
        var g = new Generator(4);
        Reference.Set(block.norm.weight!, TestUtil.Randn(g, new long[] { 8 }));
        block.state_dict().Keys.Should().StartWith(new[] { "norm.weight" }).And.Contain("mixer.in_proj.weight");
        using var x = TestUtil.Randn(g, new long[] { 2, 7, 8 });
        using var y = block.forward(x);
        using (var scope = NewDisposeScope())
        {
            var n = x / (x.square().mean(new long[] { -1 }, keepdim: true) + 1e-3).sqrt() * block.norm.weight!;
            TestUtil.MaxAbsDiff(y, x + block.mixer.forward(n)).Should().BeLessThan(1e-14);
        }

        foreach (bool fp32 in new[] { true, false })
        {
            torch.manual_seed(5);
            using var half = new Mamba2Block(8, new Mamba2SequenceMixer(8, stateSize: 4, headDim: 4, chunkSize: 3), residualInFp32: fp32);
            half.to(ScalarType.BFloat16);
            half.eval();
            using var scope = NewDisposeScope();
            var xh = TestUtil.Randn(new Generator(6), new long[] { 1, 5, 8 }).to(ScalarType.BFloat16);
            var a = half.mixer.forward(half.norm.forward(xh));
            var expected = fp32 ? (xh.to(ScalarType.Float32) + a.to(ScalarType.Float32)).to(ScalarType.BFloat16) : xh + a;
            var actual = half.forward(xh);
            actual.dtype.Should().Be(ScalarType.BFloat16);
            Same(actual, expected).Should().BeTrue($"residualInFp32 {fp32}");
        }
    }

    /// <summary>CausalLM's machinery on the Mamba2 tree: the packed loss equals the right-padded batch's loss (1e-5, float32),
    /// a padded batch gives each sequence its own logits (1e-5) and zeros at padded steps, and the model converts to float64
    /// (TorchSharp's Module.to, which maps the public members by name) and computes there.</summary>
    [Fact]
    public void PackedAndPaddedBatchesAndFloat64Work()
    {
        torch.manual_seed(9);
        using var lm = new Mamba2ForCausalLM(Small(groups: 2));
        lm.eval();
        using (var scope = NewDisposeScope())
        {
            var docs = new[] { Ids(10, 1, 7)[0], Ids(11, 1, 3)[0], Ids(12, 1, 9)[0] };
            var (packedLoss, count) = lm.LossPacked(cat(docs, 0), tensor(new long[] { 0, 7, 10, 19 }));
            count.Should().Be(16);
            var padded = zeros(3, 9, dtype: ScalarType.Int64);
            for (int i = 0; i < 3; i++) padded[i].narrow(0, 0, docs[i].shape[0]).copy_(docs[i]);
            var lengths = tensor(new long[] { 7, 3, 9 });
            packedLoss.item<float>().Should().BeApproximately(lm.Loss(padded, lengths).item<float>(), 1e-5f);
            var logits = lm.forward(padded, lengths);
            for (int i = 0; i < 3; i++)
            {
                var alone = lm.forward(docs[i].unsqueeze(0))[0];
                TestUtil.RelRms(logits[i].narrow(0, 0, docs[i].shape[0]), alone).Should().BeLessThan(1e-5);
            }
            TestUtil.Values(logits[1].narrow(0, 3, 6)).Should().OnlyContain(v => v == 0);
        }

        lm.to(ScalarType.Float64);
        using var ids = Ids(13);
        using var wide = lm.forward(ids);
        wide.dtype.Should().Be(ScalarType.Float64);
    }

    /// <summary>Export then import in code: Save writes fla's keys (no lm_head.weight when tied) and config; Load gives the
    /// same class, the same config and bit-identical logits; a bfloat16 export loads in bfloat16 (kept) or as float32
    /// holding exactly the bfloat16 values.</summary>
    [Fact]
    public void ExportThenImportGivesIdenticalOutputs()
    {
        string dir = TempDir();
        try
        {
            torch.manual_seed(14);
            using var lm = new Mamba2ForCausalLM(Small(tie: true, bias: true, groups: 2));
            lm.eval();
            FlaCheckpoint.Save(lm, dir);
            using (var file = SafeTensors.Read(Path.Combine(dir, "model.safetensors")))
                file.Keys.Should().BeEquivalentTo(lm.state_dict().Keys).And.NotContain("lm_head.weight");
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
            (json["model_type"]!.GetValue<string>(), json["n_groups"]!.GetValue<int>(), json["tie_word_embeddings"]!.GetValue<bool>()).Should().Be(("mamba2", 2, true));
            using var back = FlaCheckpoint.Load(dir);
            back.Should().BeOfType<Mamba2ForCausalLM>();
            back.Config.Should().BeEquivalentTo(lm.Config, o => o.Excluding(c => c.Extra));
            using var ids = Ids(15);
            using var expected = lm.forward(ids);
            using var actual = back.forward(ids);
            Same(actual, expected).Should().BeTrue("the same float32 weights give the same logits bit for bit");

            string half = Path.Combine(dir, "bf16");
            FlaCheckpoint.Save(lm, half, ScalarType.BFloat16);
            using var kept = FlaCheckpoint.Load(half, CheckpointDType.Checkpoint);
            kept.state_dict().Values.Should().OnlyContain(t => t.dtype == ScalarType.BFloat16);
            using var widened = FlaCheckpoint.Load(half);
            foreach (var (name, t) in widened.state_dict())
            {
                using var rounded = lm.state_dict()[name].to(ScalarType.BFloat16);
                Same(t, rounded.to(ScalarType.Float32)).Should().BeTrue(name);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Python's json writes inf and nan as bare Infinity / NaN (fla's dt_limit default): a config.json holding them
    /// loads (Infinity as the number 1e999, read as infinity, NaN as the string "NaN"); the words inside strings are left alone.</summary>
    [Fact]
    public void PythonsInfinityAndNaNLiteralsInConfigJsonAreRead()
    {
        HuggingFaceCheckpoint.PythonJsonLiterals("""{"a": [0.0, Infinity], "b": -Infinity, "c": NaN, "d": "Infinity NaN \"NaN\"", "Infinityx": 1}""")
            .Should().Be("""{"a": [0.0, 1e999], "b": -1e999, "c": "NaN", "d": "Infinity NaN \"NaN\"", "Infinityx": 1}""");
        HuggingFaceCheckpoint.PythonJsonLiterals("""{"a": 1}""").Should().BeNull();
        string dir = TempDir();
        try
        {
            using (var lm = new Mamba2ForCausalLM(Small())) FlaCheckpoint.Save(lm, dir);
            string path = Path.Combine(dir, "config.json");
            var text = File.ReadAllText(path);
            text.Should().Contain("1e999");
            File.WriteAllText(path, text.Replace("1e999", "Infinity"));
            using var loaded = FlaCheckpoint.Load(dir);
            ((Mamba2Config)loaded.Config).DtLimit.Should().Be((0.0, double.PositiveInfinity));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>Mamba2ForCausalLM's initialization statistics after a global seed: apart from parallel tests (SeededDrawsCollection).</summary>
[Collection(nameof(SeededDrawsCollection))]
public class Mamba2ForCausalLMInitializationTests
{
    /// <summary>fla's _init_weights at hidden 64, 2 layers (d_inner 128): in_proj, the embedding and lm_head normal(0, 0.05);
    /// out_proj U(-b, b) with b = 1 / sqrt(128 * 2) (std b / sqrt 3), or normal(0, 0.05) without rescale_prenorm_residual;
    /// the convolution normal(0, 0.05), or U(-0.3, 0.3) with conv_init 0.3; zero biases; A = exp(A_log) in [1, 16], D = 1,
    /// softplus(dt_bias) in [dt_min, dt_max]; norm gains 1. Sample standard deviations of thousands of values: within 6 %.</summary>
    [Fact]
    public void InitializationIsFlas()
    {
        Mamba2Config Config(bool rescale, double? convInit) => new()
        {
            HiddenSize = 64, NumHiddenLayers = 2, VocabSize = 200, StateSize = 16, HeadDim = 16, InitializerRange = 0.05, UseBias = true,
            RescalePrenormResidual = rescale, ConvInit = convInit, ChunkSize = 8,
        };
        torch.manual_seed(7);
        using var lm = new Mamba2ForCausalLM(Config(rescale: true, convInit: null));
        var sd = lm.state_dict();
        double Std(string name) => sd[name].std().item<float>();
        foreach (var name in new[] { "backbone.embeddings.weight", "lm_head.weight", "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.1.mixer.conv1d.weight" })
            Std(name).Should().BeApproximately(0.05, 0.003, name);
        double b = 1 / Math.Sqrt(128 * 2);
        foreach (var name in new[] { "backbone.layers.0.mixer.out_proj.weight", "backbone.layers.1.mixer.out_proj.weight" })
        {
            TestUtil.Values(sd[name]).Should().OnlyContain(v => Math.Abs(v) <= b, name);
            Std(name).Should().BeApproximately(b / Math.Sqrt(3), 0.06 * b / Math.Sqrt(3), name);
        }
        foreach (var name in sd.Keys.Where(k => k.EndsWith(".bias") && !k.EndsWith("dt_bias")))
            TestUtil.Values(sd[name]).Should().OnlyContain(v => v == 0, name);
        foreach (var name in sd.Keys.Where(k => k.EndsWith("norm.weight") || k.EndsWith("norm_f.weight") || k.EndsWith(".D")))
            TestUtil.Values(sd[name]).Should().OnlyContain(v => v == 1, name);
        TestUtil.Values(sd["backbone.layers.0.mixer.A_log"].exp()).Should().OnlyContain(v => v >= 1 && v <= 16 * (1 + 1e-6));
        TestUtil.Values(nn.functional.softplus(sd["backbone.layers.1.mixer.dt_bias"])).Should().OnlyContain(v => v >= 0.001 * (1 - 1e-5) && v <= 0.1 * (1 + 1e-5));

        torch.manual_seed(8);
        using var plain = new Mamba2ForCausalLM(Config(rescale: false, convInit: 0.3));
        var p = plain.state_dict();
        ((double)p["backbone.layers.0.mixer.out_proj.weight"].std().item<float>()).Should().BeApproximately(0.05, 0.003);
        TestUtil.Values(p["backbone.layers.0.mixer.conv1d.weight"]).Should().OnlyContain(v => Math.Abs(v) <= 0.3);
        ((double)p["backbone.layers.0.mixer.conv1d.weight"].std().item<float>()).Should().BeApproximately(0.3 / Math.Sqrt(3), 0.06 * 0.3 / Math.Sqrt(3));
    }
}
