using System.Text.Json;

namespace Discretax.Interop;

/// <summary>
/// A Hugging Face model directory: its weights, from <c>model.safetensors</c>, a sharded
/// <c>model.safetensors.index.json</c> with its shards, <c>pytorch_model.bin</c> or a sharded
/// <c>pytorch_model.bin.index.json</c> (looked for in that order, as the Hugging Face loaders prefer safetensors),
/// and its <c>config.json</c> when there is one. Dispose it to dispose the tensors.
/// </summary>
/// <remarks>
/// A sharded index is <c>{"metadata": {...}, "weight_map": {"name": "shard file", ...}}</c>. The shard files must be
/// plain file names in the directory; every name of the weight map must be in its shard and every tensor of a shard
/// in the weight map under that shard, else the directory is refused with a <see cref="CheckpointFormatException"/>
/// naming the file and the tensor. Each shard is read once, in the order of its first name in the index.
/// </remarks>
public sealed class HuggingFaceCheckpoint : IDisposable
{
    /// <summary>The weight file names, in the order they are looked for.</summary>
    public static readonly IReadOnlyList<string> WeightFiles =
        ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    private HuggingFaceCheckpoint(string directory, StateDict tensors, JsonElement? config, IReadOnlyList<string> files)
    {
        Directory = directory;
        Tensors = tensors;
        Config = config;
        Files = files;
    }

    /// <summary>The directory.</summary>
    public string Directory { get; }

    /// <summary>The weights by name (with the metadata of the first safetensors file read).</summary>
    public StateDict Tensors { get; }

    /// <summary>The parsed <c>config.json</c> (a copy independent of any document), or null when there is none.</summary>
    public JsonElement? Config { get; }

    /// <summary>The weight files read (paths), in order: the one file, or the index then its shards.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>Reads the weights and the config of a Hugging Face model directory.</summary>
    /// <param name="directory">The directory.</param>
    /// <param name="include">Which tensor names to read (null: all); shards without any are not opened.</param>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">It holds none of <see cref="WeightFiles"/>.</exception>
    /// <exception cref="CheckpointFormatException">A weight file, the index or config.json is malformed.</exception>
    public static HuggingFaceCheckpoint Load(string directory, Func<string, bool>? include = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"The model directory '{directory}' does not exist.");
        string? found = WeightFiles.FirstOrDefault(f => File.Exists(Path.Combine(directory, f)))
            ?? throw new FileNotFoundException(
                $"The model directory '{directory}' holds none of {string.Join(", ", WeightFiles)}.", Path.Combine(directory, WeightFiles[0]));
        string file = Path.Combine(directory, found);

        JsonElement? config = ReadConfig(directory);
        var files = new List<string> { file };
        StateDict tensors = found.EndsWith(".index.json", StringComparison.Ordinal)
            ? ReadSharded(directory, file, include, files)
            : ReadFile(file, include);
        return new HuggingFaceCheckpoint(directory, tensors, config, files);
    }

    /// <summary>Disposes the tensors.</summary>
    public void Dispose() => Tensors.Dispose();

    private static StateDict ReadFile(string file, Func<string, bool>? include) =>
        file.EndsWith(".safetensors", StringComparison.Ordinal) ? SafeTensors.Read(file, include) : PyTorchCheckpoint.Read(file, include);

    private static JsonElement? ReadConfig(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) return null;
        var bytes = File.ReadAllBytes(path);
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            return doc.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            // Python's json (Hugging Face's to_json_string) writes inf and nan as bare Infinity / NaN: read those too.
            if (PythonJsonLiterals(System.Text.Encoding.UTF8.GetString(bytes)) is string rewritten)
            {
                try
                {
                    using var doc = JsonDocument.Parse(rewritten);
                    return doc.RootElement.Clone();
                }
                catch (JsonException)
                {
                }
            }
            throw new CheckpointFormatException(path, null, $"config.json is not valid JSON ({ex.Message}).", ex);
        }
    }

    /// <summary>
    /// The JSON text with Python's non-standard float literals outside strings replaced: <c>Infinity</c> and
    /// <c>-Infinity</c> by the numbers <c>1e999</c> and <c>-1e999</c> (read as infinities), <c>NaN</c> by the string
    /// <c>"NaN"</c> (no JSON number is NaN); null when the text has none of them.
    /// </summary>
    internal static string? PythonJsonLiterals(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length + 16);
        bool inString = false, changed = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < text.Length) sb.Append(text[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') inString = true;
            else if (Literal(text, i, "-Infinity")) { sb.Append("-1e999"); i += 8; changed = true; continue; }
            else if (Literal(text, i, "Infinity")) { sb.Append("1e999"); i += 7; changed = true; continue; }
            else if (Literal(text, i, "NaN")) { sb.Append("\"NaN\""); i += 2; changed = true; continue; }
            sb.Append(c);
        }
        return changed ? sb.ToString() : null;
    }

    /// <summary>Whether <paramref name="word"/> starts at <paramref name="i"/> as a whole token.</summary>
    private static bool Literal(string text, int i, string word) =>
        string.CompareOrdinal(text, i, word, 0, word.Length) == 0
        && (i + word.Length == text.Length || !char.IsLetterOrDigit(text[i + word.Length]))
        && (i == 0 || !char.IsLetterOrDigit(text[i - 1]));

    private static StateDict ReadSharded(string directory, string index, Func<string, bool>? include, List<string> files)
    {
        var map = ReadWeightMap(index);
        var result = new StateDict();
        try
        {
            foreach (var shard in map.Values.Distinct())
            {
                var names = map.Where(kv => kv.Value == shard).Select(kv => kv.Key).ToList();
                var listed = names.ToHashSet(StringComparer.Ordinal);
                if (include is not null && !names.Any(include)) continue;
                string path = Path.Combine(directory, shard);
                if (!File.Exists(path)) throw new CheckpointFormatException(index, names[0], $"Its shard '{shard}' does not exist.");
                files.Add(path);
                // Every tensor of the shard passes the filter: one the weight map does not list there is refused.
                var part = ReadFile(path, n => listed.Contains(n)
                    ? include?.Invoke(n) ?? true
                    : throw new CheckpointFormatException(index, n, $"The shard '{shard}' holds the tensor, but the weight map does not list it there."));
                try
                {
                    foreach (var n in names)
                    {
                        if (include is not null && !include(n)) continue;
                        if (!part.TryGetValue(n, out var t))
                            throw new CheckpointFormatException(path, n, $"The index {Path.GetFileName(index)} puts the tensor in this shard, which lacks it.");
                        result.Add(n, t);
                    }
                    if (result.Metadata.Count == 0 && part.Metadata.Count > 0) result.Metadata = part.Metadata;
                }
                catch
                {
                    part.Dispose();
                    throw;
                }
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }
        return result;
    }

    private static Dictionary<string, string> ReadWeightMap(string index)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(index));
        }
        catch (JsonException ex)
        {
            throw new CheckpointFormatException(index, null, $"The index is not valid JSON ({ex.Message}).", ex);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var wm)
                || wm.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(index, null, "The index has no weight_map object.");
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointFormatException(index, p.Name, "The weight map's entry is not a file name string.");
                string shard = p.Value.GetString()!;
                if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or "..")
                    throw new CheckpointFormatException(index, p.Name, $"The shard '{shard}' is not a file name in the model directory.");
                if (!map.TryAdd(p.Name, shard)) throw new CheckpointFormatException(index, p.Name, "The name comes twice in the weight map.");
            }
            return map;
        }
    }
}
