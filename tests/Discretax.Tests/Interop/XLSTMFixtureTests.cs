using System.Text.Json;
using Discretax.Interop;
using Discretax.Models;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// Parity with NX-AI's own PyTorch code: the fixtures of tools/interop/make_xlstm_fixtures.py (the xlstm package's
/// mLSTMLayer and xLSTMLarge run by PyTorch 1.13 with mlstm_kernels' native torch kernels) loaded strictly and matched
/// in float32 to a relative RMS below 1e-5 (tolerance of every parity check here: float32 noise of two
/// implementations of one math, measured 1e-7 .. 1e-6); export and re-import give identical outputs.
/// </summary>
public class XLSTMFixtureTests
{
    private const double Parity = 1e-5;

    private static string Dir(string name) => Fixture("xlstm", name);

    private static JsonElement Json(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return doc.RootElement.Clone();
    }

    private static MLSTMSequenceMixer ReferenceLayer(out StateDict io)
    {
        var layer = XLSTMCheckpoint.CreateTorchMLSTMLayer(Json(Path.Combine(Dir("mlstm_layer"), "config.json")), chunkSize: 4);
        using (var sd = Checkpoint.Read(Path.Combine(Dir("mlstm_layer"), "state_dict.pt")))
            XLSTMCheckpoint.LoadTorchMLSTMLayer(layer, sd);
        layer.eval();
        io = SafeTensors.Read(Path.Combine(Dir("mlstm_layer"), "io.safetensors"));
        return layer;
    }

    [Fact]
    public void TorchMLSTMLayerMatchesTheReferenceOutputForwardAndStreamed()
    {
        using var scope = NewDisposeScope();
        using var layer = ReferenceLayer(out var io);
        using var _ = io;
        layer.InnerDim.Should().Be(64);
        layer.NumHeads.Should().Be(4);
        var x = io["x"];
        var y = io["y"];
        TestUtil.RelRms(layer.forward(x), y).Should().BeLessThan(Parity);

        // In pieces with the carried state (1, 4 and 6 steps): the same outputs.
        var (y1, s1) = layer.Stream(x.narrow(1, 0, 1));
        var (y2, s2) = layer.Stream(x.narrow(1, 1, 4), s1);
        var (y3, _) = layer.Stream(x.narrow(1, 5, 6), s2);
        TestUtil.RelRms(cat(new[] { y1, y2, y3 }, 1), y).Should().BeLessThan(Parity);
    }

    [Fact]
    public void TheFixtureTellsTheReferenceSemanticsApart()
    {
        // The fixture is sensitive to what makes the layer the reference's: outnorm's eps 1e-5 (xlstm-jax: 1e-6) and the
        // stored weight - 1. Each departure misses the reference by far more than the parity tolerance.
        using var scope = NewDisposeScope();
        using var reference = ReferenceLayer(out var io);
        using var _ = io;
        using var jaxEps = new MLSTMSequenceMixer(16, bias: true, chunkSize: 4, normEps: 1e-6,
            stabilizerStart: MLSTMStabilizerStart.NegativeInfinity);
        jaxEps.load_state_dict(reference.state_dict());
        jaxEps.eval();
        TestUtil.RelRms(jaxEps.forward(io["x"]), io["y"]).Should().BeGreaterThan(100 * Parity);

        using var noOffset = XLSTMCheckpoint.CreateTorchMLSTMLayer(16, bias: true, chunkSize: 4);
        using (var sd = Checkpoint.Read(Path.Combine(Dir("mlstm_layer"), "state_dict.pt")))
            Checkpoint.Load(noOffset, sd, XLSTMCheckpoint.TorchMLSTMLayerName);   // the stored weight - 1 taken as the gain
        noOffset.eval();
        TestUtil.RelRms(noOffset.forward(io["x"]), io["y"]).Should().BeGreaterThan(100 * Parity);
    }

    [Fact]
    public void TorchMLSTMLayerExportHasTheReferenceNamesAndReimportsToIdenticalOutputs()
    {
        using var scope = NewDisposeScope();
        using var layer = ReferenceLayer(out var io);
        using var _ = io;
        using var reference = Checkpoint.Read(Path.Combine(Dir("mlstm_layer"), "state_dict.pt"));
        string dir = TempDir();
        try
        {
            string file = Path.Combine(dir, "layer.safetensors");
            XLSTMCheckpoint.SaveTorchMLSTMLayer(layer, file);
            using var saved = SafeTensors.Read(file);
            saved.Names.Should().BeEquivalentTo(reference.Names);
            saved.Metadata["format"].Should().Be("pt");
            foreach (var name in reference.Names)
            {
                saved[name].shape.Should().Equal(reference[name].shape, name);
                // Bit for bit, except the gain: fl(fl(1 + r) - 1) is r to within the rounding of 1 + r (2^-24 relative to 1).
                double tolerance = name == "mlstm_cell.outnorm.weight" ? 1.2e-7 : 0.0;
                TestUtil.MaxAbsDiff(saved[name], reference[name]).Should().BeLessThanOrEqualTo(tolerance, name);
            }

            using var again = XLSTMCheckpoint.CreateTorchMLSTMLayer(16, bias: true, chunkSize: 4);
            XLSTMCheckpoint.LoadTorchMLSTMLayer(again, saved);
            again.eval();
            // Every gain of the fixture is fl(1 + r) >= 0.5, so 1 + (gain - 1) gives it back exactly (Sterbenz).
            Same(again.outnorm.weight, layer.outnorm.weight).Should().BeTrue();
            Same(again.forward(io["x"]), layer.forward(io["x"])).Should().BeTrue();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void TorchMLSTMLayerLoadsUnderAPrefixAndRefusesMisfitsAndOtherConfigurations()
    {
        using var scope = NewDisposeScope();
        using var sd = Checkpoint.Read(Path.Combine(Dir("mlstm_layer"), "state_dict.pt"));
        var prefixed = sd.ToDictionary(kv => "xlstm_block_stack.blocks.0.xlstm." + kv.Key, kv => kv.Value);
        prefixed["xlstm_block_stack.post_blocks_norm.weight"] = sd["learnable_skip"];   // outside the prefix: ignored
        using var layer = XLSTMCheckpoint.CreateTorchMLSTMLayer(16, bias: true, chunkSize: 4);
        var result = XLSTMCheckpoint.LoadTorchMLSTMLayer(layer, prefixed, "xlstm_block_stack.blocks.0.xlstm.");
        result.Loaded.Should().HaveCount(sd.Count);

        // A layer without biases: every bias is unexpected, listed by name in one exception.
        using var noBias = XLSTMCheckpoint.CreateTorchMLSTMLayer(16, chunkSize: 4);
        var act = () => XLSTMCheckpoint.LoadTorchMLSTMLayer(noBias, sd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "tensors")
            .WithMessage("*5 unexpected*'proj_up.bias'*'q_proj.bias'*'proj_down.bias'*");

        // Another embedding size: shapes listed, expected and found.
        using var wide = XLSTMCheckpoint.CreateTorchMLSTMLayer(32, bias: true, chunkSize: 4);
        act = () => XLSTMCheckpoint.LoadTorchMLSTMLayer(wide, sd);
        act.Should().Throw<ArgumentException>().WithMessage("*'proj_up.weight' expects [128, 32], the checkpoint has [128, 16]*");

        // A layer that computes otherwise (xlstm-jax's defaults) is refused before anything is read.
        using var jax = new MLSTMSequenceMixer(16, bias: true);
        act = () => XLSTMCheckpoint.LoadTorchMLSTMLayer(jax, sd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "layer")
            .WithMessage("*normEps 1E-06 (expected 1E-05)*stabilizerStart Zero (expected NegativeInfinity)*");
    }

    private static (CausalLM Lm, StateDict Io) Large(string name, CheckpointDType dtype = CheckpointDType.Module) =>
        (XLSTMCheckpoint.LoadLarge(Dir(name), dtype), SafeTensors.Read(Path.Combine(Dir(name), "io.safetensors")));

    [Fact]
    public void XLSTMLargeMatchesTheReferenceLogitsAndGreedyGeneration()
    {
        using var scope = NewDisposeScope();
        var (lm, io) = Large("xlstm_large");
        using var _ = lm;
        using var __ = io;
        var stack = (XLSTMLarge)lm.model;
        stack.Config.FfnDim.Should().Be(96);                     // int(((32 * 2.6667 + 15) // 16) * 16)
        stack.Config.ChunkSize.Should().Be(16);
        stack.Config.Extra["mode"].GetString().Should().Be("inference");
        lm.LogitSoftCap.Should().Be(30.0);
        lm.training.Should().BeFalse();
        var logits = lm.forward(io["input_ids"]);
        logits.dtype.Should().Be(ScalarType.Float32);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Parity);

        // The reference's generate(prompt, 6, "greedy"): prefill, then one step at a time with the carried states.
        var prompt = io["prompt"];
        var prompts = Enumerable.Range(0, (int)prompt.shape[0]).Select(b => Longs(prompt[b])).ToArray();
        var generated = lm.Generate(prompts, maxNewTokens: 6, temperature: 0);
        var expected = io["generated"];
        for (int b = 0; b < prompts.Length; b++) generated[b].Should().Equal(Longs(expected[b]));
    }

    [Fact]
    public void XLSTMLargeStreamsThePromptInPiecesToTheSameLogits()
    {
        using var scope = NewDisposeScope();
        var (lm, io) = Large("xlstm_large");
        using var _ = lm;
        using var __ = io;
        var ids = io["input_ids"];
        var h0 = lm.embeddings.forward(ids.narrow(1, 0, 13));
        var h1 = lm.embeddings.forward(ids.narrow(1, 13, 8));
        var (a, state) = lm.model.Stream(h0);
        var (b, _) = lm.model.Stream(h1, state);
        var logits = 30.0 * (lm.lm_head!.forward(cat(new[] { a, b }, 1)) / 30.0).tanh();
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Parity);
        ((SequenceModelState)state).Blocks[0].Should().BeOfType<BlockState>().Which.Mixer.Should().BeOfType<MLSTMState>();
    }

    [Fact]
    public void FusedBFloat16CheckpointLoadsIntoFloat32OrStaysBFloat16()
    {
        using var scope = NewDisposeScope();
        var (lm, io) = Large("xlstm_large_fused");
        using var _ = lm;
        using var __ = io;
        var layer = (XLSTMLargeSequenceMixer)((Discretax.Blocks.XLSTMLargeBlock)((XLSTMLarge)lm.model).blocks[0]).mlstm_layer;
        layer.WeightMode.Should().Be(XLSTMWeightMode.Fused);
        layer.qkv_opreact.Should().NotBeNull();
        layer.q.Should().BeNull();
        lm.embeddings.weight!.dtype.Should().Be(ScalarType.Float32);
        // The reference computed in float32 with the bfloat16 weights, which load exactly.
        TestUtil.RelRms(lm.forward(io["input_ids"]), io["logits"]).Should().BeLessThan(Parity);

        var (kept, _) = Large("xlstm_large_fused", CheckpointDType.Checkpoint);
        using var ___ = kept;
        kept.embeddings.weight!.dtype.Should().Be(ScalarType.BFloat16);
        kept.lm_head!.weight!.dtype.Should().Be(ScalarType.BFloat16);
        var bf = kept.forward(io["input_ids"]);
        bf.dtype.Should().Be(ScalarType.BFloat16);
        // bfloat16 arithmetic (8-bit mantissa) through one block and a capped head: a few percent of the logits' RMS.
        TestUtil.RelRms(bf, io["logits"]).Should().BeLessThan(0.1);
    }

    [Fact]
    public void TransformersLayoutAndConfigNamesLoadToTheSameLogits()
    {
        using var scope = NewDisposeScope();
        using var io = SafeTensors.Read(Path.Combine(Dir("xlstm_large"), "io.safetensors"));
        string dir = TempDir();
        try
        {
            // The hub's layout: backbone.embeddings.weight, and transformers' config names (hidden_size, num_hidden_layers).
            using (var sd = SafeTensors.Read(Path.Combine(Dir("xlstm_large"), "model.safetensors")))
                SafeTensors.Write(Path.Combine(dir, "model.safetensors"),
                    sd.Select(kv => new KeyValuePair<string, Tensor>(kv.Key == "embedding.weight" ? "backbone.embeddings.weight" : kv.Key, kv.Value)));
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Dir("xlstm_large"), "config.json")))!.AsObject();
            config.Remove("embedding_dim");
            config.Remove("num_blocks");
            config["hidden_size"] = 32;
            config["num_hidden_layers"] = 2;
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            using var lm = XLSTMCheckpoint.LoadLarge(dir);
            TestUtil.RelRms(lm.forward(io["input_ids"]), io["logits"]).Should().BeLessThan(Parity);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(XLSTMLargeLayout.XLSTM, "embedding.weight")]
    [InlineData(XLSTMLargeLayout.Transformers, "backbone.embeddings.weight")]
    [InlineData(XLSTMLargeLayout.TransformersQueryKeyValue, "backbone.embeddings.weight")]
    public void XLSTMLargeExportReimportsToIdenticalLogits(XLSTMLargeLayout layout, string embeddingName)
    {
        string Renamed(string n)
        {
            if (n == "embedding.weight") return embeddingName;
            if (layout != XLSTMLargeLayout.TransformersQueryKeyValue) return n;
            return n.Replace(".mlstm_layer.q.", ".mlstm_layer.query.").Replace(".mlstm_layer.k.", ".mlstm_layer.key.")
                .Replace(".mlstm_layer.v.", ".mlstm_layer.value.");
        }
        using var scope = NewDisposeScope();
        var (lm, io) = Large("xlstm_large");
        using var _ = lm;
        using var __ = io;
        using var reference = SafeTensors.Read(Path.Combine(Dir("xlstm_large"), "model.safetensors"));
        string dir = TempDir();
        try
        {
            XLSTMCheckpoint.SaveLarge(lm, dir, layout);
            using (var saved = SafeTensors.Read(Path.Combine(dir, "model.safetensors")))
            {
                // The reference's names (the embedding's per layout), every tensor bit for bit.
                saved.Names.Should().BeEquivalentTo(reference.Names.Select(Renamed));
                foreach (var name in reference.Names)
                    Same(saved[Renamed(name)], reference[name]).Should().BeTrue(name);
                XLSTMCheckpoint.DetectLayout(saved.Names).Should().Be(layout);
            }
            var written = Json(Path.Combine(dir, "config.json"));
            written.GetProperty("hidden_size").GetInt64().Should().Be(32);
            written.GetProperty("embedding_dim").GetInt64().Should().Be(32);
            written.GetProperty("chunkwise_kernel").GetString().Should().Be("chunkwise--native_autograd");   // kept from the file
            written.GetProperty("model_type").GetString().Should().Be("xlstm");

            using var again = XLSTMCheckpoint.LoadLarge(dir);
            Same(again.forward(io["input_ids"]), lm.forward(io["input_ids"])).Should().BeTrue();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void XLSTMLargeLoadIsStrictAndListsEveryProblem()
    {
        using var scope = NewDisposeScope();
        using var sd = SafeTensors.Read(Path.Combine(Dir("xlstm_large"), "model.safetensors"));
        var config = XLSTMLargeConfig.FromJson(Json(Path.Combine(Dir("xlstm_large"), "config.json")));
        using var lm = XLSTMLarge.CreateCausalLM(config);
        var partial = sd.Where(kv => kv.Key != "backbone.blocks.1.ffn.proj_up.weight").ToDictionary(kv => kv.Key, kv => kv.Value);
        partial["backbone.blocks.0.extra"] = sd["lm_head.weight"];
        var act = () => XLSTMCheckpoint.LoadLarge(lm, partial);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "tensors")
            .WithMessage("*1 missing, 1 unexpected*'model.blocks.1.ffn.proj_up.weight' (checkpoint name 'backbone.blocks.1.ffn.proj_up.weight') [96, 32]*'backbone.blocks.0.extra'*");

        // A fused model does not take single weights: every fused tensor missing, every single one unexpected.
        using var fused = XLSTMLarge.CreateCausalLM(config with { WeightMode = XLSTMWeightMode.Fused });
        act = () => XLSTMCheckpoint.LoadLarge(fused, sd);
        act.Should().Throw<ArgumentException>().WithMessage("*'backbone.blocks.0.mlstm_layer.qkv_opreact.weight'*'backbone.blocks.0.mlstm_layer.q.weight'*");
    }
}
