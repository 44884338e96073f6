using Discretax.Interop;
using Discretax.Models;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// Parity with flash-linear-attention's own code: fixtures written by tools/interop/make_fla_fixtures.py, which runs
/// fla's layer and model files (fla's naive torch recurrences in place of its Triton kernels; the script's header lists
/// every swap) on fixed inputs. Each test loads the weights strictly into the .NET module and compares in float32:
/// relative RMS error below 1e-5 (float32 round-off of two implementations of the same math over 20 steps).
/// </summary>
public class FlaFixtureTests
{
    private const double Tolerance = 1e-5;

    private static string Fla(params string[] parts) => Fixture(["fla", .. parts]);

    public static TheoryData<string> Layers => new() { "layer_default", "layer_gated", "layer_elu_sum" };

    /// <summary>The layer of each fixture, as its layer.json builds it in fla (the options written down again).</summary>
    private static FlaDeltaNetSequenceMixer Layer(string name, int chunkSize) => name switch
    {
        "layer_default" => new FlaDeltaNetSequenceMixer(32, numHeads: 4, chunkSize: chunkSize),
        "layer_gated" => new FlaDeltaNetSequenceMixer(32, numHeads: 2, expandK: 0.5, expandV: 1.5, useGate: true,
            allowNegativeEigenvalues: true, useShortConv: false, normEps: 1e-6, chunkSize: chunkSize),
        "layer_elu_sum" => new FlaDeltaNetSequenceMixer(16, numHeads: 2, qkActivation: FlaQKActivation.Elu, qkNorm: FlaQKNorm.Sum,
            useBeta: false, convBias: true, chunkSize: chunkSize),
        _ => throw new ArgumentException(name),
    };

    /// <summary>fla's DeltaNet layer: its state_dict loads strictly (the same names and shapes) and the output matches,
    /// with the chunked kernel in one chunk (64) and in chunks of 3 and 7 across the 20 steps.</summary>
    [Theory]
    [MemberData(nameof(Layers))]
    public void FlasDeltaNetLayerLoadsStrictlyAndMatchesItsOutput(string name)
    {
        using var weights = SafeTensors.Read(Fla(name, "weights.safetensors"));
        using var io = SafeTensors.Read(Fla(name, "io.safetensors"));
        foreach (int chunk in new[] { 64, 7, 3 })
        {
            using var layer = Layer(name, chunk);
            var result = Checkpoint.Load(layer, weights);
            result.Loaded.Should().HaveCount(weights.Count);
            layer.eval();
            using var y = layer.forward(io["input"]);
            y.dtype.Should().Be(ScalarType.Float32);
            TestUtil.RelRms(y, io["output"]).Should().BeLessThan(Tolerance, $"{name}, chunk size {chunk}");
        }
    }

    /// <summary>The layer streamed step by step (the decoding path, the literal recurrence) gives fla's output too.</summary>
    [Fact]
    public void FlasDeltaNetLayerStreamedOneStepAtATimeMatchesItsOutput()
    {
        using var weights = SafeTensors.Read(Fla("layer_default", "weights.safetensors"));
        using var io = SafeTensors.Read(Fla("layer_default", "io.safetensors"));
        using var layer = Layer("layer_default", 64);
        Checkpoint.Load(layer, weights);
        layer.eval();
        using var scope = NewDisposeScope();
        var x = io["input"];
        var outputs = new List<Tensor>();
        StreamingState? state = null;
        for (int t = 0; t < x.shape[1]; t++)
        {
            var (y, next) = layer.Stream(x.narrow(1, t, 1), state);
            state?.Dispose();
            state = next;
            outputs.Add(y);
        }
        state!.Dispose();
        TestUtil.RelRms(cat(outputs, 1), io["output"]).Should().BeLessThan(Tolerance);
    }

    /// <summary>fla's DeltaNetForCausalLM and GatedDeltaNetForCausalLM (2 layers, hidden 32, vocabulary 64) load from
    /// their Hugging Face directories by model_type, strictly, and give fla's logits and next-token loss. The Gated
    /// DeltaNet checkpoint is bfloat16 (tied embeddings, no lm_head.weight): it loads exactly into the float32 model,
    /// whose logits are compared with fla's float32 logits of those same bfloat16 values.</summary>
    [Theory]
    [InlineData("delta_net", typeof(DeltaNetForCausalLM))]
    [InlineData("gated_deltanet", typeof(GatedDeltaNetForCausalLM))]
    public void FlasCausalLMsLoadByModelTypeAndMatchTheirLogitsAndLoss(string name, Type type)
    {
        using var lm = FlaCheckpoint.Load(Fla(name));
        lm.Should().BeOfType(type);
        lm.training.Should().BeFalse();
        using (var w = lm.embeddings.weight!) w.dtype.Should().Be(ScalarType.Float32);
        using var io = SafeTensors.Read(Fla(name, "io.safetensors"));
        using var logits = lm.forward(io["input_ids"]);
        logits.shape.Should().Equal(2, 12, 64);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Tolerance);
        using var loss = lm.Loss(io["input_ids"]);
        // The loss is a mean of 22 log-probabilities: float32 round-off, relative 1e-5.
        loss.item<float>().Should().BeApproximately(io["loss"].item<float>(), 1e-5f * io["loss"].item<float>());
    }

    /// <summary>The causal LM built in code from the config, with a small chunk size (chunks of 5 across 12 steps), takes
    /// the checkpoint under its own state_dict names with no map and gives fla's logits; generation streams the same model.</summary>
    [Fact]
    public void DeltaNetForCausalLMBuiltInCodeTakesFlasKeysAndGeneratesFromTheStream()
    {
        using var hf = HuggingFaceCheckpoint.Load(Fla("delta_net"));
        var config = DeltaNetConfig.FromJson(hf.Config!.Value);
        using var lm = new DeltaNetForCausalLM(config, chunkSize: 5);
        lm.state_dict().Keys.Should().BeEquivalentTo(hf.Tensors.Keys);
        Checkpoint.Load(lm, hf.Tensors);
        lm.eval();
        using var io = SafeTensors.Read(Fla("delta_net", "io.safetensors"));
        using var logits = lm.forward(io["input_ids"]);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Tolerance);

        // Greedy generation from the first 6 ids continues with the argmax of a full forward at every step.
        var prompt = InteropTestUtil.Longs(io["input_ids"][0]).Take(6).ToArray();
        var generated = lm.Generate(new[] { prompt }, maxNewTokens: 5, temperature: 0)[0];
        var ids = prompt.ToList();
        foreach (var token in generated)
        {
            using var scope = NewDisposeScope();
            var full = lm.forward(tensor(ids.ToArray(), new long[] { 1, ids.Count }, ScalarType.Int64));
            token.Should().Be(full[0, -1].argmax().item<long>());
            ids.Add(token);
        }
    }

    /// <summary>An imported fla directory saved again keeps every config.json field fla wrote (the kernel switches and
    /// Hugging Face fields too) with its value; only torch_dtype follows the model (float32 here), and the null 'attn' and
    /// 'attnres_block_size' (fla's defaults) are left out. The re-saved directory gives the same logits.</summary>
    [Theory]
    [InlineData("delta_net")]
    [InlineData("gated_deltanet")]
    public void AnImportedFlaDirectorySavedAgainKeepsItsConfigAndLogits(string name)
    {
        string dir = TempDir();
        try
        {
            using var lm = FlaCheckpoint.Load(Fla(name));
            FlaCheckpoint.Save(lm, dir);
            var original = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Fla(name, "config.json")))!.AsObject();
            var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            foreach (var (key, value) in original)
            {
                if (key is "attn" or "attnres_block_size") { saved.ContainsKey(key).Should().BeFalse(key); continue; }
                if (key == "torch_dtype") { saved[key]!.GetValue<string>().Should().Be("float32"); continue; }
                if (value is System.Text.Json.Nodes.JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number)
                    saved[key]!.GetValue<double>().Should().Be(v.GetValue<double>(), key);   // 1 and 1.0 alike
                else
                    saved[key]?.ToJsonString().Should().Be(value?.ToJsonString(), key);
            }
            saved.Select(p => p.Key).Should().BeSubsetOf(original.Select(p => p.Key));
            using var back = FlaCheckpoint.Load(dir);
            using var io = SafeTensors.Read(Fla(name, "io.safetensors"));
            using var a = back.forward(io["input_ids"]);
            using var b = lm.forward(io["input_ids"]);
            Same(a, b).Should().BeTrue();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
