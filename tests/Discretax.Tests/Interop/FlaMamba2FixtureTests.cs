using System.Text.Json;
using System.Text.Json.Nodes;
using Discretax.Interop;
using Discretax.Models;
using Discretax.Streaming;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// Parity with fla's own <c>Mamba2ForCausalLM</c>: fixtures written by tools/interop/make_fla_mamba2_fixtures.py, which
/// runs fla's Mamba2 model files (its pure-PyTorch <c>torch_forward</c>, and its decode path; only the Triton norms are
/// swapped, see the script's header). <c>mamba2</c>: float32, one group, fla's prefill logits. <c>mamba2_groups</c>:
/// two groups and the other options, a bfloat16 checkpoint as fla stores it (A_log and the RMSNorm weights in float32),
/// logits of fla's decode path (mamba_ssm's group mapping). Tolerance: relative RMS below 1e-5 in float32, the
/// round-off of two implementations of the same math over 12 steps and 2 layers.
/// </summary>
public class FlaMamba2FixtureTests
{
    private const double Tolerance = 1e-5;

    private static string Fla(params string[] parts) => Fixture(["fla", .. parts]);

    /// <summary>Both directories load by model_type into a float32 Mamba2ForCausalLM in eval mode, strictly, and give
    /// fla's logits and next-token loss (the mamba2_groups checkpoint mixes bfloat16 and float32 tensors; its values
    /// load exactly into the float32 model, which fla's float32 reference computed with).</summary>
    [Theory]
    [InlineData("mamba2")]
    [InlineData("mamba2_groups")]
    public void FlasMamba2LoadsByModelTypeAndMatchesItsLogitsAndLoss(string name)
    {
        using var lm = FlaCheckpoint.Load(Fla(name));
        lm.Should().BeOfType<Mamba2ForCausalLM>();
        lm.training.Should().BeFalse();
        lm.DecoderName.Should().Be("backbone");
        using (var w = lm.embeddings.weight!) w.dtype.Should().Be(ScalarType.Float32);
        using var io = SafeTensors.Read(Fla(name, "io.safetensors"));
        using var logits = lm.forward(io["input_ids"]);
        logits.shape.Should().Equal(2, 12, 64);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Tolerance);
        using var loss = lm.Loss(io["input_ids"]);
        // A mean of 22 log-probabilities: float32 round-off, relative 1e-5.
        loss.item<float>().Should().BeApproximately(io["loss"].item<float>(), 1e-5f * io["loss"].item<float>());
    }

    /// <summary>The config.json fields fla wrote reach the model: the second fixture's options (two groups, D per channel,
    /// norm before gate, biases in the projections and none in the convolution, dt clamped to (0, 0.5), tied embeddings,
    /// conv_init, residual_in_fp32 false) and the first's defaults (dt_limit [0.0, Infinity] read as (0, infinity)).</summary>
    [Fact]
    public void FlasConfigFieldsReachTheModel()
    {
        using var lm = FlaCheckpoint.Load(Fla("mamba2_groups"));
        var c = (Mamba2Config)lm.Config;
        (c.HiddenSize, c.NumHiddenLayers, c.VocabSize, c.StateSize, c.HeadDim, c.NumHeads, c.NGroups, c.ChunkSize).Should().Be((32L, 2, 64L, 16, 16, 4, 2, 8));
        (c.DHasHdim, c.NormBeforeGate, c.UseBias, c.UseConvBias, c.ResidualInFp32, c.TieWordEmbeddings).Should().Be((true, true, true, false, false, true));
        (c.DtLimit, c.ConvInit, c.RmsNorm, c.HiddenAct).Should().Be(((0.0, 0.5), (double?)0.5, true, "silu"));
        c.Extra.Keys.Should().BeEquivalentTo("fuse_cross_entropy", "fuse_linear_cross_entropy", "fuse_norm", "use_cache", "use_l2warp");
        lm.TiedWeights.Should().BeTrue();
        var mixer = ((Mamba2ForCausalLM)lm).Mixers.First();
        (mixer.NumGroups, mixer.NumHeads, mixer.ChunkSize, mixer.norm!.NormBeforeGate, mixer.conv1d.bias is null).Should().Be((2, 4, 8, true, true));
        mixer.D.shape.Should().Equal(64);
        ((Mamba2ForCausalLM)lm).Decoder.layers.Cast<Discretax.Blocks.Mamba2Block>().Should().OnlyContain(b => !b.ResidualInFp32);

        using var first = FlaCheckpoint.Load(Fla("mamba2"));
        var d = (Mamba2Config)first.Config;
        d.DtLimit.Should().Be((0.0, double.PositiveInfinity));
        (d.AInitRange, d.NormEps, d.PadTokenId, d.ResidualInFp32, d.RescalePrenormResidual).Should().Be(((1.0, 16.0), 1e-5, (long?)0, true, true));
    }

    /// <summary>fla's torch_forward repeats B and C over the heads (head h reads group h mod G), its decode path and
    /// mamba_ssm expand them (h / (NH / G)); the library follows mamba_ssm: with two groups its logits are fla's decode
    /// logits, and far (more than 1 % relative RMS) from fla's prefill logits of the same weights.</summary>
    [Fact]
    public void TwoGroupsFollowMambaSsmsMappingNotFlasTorchPrefill()
    {
        using var lm = FlaCheckpoint.Load(Fla("mamba2_groups"));
        using var io = SafeTensors.Read(Fla("mamba2_groups", "io.safetensors"));
        using var logits = lm.forward(io["input_ids"]);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Tolerance);
        TestUtil.RelRms(logits, io["logits_prefill"]).Should().BeGreaterThan(0.01);
    }

    /// <summary>The model built in code from the config takes fla's state_dict under its own names with no map: the same
    /// key set, exactly (fla's layer registers conv1d before in_proj, the library after: the order differs, not the
    /// names); with SSD chunks of 5 and 64 (fla's fixture ran chunks of 8) the logits are fla's.</summary>
    [Theory]
    [InlineData(5)]
    [InlineData(64)]
    public void BuiltInCodeItTakesFlasKeysAndAnyChunkSize(int chunkSize)
    {
        using var hf = HuggingFaceCheckpoint.Load(Fla("mamba2"));
        var config = Mamba2Config.FromJson(hf.Config!.Value);
        using var lm = new Mamba2ForCausalLM(config, chunkSize);
        lm.state_dict().Keys.Should().BeEquivalentTo(hf.Tensors.Keys);
        Checkpoint.Load(lm, hf.Tensors);
        lm.eval();
        using var io = SafeTensors.Read(Fla("mamba2", "io.safetensors"));
        using var logits = lm.forward(io["input_ids"]);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(Tolerance);
    }

    /// <summary>Streaming: the backbone fed one token at a time (the literal recurrence, mamba's step) gives fla's logits,
    /// and greedy generation continues with the argmax of a full forward at every step.</summary>
    [Theory]
    [InlineData("mamba2")]
    [InlineData("mamba2_groups")]
    public void StreamingOneTokenAtATimeAndGreedyGenerationFollowTheFullForward(string name)
    {
        using var lm = FlaCheckpoint.Load(Fla(name));
        using var io = SafeTensors.Read(Fla(name, "io.safetensors"));
        using (var scope = NewDisposeScope())
        {
            var ids = io["input_ids"];
            var steps = new List<Tensor>();
            StreamingState? state = null;
            for (int t = 0; t < ids.shape[1]; t++)
            {
                var (h, next) = lm.Decoder.Stream(lm.embeddings.forward(ids.narrow(1, t, 1)), state);
                state?.Dispose();
                state = next;
                steps.Add(nn.functional.linear(h, lm.OutputWeight));
            }
            state!.Dispose();
            TestUtil.RelRms(cat(steps, 1), io["logits"]).Should().BeLessThan(Tolerance);
        }

        var prompt = Longs(io["input_ids"][1]).Take(5).ToArray();
        var generated = lm.Generate(new[] { prompt }, maxNewTokens: 6, temperature: 0)[0];
        generated.Should().HaveCount(6);
        var sequence = prompt.ToList();
        foreach (var token in generated)
        {
            using var scope = NewDisposeScope();
            var full = lm.forward(tensor(sequence.ToArray(), new long[] { 1, sequence.Count }, ScalarType.Int64));
            token.Should().Be(full[0, -1].argmax().item<long>());
            sequence.Add(token);
        }
    }

    /// <summary>Export then import: an imported fla directory saved again keeps every config.json field fla wrote with its
    /// value (numbers by value, pairs element by element, dt_limit's Infinity written as 1e999, which Python reads as
    /// inf), only torch_dtype follows the model; the weight file has exactly the model's keys (no lm_head.weight when tied)
    /// and loads back to bit-identical logits.</summary>
    [Theory]
    [InlineData("mamba2")]
    [InlineData("mamba2_groups")]
    public void AnImportedDirectorySavedAgainKeepsItsConfigKeysAndLogits(string name)
    {
        string dir = TempDir();
        try
        {
            using var lm = FlaCheckpoint.Load(Fla(name));
            FlaCheckpoint.Save(lm, dir);
            using (var original = SafeTensors.Read(Fla(name, "model.safetensors")))
            using (var saved = SafeTensors.Read(Path.Combine(dir, "model.safetensors")))
                saved.Keys.Should().BeEquivalentTo(original.Keys);

            var text = File.ReadAllText(Path.Combine(dir, "config.json"));
            text.Should().NotContain("Infinity", "the saved config.json is standard JSON");
            var savedConfig = JsonNode.Parse(text)!.AsObject();
            using var originalDoc = HuggingFaceCheckpoint.Load(Fla(name));
            foreach (var p in originalDoc.Config!.Value.EnumerateObject())
            {
                if (p.Name == "torch_dtype") { savedConfig[p.Name]!.GetValue<string>().Should().Be("float32"); continue; }
                savedConfig.ContainsKey(p.Name).Should().BeTrue(p.Name);
                Numbers(p.Value).Should().Equal(Numbers(JsonDocument.Parse(savedConfig[p.Name]?.ToJsonString() ?? "null").RootElement), p.Name);
            }
            savedConfig.Select(p => p.Key).Should().BeSubsetOf(originalDoc.Config!.Value.EnumerateObject().Select(p => p.Name));

            using var back = FlaCheckpoint.Load(dir);
            back.Config.Should().BeEquivalentTo(lm.Config, o => o.Excluding(c => c.Extra));
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

    /// <summary>The bfloat16 checkpoint kept in its dtype (CheckpointDType.Checkpoint): every tensor bfloat16 (fla's float32
    /// A_log and norm weights converted), bfloat16 logits within 2 % relative RMS of fla's float32 logits (measured 0.85 %:
    /// bfloat16's 8 bits of mantissa over two layers; the recurrent state and norm statistics stay float32).</summary>
    [Fact]
    public void TheBFloat16CheckpointLoadsInBFloat16()
    {
        using var lm = FlaCheckpoint.Load(Fla("mamba2_groups"), CheckpointDType.Checkpoint);
        lm.state_dict().Values.Should().OnlyContain(t => t.dtype == ScalarType.BFloat16);
        using var io = SafeTensors.Read(Fla("mamba2_groups", "io.safetensors"));
        using var logits = lm.forward(io["input_ids"]);
        logits.dtype.Should().Be(ScalarType.BFloat16);
        TestUtil.RelRms(logits, io["logits"]).Should().BeLessThan(0.02);
    }

    /// <summary>A JSON value as the list of its numbers, strings and literals in document order (a number by its double
    /// value, so 1 and 1.0, and Infinity and 1e999, compare equal).</summary>
    private static List<string> Numbers(JsonElement e)
    {
        var list = new List<string>();
        void Walk(JsonElement v)
        {
            switch (v.ValueKind)
            {
                case JsonValueKind.Array: foreach (var x in v.EnumerateArray()) Walk(x); break;
                case JsonValueKind.Object: foreach (var p in v.EnumerateObject()) { list.Add(p.Name); Walk(p.Value); } break;
                case JsonValueKind.Number:
                    list.Add(double.Parse(v.GetRawText(), System.Globalization.CultureInfo.InvariantCulture).ToString("R", System.Globalization.CultureInfo.InvariantCulture));
                    break;
                default: list.Add(v.GetRawText()); break;
            }
        }
        Walk(e);
        return list;
    }
}
