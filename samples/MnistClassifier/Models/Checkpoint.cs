using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Models;

/// <summary>
/// Saves and loads a classifier: the weights (parameters and buffers) in TorchSharp's format at <c>PATH</c>,
/// and the <see cref="NetworkSpec"/> that rebuilds the network as JSON at <c>PATH.json</c>.
/// </summary>
public static class Checkpoint
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>The side file holding the spec of the checkpoint at <paramref name="path"/>.</summary>
    /// <param name="path">The weights file.</param>
    public static string SpecPath(string path) => path + ".json";

    /// <summary>Writes the weights and the spec.</summary>
    /// <param name="path">The weights file (its directory is created if needed).</param>
    /// <param name="network">The network built from <paramref name="spec"/>.</param>
    /// <param name="spec">Its spec.</param>
    public static void Save(string path, nn.Module network, NetworkSpec spec)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(spec);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        network.save(path);
        File.WriteAllText(SpecPath(path), JsonSerializer.Serialize(spec, Json));
    }

    /// <summary>Reads the spec of the checkpoint at <paramref name="path"/>.</summary>
    /// <param name="path">The weights file.</param>
    public static NetworkSpec ReadSpec(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException(path, "checkpoint not found");
        var specPath = SpecPath(path);
        if (!File.Exists(specPath))
            throw new CheckpointException(path, $"no {Path.GetFileName(specPath)} beside it (the options that rebuild the model); was it saved by this program?");
        NetworkSpec? spec;
        try { spec = JsonSerializer.Deserialize<NetworkSpec>(File.ReadAllText(specPath), Json); }
        catch (JsonException e) { throw new CheckpointException(specPath, $"not a valid model description: {e.Message}", e); }
        if (spec is null) throw new CheckpointException(specPath, "empty model description");
        try { spec.Validate(); }
        catch (ArgumentException e) { throw new CheckpointException(specPath, $"invalid model description: {e.Message}", e); }
        return spec;
    }

    /// <summary>Rebuilds the network from the spec and loads the weights into it, on the CPU.</summary>
    /// <param name="path">The weights file.</param>
    public static (nn.Module<Tensor, Tensor> Network, NetworkSpec Spec) Load(string path)
    {
        var spec = ReadSpec(path);
        var network = ModelCatalog.Build(spec);
        try
        {
            network.load(path, strict: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            network.Dispose();
            throw new CheckpointException(path, $"the weights do not fit the model it describes ({spec.Describe()}): {FirstLine(e.Message)}", e);
        }
        return (network, spec);
    }

    /// <summary>
    /// Throws a <see cref="CheckpointException"/> when a setting the user gave explicitly differs from the
    /// checkpoint's, e.g. <c>--model</c> or <c>--hidden</c>.
    /// </summary>
    /// <param name="path">The checkpoint file (for the message).</param>
    /// <param name="saved">The checkpoint's spec.</param>
    /// <param name="requested">Settings the user gave: name (e.g. "--hidden") to value, only those given.</param>
    public static void CheckRequested(string path, NetworkSpec saved, IReadOnlyDictionary<string, string> requested)
    {
        ArgumentNullException.ThrowIfNull(saved);
        ArgumentNullException.ThrowIfNull(requested);
        var actual = new Dictionary<string, string>
        {
            ["--model"] = saved.Model,
            ["--layout"] = saved.Layout.ToString().ToLowerInvariant(),
            ["--hidden"] = saved.Hidden.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["--blocks"] = saved.Blocks.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["--block"] = saved.Block,
        };
        foreach (var (name, value) in requested)
            if (actual.TryGetValue(name, out var have) && !string.Equals(have, value, StringComparison.OrdinalIgnoreCase))
                throw new CheckpointException(path, $"was saved with {name} {have}, but {name} {value} was asked for; drop {name} or use a matching checkpoint");
    }

    private static string FirstLine(string s)
    {
        int i = s.IndexOfAny(new[] { '\r', '\n' });
        return i < 0 ? s : s[..i];
    }
}
