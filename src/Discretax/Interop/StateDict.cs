using System.Collections;
using System.Diagnostics.CodeAnalysis;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// The tensors of a checkpoint by name, in the file's order, with the file's string metadata (safetensors'
/// <c>__metadata__</c>). The tensors are CPU tensors, each contiguous and owning its memory (no two share storage);
/// <see cref="Dispose"/> disposes them all. Read ones were moved out of the reader's dispose scope into the
/// caller's, like every result of the library.
/// </summary>
public sealed class StateDict : IReadOnlyDictionary<string, Tensor>, IDisposable
{
    private readonly List<string> _names = new();
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    internal StateDict(IReadOnlyDictionary<string, string>? metadata = null) =>
        Metadata = metadata ?? new Dictionary<string, string>();

    /// <summary>The file's string metadata (safetensors' <c>__metadata__</c>; empty for a torch.save file).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; internal set; }

    /// <summary>The names, in the file's order (a safetensors header's order, a pickled dict's insertion order;
    /// shards in the order of their first name in a Hugging Face index).</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>The number of tensors.</summary>
    public int Count => _names.Count;

    /// <summary>The tensor named <paramref name="key"/>.</summary>
    /// <param name="key">The name.</param>
    /// <exception cref="KeyNotFoundException">There is no tensor of that name; the message names it.</exception>
    public Tensor this[string key] =>
        _tensors.TryGetValue(key, out var t) ? t : throw new KeyNotFoundException($"The checkpoint has no tensor '{key}'.");

    /// <summary>The names, in the file's order.</summary>
    public IEnumerable<string> Keys => _names;

    /// <summary>The tensors, in the file's order.</summary>
    public IEnumerable<Tensor> Values => _names.Select(n => _tensors[n]);

    /// <summary>Whether there is a tensor named <paramref name="key"/>.</summary>
    /// <param name="key">The name.</param>
    public bool ContainsKey(string key) => _tensors.ContainsKey(key);

    /// <summary>The tensor named <paramref name="key"/>, if there is one.</summary>
    /// <param name="key">The name.</param>
    /// <param name="value">The tensor, or null.</param>
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out Tensor value) => _tensors.TryGetValue(key, out value);

    /// <summary>The name and tensor pairs, in the file's order.</summary>
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() =>
        _names.Select(n => new KeyValuePair<string, Tensor>(n, _tensors[n])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Adds a tensor; a name may come once.</summary>
    internal void Add(string name, Tensor tensor)
    {
        _tensors.Add(name, tensor);
        _names.Add(name);
    }

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
    }
}
