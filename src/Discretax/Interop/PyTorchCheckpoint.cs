using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// Reads PyTorch's <c>torch.save</c> files (<c>.pt</c>, <c>.pth</c>, Hugging Face's <c>pytorch_model.bin</c>): the zip
/// format of PyTorch 1.6 and later, a pickle (<c>data.pkl</c>) of a state dict whose tensors point at storages
/// stored as raw little-endian files (<c>data/0</c>, <c>data/1</c>, ...).
/// </summary>
/// <remarks>
/// <para>What is read: dicts (<c>OrderedDict</c> or plain), lists and tuples of tensors at any depth, flattened to
/// dotted names (<c>{"model": {"w": t}}</c> gives <c>model.w</c>; list items are numbered); numbers, strings and
/// <c>None</c> are skipped. Tensors of every dtype TorchSharp has (float64/32/16, bfloat16, int64/32/16/8, uint8,
/// bool, complex64/128), with any strides and storage offset (transposed tensors, slices, several tensors sharing
/// one storage): each storage is read once, straight into a tensor's memory, and every tensor comes out contiguous
/// and owning its memory. <c>nn.Parameter</c>s count as tensors.</para>
/// <para>What is refused, with a <see cref="CheckpointFormatException"/> naming the file: the legacy format of
/// PyTorch before 1.6 (<c>_use_new_zipfile_serialization=False</c>; re-save it with a current PyTorch), big-endian
/// files, TorchScript archives, and any pickle that refers to a Python object other than those of a state dict
/// (a pickled <c>nn.Module</c>, an optimizer's classes, NumPy values): like <c>torch.load(weights_only=True)</c>, the
/// reader never runs code from the file, so loading an untrusted checkpoint cannot do more than fail.</para>
/// </remarks>
public static class PyTorchCheckpoint
{
    /// <summary>Reads the tensors of a <c>torch.save</c> file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="include">Which (flattened) names to read (null: all).</param>
    /// <returns>The tensors in the pickle's order, CPU, contiguous, in the file's dtypes; the caller disposes them.</returns>
    /// <exception cref="CheckpointFormatException">The file is not a readable state dict (see the remarks).</exception>
    public static StateDict Read(string path, Func<string, bool>? include = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> magic = stackalloc byte[4];
        int got = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (got < 4 || magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4)
        {
            bool legacy = got >= 2 && magic[0] == 0x80 && magic[1] <= 5;
            throw new CheckpointFormatException(path, null, legacy
                ? "This is the legacy torch.save format of PyTorch before 1.6 (a bare pickle), which is not read: re-save it with torch.save(torch.load(path), path) in PyTorch 1.6 or later."
                : "Not a torch.save file (no zip archive signature).");
        }
        stream.Position = 0;
        ZipArchive archive;
        try
        {
            archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException ex)
        {
            throw new CheckpointFormatException(path, null, $"The zip archive is damaged ({ex.Message}).", ex);
        }
        using (archive)
        {
            return ReadArchive(archive, path, include);
        }
    }

    /// <summary>A storage of the archive: its entry key, dtype and number of elements.</summary>
    private sealed record StorageRef(string Key, ScalarType DType, long Count);

    /// <summary>A tensor of the pickle: a view of a storage.</summary>
    private sealed record TensorRef(StorageRef Storage, long Offset, long[] Shape, long[] Stride);

    private static StateDict ReadArchive(ZipArchive archive, string path, Func<string, bool>? include)
    {
        var pickle = archive.Entries.Where(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal)
                                                && e.FullName.Count(c => c == '/') <= 1)
                                    .OrderBy(e => e.FullName.Length).FirstOrDefault()
            ?? throw new CheckpointFormatException(path, null, "The archive has no data.pkl: not a torch.save file.");
        string prefix = pickle.FullName[..^"data.pkl".Length];
        if (archive.GetEntry(prefix + "constants.pkl") is not null)
            throw new CheckpointFormatException(path, null, "This is a TorchScript archive (torch.jit.save), not a torch.save state dict.");
        if (archive.GetEntry(prefix + "byteorder") is { } order)
        {
            using var r = new StreamReader(order.Open(), Encoding.ASCII);
            string byteOrder = r.ReadToEnd().Trim();
            if (byteOrder != "little")
                throw new CheckpointFormatException(path, null, $"The storages are {byteOrder}-endian; only little-endian files are read.");
        }
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Reading torch.save files needs a little-endian machine.");

        byte[] data;
        using (var s = pickle.Open())
        using (var m = new MemoryStream())
        {
            s.CopyTo(m);
            data = m.ToArray();
        }

        var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
        object? root;
        try
        {
            root = new PickleReader(data)
            {
                ResolveGlobal = ResolveGlobal,
                Call = Call,
                Build = Build,
                PersistentLoad = pid => PersistentLoad(pid, storages),
            }.Load();
        }
        catch (PickleException ex)
        {
            throw new CheckpointFormatException(path, null, $"{pickle.FullName}: {ex.Message}", ex);
        }

        var tensors = new List<(string Name, TensorRef Ref)>();
        if (root is TensorRef single) tensors.Add(("", single));
        else if (root is PyDict or List<object?> or object?[]) Flatten(root, "", tensors, path);
        else throw new CheckpointFormatException(path, null, $"The pickle holds a {PickleReader.TypeName(root)}, not a state dict.");
        if (include is not null) tensors = tensors.Where(t => include(t.Name)).ToList();

        return Materialize(archive, prefix, tensors, path);
    }

    private static readonly HashSet<string> Functions = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter", "torch.Tensor", "builtins.dict",
    };

    private static object ResolveGlobal(string module, string name)
    {
        string full = $"{module}.{name}";
        if (Functions.Contains(full) || module == "torch" && DTypes.TorchStorages.ContainsKey(name))
            return new PyGlobal(module, name);
        throw new PickleException(
            $"The pickle refers to the Python object '{full}', which a state dict of tensors does not need (a pickled module, optimizer or NumPy value?). Only dicts, lists, numbers, strings and tensors are read, as torch.load(weights_only=True) reads them; save model.state_dict() instead.");
    }

    private static object? Call(object? callable, object?[] args)
    {
        if (callable is not PyGlobal g) throw new PickleException($"A call of a {PickleReader.TypeName(callable)}, which is not a function.");
        switch (g.ToString())
        {
            case "collections.OrderedDict":
            case "builtins.dict":
                if (args.Length != 0) throw new PickleException($"{g}() with {args.Length} arguments.");
                return new PyDict();
            case "torch._utils._rebuild_tensor":
            case "torch._utils._rebuild_tensor_v2":
                if (args.Length < 4) throw new PickleException($"{g} with {args.Length} arguments, fewer than 4.");
                var storage = args[0] as StorageRef ?? throw new PickleException($"{g} without a storage.");
                return new TensorRef(storage, Int(args[1], "storage_offset"), Ints(args[2], "size"), Ints(args[3], "stride"));
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                return args.Length > 0 && args[0] is TensorRef data ? data : throw new PickleException($"{g} without a tensor.");
            case "torch._tensor._rebuild_from_type_v2":
                if (args.Length < 3 || args[2] is not object?[] inner) throw new PickleException($"{g} without (func, type, args).");
                return Call(args[0], inner);
            default:
                throw new PickleException($"{g} is not a function the reader calls.");
        }
    }

    private static object? Build(object? obj, object? state) => obj switch
    {
        PyDict or TensorRef => obj,     // an OrderedDict's _metadata, a tensor's Python attributes: not needed
        _ => throw new PickleException($"BUILD (set the state) of a {PickleReader.TypeName(obj)}."),
    };

    private static object PersistentLoad(object? pid, Dictionary<string, StorageRef> storages)
    {
        if (pid is not object?[] { Length: >= 5 } t || t[0] as string != "storage")
            throw new PickleException("A persistent id that is not ('storage', type, key, location, size).");
        if (t[1] is not PyGlobal { Module: "torch" } type || !DTypes.TorchStorages.TryGetValue(type.Name, out var dtype))
            throw new PickleException($"A storage of type {PickleReader.TypeName(t[1])}, which is not read.");
        string key = t[2] as string ?? throw new PickleException("A storage without a key string.");
        long count = Int(t[4], "storage size");
        if (storages.TryGetValue(key, out var known))
        {
            if (known.DType != dtype || known.Count != count)
                throw new PickleException($"Storage '{key}' is described twice, as {known.DType} [{known.Count}] and {dtype} [{count}].");
            return known;
        }
        return storages[key] = new StorageRef(key, dtype, count);
    }

    private static long Int(object? o, string what) =>
        o is long v ? v : throw new PickleException($"The {what} is a {PickleReader.TypeName(o)}, not an integer.");

    private static long[] Ints(object? o, string what) =>
        o is object?[] tuple ? tuple.Select(x => Int(x, what)).ToArray() : throw new PickleException($"The {what} is a {PickleReader.TypeName(o)}, not a tuple.");

    private static void Flatten(object? node, string prefix, List<(string, TensorRef)> into, string path)
    {
        IEnumerable<(string Key, object? Value)> children = node switch
        {
            PyDict d => d.Items.Select(kv => (Convert.ToString(kv.Key, System.Globalization.CultureInfo.InvariantCulture) ?? "None", kv.Value)),
            List<object?> l => l.Select((v, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), v)),
            object?[] a => a.Select((v, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), v)),
            _ => [],
        };
        foreach (var (key, value) in children)
        {
            string name = prefix.Length == 0 ? key : $"{prefix}.{key}";
            switch (value)
            {
                case TensorRef t:
                    if (into.Any(x => x.Item1 == name)) throw new CheckpointFormatException(path, name, "The flattened name comes twice.");
                    into.Add((name, t));
                    break;
                case PyDict or List<object?> or object?[]:
                    Flatten(value, name, into, path);
                    break;
                // numbers, strings, None, booleans: not tensors, skipped
            }
        }
    }

    private static StateDict Materialize(ZipArchive archive, string prefix, List<(string Name, TensorRef Ref)> tensors, string path)
    {
        var result = new StateDict();
        using var scope = NewDisposeScope();
        try
        {
            var loaded = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            var handedOut = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (name, r) in tensors)
            {
                var s = r.Storage;
                if (!loaded.TryGetValue(s.Key, out var storage))
                {
                    var entry = archive.GetEntry($"{prefix}data/{s.Key}")
                        ?? throw new CheckpointFormatException(path, name, $"The storage file {prefix}data/{s.Key} is missing from the archive.");
                    long bytes = checked(s.Count * DTypes.ElementSize(s.DType));
                    if (entry.Length != bytes)
                        throw new CheckpointFormatException(path, name,
                            $"The storage file {entry.FullName} has {entry.Length} bytes; {s.Count} elements of {s.DType} need {bytes}.");
                    storage = empty(s.Count, s.DType);
                    using (var data = entry.Open()) TensorBytes.ReadInto(storage, data);
                    loaded[s.Key] = storage;
                }
                CheckView(name, r, path);
                Tensor t;
                bool whole = r.Offset == 0 && ShapeCount(r.Shape) == s.Count && IsContiguous(r.Shape, r.Stride);
                if (whole && handedOut.Add(s.Key)) t = storage.view(r.Shape);
                else
                {
                    using var view = storage.as_strided(r.Shape, r.Stride, r.Offset);
                    t = view.is_contiguous() ? view.clone() : view.contiguous();
                }
                result.Add(name, t.MoveToOuterDisposeScope());
            }
        }
        catch (Exception ex) when (ex is not CheckpointFormatException)
        {
            result.Dispose();
            throw new CheckpointFormatException(path, null, $"Reading the storages failed ({ex.Message}).", ex);
        }
        catch
        {
            result.Dispose();
            throw;
        }
        return result;
    }

    private static void CheckView(string name, TensorRef r, string path)
    {
        if (r.Shape.Length != r.Stride.Length)
            throw new CheckpointFormatException(path, name, $"The size has {r.Shape.Length} dimensions but the stride {r.Stride.Length}.");
        if (r.Offset < 0 || r.Shape.Any(d => d < 0) || r.Stride.Any(d => d < 0))
            throw new CheckpointFormatException(path, name, "A negative size, stride or storage offset.");
        if (r.Shape.Any(d => d == 0)) return;
        long last = r.Offset;
        for (int i = 0; i < r.Shape.Length; i++) last += (r.Shape[i] - 1) * r.Stride[i];
        if (last >= r.Storage.Count)
            throw new CheckpointFormatException(path, name,
                $"The view (offset {r.Offset}, size {Utilities.Check.Shape(r.Shape)}, stride {Utilities.Check.Shape(r.Stride)}) reaches element {last} of a storage of {r.Storage.Count}.");
    }

    private static long ShapeCount(long[] shape) => shape.Aggregate(1L, (a, d) => a * d);

    private static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }
}
