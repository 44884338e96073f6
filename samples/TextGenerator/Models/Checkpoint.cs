using System.Text.Json;
using TorchSharp;

namespace TextGenerator.Models;

/// <summary>What rebuilds a saved model: its name and sizes, stored next to the weights in <c>PATH.json</c>.</summary>
/// <param name="Model">The <c>--model</c> name.</param>
/// <param name="Hidden">The hidden size.</param>
/// <param name="Blocks">The blocks.</param>
internal sealed record ModelSpec(string Model, int Hidden, int Blocks);

/// <summary>Saves and loads a model: the TorchSharp weights at PATH and its <see cref="ModelSpec"/> at PATH.json.</summary>
internal static class Checkpoint
{
    /// <summary>Writes the weights and the spec.</summary>
    public static void Save(string path, ILanguageModel model, ModelSpec spec)
    {
        model.Module.save(path);
        File.WriteAllText(path + ".json", JsonSerializer.Serialize(spec));
    }

    /// <summary>Rebuilds the model of <paramref name="path"/> on <paramref name="device"/>.</summary>
    /// <exception cref="TextGenerator.Data.TextDataException">A missing or unreadable checkpoint.</exception>
    public static (ILanguageModel Model, ModelSpec Spec) Load(string path, torch.Device device)
    {
        if (!File.Exists(path)) throw new Data.TextDataException($"--load {path}: no such file");
        if (!File.Exists(path + ".json")) throw new Data.TextDataException($"--load {path}: {path}.json (the model options) is missing; save with --save PATH");
        ModelSpec spec;
        try
        {
            spec = JsonSerializer.Deserialize<ModelSpec>(File.ReadAllText(path + ".json")) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new Data.TextDataException($"--load {path}: {path}.json is not a model description: {e.Message}", inner: e);
        }
        var model = ModelCatalog.Create(spec.Model, spec.Hidden, spec.Blocks);
        try
        {
            model.Module.load(path);
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or EndOfStreamException)
        {
            model.Dispose();
            throw new Data.TextDataException($"--load {path} cannot be loaded as a {spec.Model} model: {e.Message}", inner: e);
        }
        model.Module.to(device);
        return (model, spec);
    }
}
