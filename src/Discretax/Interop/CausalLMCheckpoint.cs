using System.Text.Json;
using Discretax.Models;
using Discretax.Utilities;

namespace Discretax.Interop;

/// <summary>
/// The one entry point for a Hugging Face-style language-model directory from any supported reference: reads
/// <c>config.json</c>'s <c>model_type</c> and loads the directory into the matching <see cref="CausalLM"/>: fla's models
/// through <see cref="FlaCheckpoint.Load"/> (<c>delta_net</c>, <c>gated_deltanet</c>, <c>mamba2</c>), the xLSTM-7B
/// architecture through <see cref="XLSTMCheckpoint.LoadLarge(string, CheckpointDType, bool)"/> (<c>xlstm</c>).
/// Saving stays with the reference's own class (<see cref="FlaCheckpoint.Save"/>, <see cref="XLSTMCheckpoint.SaveLarge"/>),
/// which knows its layout.
/// </summary>
public static class CausalLMCheckpoint
{
    /// <summary>The <c>model_type</c> of the xLSTM-7B architecture (NX-AI's and transformers' <c>config.json</c>).</summary>
    public const string XLSTMModelType = "xlstm";

    /// <summary>Every <c>model_type</c> <see cref="Load"/> accepts.</summary>
    public static IReadOnlyCollection<string> SupportedModelTypes =>
        FlaForCausalLM.SupportedModelTypes.Append(XLSTMModelType).ToArray();

    /// <summary>Loads the directory into the model its <c>config.json</c> names, strictly by default, in eval mode.</summary>
    /// <param name="directory">The directory: <c>config.json</c> and the weights (see <see cref="HuggingFaceCheckpoint"/>).</param>
    /// <param name="dtype">Widen to float32 (default) or keep the checkpoint's dtype.</param>
    /// <param name="strict">Whether a missing or unexpected tensor fails the load (shape errors always do).</param>
    /// <returns>The model; the caller disposes it.</returns>
    /// <exception cref="DirectoryNotFoundException">There is no such directory.</exception>
    /// <exception cref="FileNotFoundException">It has no <c>config.json</c> (or no weights).</exception>
    /// <exception cref="CheckpointFormatException"><c>config.json</c> is not a JSON object with a string <c>model_type</c>.</exception>
    /// <exception cref="NotSupportedException">The <c>model_type</c> is not one of <see cref="SupportedModelTypes"/>.</exception>
    /// <exception cref="ArgumentException">The weights do not fit the model (the message lists every problem).</exception>
    public static CausalLM Load(string directory, CheckpointDType dtype = CheckpointDType.Module, bool strict = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Check.Defined(dtype);
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"There is no model directory '{directory}'.");
        string configPath = Path.Combine(directory, FlaCheckpoint.ConfigFile);
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"The model directory '{directory}' has no {FlaCheckpoint.ConfigFile}; its model_type says which model to build.", configPath);
        string modelType = ModelType(configPath);
        if (modelType == XLSTMModelType) return XLSTMCheckpoint.LoadLarge(directory, dtype, strict);
        if (FlaForCausalLM.SupportedModelTypes.Contains(modelType)) return FlaCheckpoint.Load(directory, dtype, strict);
        throw new NotSupportedException(
            $"{configPath}: model_type '{modelType}' is not supported; supported: {string.Join(", ", SupportedModelTypes)}.");
    }

    private static string ModelType(string configPath)
    {
        try
        {
            // Python's json writes Infinity / NaN (fla's dt_limit): read them as HuggingFaceCheckpoint does.
            string text = File.ReadAllText(configPath);
            using var doc = JsonDocument.Parse(HuggingFaceCheckpoint.PythonJsonLiterals(text) ?? text);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("model_type", out var t) &&
                t.ValueKind == JsonValueKind.String)
                return t.GetString()!;
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(configPath, null, $"config.json is not valid JSON ({e.Message}).", e);
        }
        throw new CheckpointFormatException(configPath, null, "config.json has no string model_type (expected a JSON object with one).");
    }
}
