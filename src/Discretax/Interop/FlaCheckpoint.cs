using System.Text.Json;
using System.Text.Json.Nodes;
using Discretax.Models;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// flash-linear-attention language models in and out of Hugging Face-style directories: <see cref="Load"/> reads
/// <c>config.json</c> and the weights (<c>model.safetensors</c>, sharded safetensors, or <c>pytorch_model.bin</c>) into
/// the <see cref="FlaForCausalLM"/> of the config's <c>model_type</c> (<c>delta_net</c>: <see cref="DeltaNetForCausalLM"/>,
/// <c>gated_deltanet</c>: <see cref="GatedDeltaNetForCausalLM"/>, <c>mamba2</c>: <see cref="Mamba2ForCausalLM"/>);
/// <see cref="Save"/> writes a model back as
/// <c>config.json</c> + <c>model.safetensors</c> under fla's names, which fla's <c>from_pretrained</c> reads.
/// </summary>
/// <remarks>
/// <para>The names need no map: the models' <c>state_dict</c> keys are fla's own. A tied model
/// (<c>tie_word_embeddings</c>) has no <c>lm_head.weight</c>: Hugging Face's <c>save_pretrained</c> leaves it out of
/// the file, and a file that has it anyway (a <c>torch.save</c> of fla's <c>state_dict()</c>) must hold the embedding's
/// values there, which are then used once.</para>
/// <para>Loading is strict by default (<see cref="Checkpoint.Load"/>): a missing, unexpected or mis-shaped tensor fails
/// with one <see cref="ArgumentException"/> that lists them all, before the model is returned.</para>
/// </remarks>
public static class FlaCheckpoint
{
    /// <summary>The weight file <see cref="Save"/> writes.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The config file of a model directory.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>
    /// Loads a fla model directory: the model of its config's <c>model_type</c>, built as fla builds it, with the
    /// directory's weights, in eval mode.
    /// </summary>
    /// <param name="directory">The directory: <c>config.json</c> and the weights (see <see cref="HuggingFaceCheckpoint"/>).</param>
    /// <param name="dtype"><see cref="CheckpointDType.Module"/> (default): a float32 model, the checkpoint's values converted
    /// (a bfloat16 or float16 checkpoint loads exactly, widened). <see cref="CheckpointDType.Checkpoint"/>: the model takes the
    /// dtype of the checkpoint's embedding (<c>model.embeddings.weight</c>, Mamba2's <c>backbone.embeddings.weight</c>);
    /// tensors of another floating dtype (fla keeps Gated DeltaNet's <c>A_log</c> and the ungated <c>o_norm.weight</c>,
    /// Mamba2's <c>A_log</c> and RMSNorm weights, in float32 in a bfloat16 model) are converted to it.</param>
    /// <param name="strict">Whether a missing or unexpected tensor fails the load (shape errors always do).</param>
    /// <returns>The model; the caller disposes it.</returns>
    /// <exception cref="DirectoryNotFoundException">There is no such directory.</exception>
    /// <exception cref="FileNotFoundException">It has no weights or no <c>config.json</c>.</exception>
    /// <exception cref="CheckpointFormatException">A file is malformed, or <c>config.json</c> has a field of the wrong type or
    /// a value fla's model refuses (the message names the field).</exception>
    /// <exception cref="NotSupportedException">The <c>model_type</c> or a setting of the config is not implemented here.</exception>
    /// <exception cref="ArgumentException">The weights do not fit the model (the message lists every problem).</exception>
    public static FlaForCausalLM Load(string directory, CheckpointDType dtype = CheckpointDType.Module, bool strict = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Check.Defined(dtype);
        using var checkpoint = HuggingFaceCheckpoint.Load(directory);
        string configPath = Path.Combine(directory, ConfigFile);
        if (checkpoint.Config is not JsonElement json)
            throw new FileNotFoundException($"The model directory '{directory}' has no {ConfigFile}; a fla model needs its config.", configPath);
        FlaForCausalLM model;
        try
        {
            model = FlaForCausalLM.FromConfig(json);
        }
        catch (ArgumentException ex)
        {
            throw new CheckpointFormatException(configPath, null, ex.Message, ex);
        }
        try
        {
            var tensors = Prepare(checkpoint.Tensors, model, dtype, out var converted);
            try
            {
                Checkpoint.Load(model, tensors, strict: strict, dtype: dtype);
            }
            finally
            {
                foreach (var t in converted) t.Dispose();
            }
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Saves a fla model as a Hugging Face directory fla's <c>from_pretrained</c> reads: <c>config.json</c> (the
    /// model's <see cref="FlaForCausalLM.Config"/>, with <c>torch_dtype</c>) and <c>model.safetensors</c> (every tensor under
    /// its fla name, metadata <c>{"format": "pt"}</c>; no <c>lm_head.weight</c> when tied). Files of those names are
    /// replaced; other files of the directory are left as they are.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="directory">The directory (created if needed).</param>
    /// <param name="dtype">The floating dtype of the saved tensors (e.g. bfloat16), or null for the model's own.</param>
    /// <exception cref="ArgumentException"><paramref name="dtype"/> is not a real floating dtype.</exception>
    public static void Save(FlaForCausalLM model, string directory, ScalarType? dtype = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (dtype is ScalarType d && !Check.IsRealFloating(d))
            throw new ArgumentException($"Expected a real floating dtype to save in (float32, float16, bfloat16, float64); got {d}.", nameof(dtype));
        Directory.CreateDirectory(directory);
        ScalarType modelDType;
        using (var w = model.embeddings.weight!) modelDType = w.dtype;
        var target = dtype ?? modelDType;

        using (var scope = NewDisposeScope())
        {
            var named = new List<KeyValuePair<string, Tensor>>();
            foreach (var (name, t) in model.state_dict())
                named.Add(new(name, Check.IsRealFloating(t.dtype) && t.dtype != target ? t.detach().to_type(target) : t));
            SafeTensors.Write(Path.Combine(directory, WeightsFile), named, new Dictionary<string, string> { ["format"] = "pt" });
        }

        var config = model.Config.ToJson(TorchDTypeName(target));
        var sorted = new JsonObject();
        foreach (var (k, v) in config.OrderBy(p => p.Key, StringComparer.Ordinal)) sorted[k] = v?.DeepClone();
        string text = sorted.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        string path = Path.Combine(directory, ConfigFile), temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>PyTorch's name of a dtype, as config.json's <c>torch_dtype</c> spells it.</summary>
    internal static string TorchDTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        _ => dtype.ToString().ToLowerInvariant(),
    };

    /// <summary>The checkpoint's tensors as the model takes them: a tied model's redundant <c>lm_head.weight</c> checked and
    /// left out; with <see cref="CheckpointDType.Checkpoint"/>, floating tensors of a dtype other than the embedding's
    /// converted (the new tensors are returned in <paramref name="converted"/> for the caller to dispose).</summary>
    private static IReadOnlyDictionary<string, Tensor> Prepare(StateDict tensors, FlaForCausalLM model, CheckpointDType dtype, out List<Tensor> converted)
    {
        const string head = "lm_head.weight";
        string embedding = model.DecoderName + ".embeddings.weight";
        converted = new List<Tensor>();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, t) in tensors) result[name] = t;
        if (model.TiedWeights && result.TryGetValue(head, out var h))
        {
            bool same;
            using (var scope = NewDisposeScope())
                same = !result.TryGetValue(embedding, out var e) || (h.shape.SequenceEqual(e.shape) && h.to_type(e.dtype).eq(e).all().item<bool>());
            if (!same)
                throw new ArgumentException($"The config ties the word embeddings, but the checkpoint's '{head}' {Check.Shape(h)} differs from '{embedding}'.", nameof(tensors));
            result.Remove(head);
        }
        if (dtype == CheckpointDType.Checkpoint && result.TryGetValue(embedding, out var emb) && Check.IsRealFloating(emb.dtype))
        {
            foreach (var name in result.Keys.ToList())
            {
                var t = result[name];
                if (!Check.IsRealFloating(t.dtype) || t.dtype == emb.dtype) continue;
                var c = t.to_type(emb.dtype).DetachFromDisposeScope();
                converted.Add(c);
                result[name] = c;
            }
        }
        return result;
    }
}
