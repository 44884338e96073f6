using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// Reads and writes the safetensors format (Hugging Face's): an 8-byte little-endian unsigned header length N, a
/// UTF-8 JSON header of N bytes mapping each tensor's name to <c>{"dtype", "shape", "data_offsets": [begin, end]}</c>
/// (offsets in bytes from the start of the data section) plus an optional <c>"__metadata__"</c> object of strings,
/// then the data section: each tensor's elements, row-major, little-endian, with
/// <c>end - begin = prod(shape) * itemsize</c>. Dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL.
/// </summary>
/// <remarks>
/// <para>Reading follows the reference implementation's validation: the header length must fit in the file (and
/// in 100 MB), the header must be a JSON object beginning with <c>{</c>, every dtype known, every shape a list of
/// non-negative integers, and the tensors' byte ranges must tile the data section exactly, in some order: no range
/// out of the file, none overlapping another, no gap, nothing after the last. A file that breaks a rule is refused
/// with a <see cref="CheckpointFormatException"/> naming the file and the tensor, before any tensor is made.</para>
/// <para>Each tensor's bytes go from the file straight into the memory of a new CPU tensor (positioned reads into a
/// span over that memory): nothing is copied through a managed array, and the file is not kept open or mapped.</para>
/// <para>Writing lays the file out as the reference writer does (tensors by decreasing element size, then by name,
/// so each one is aligned to its element size; the header padded with spaces to a multiple of 8 bytes), through a
/// temporary file in the same folder that replaces the target only when complete.</para>
/// </remarks>
public static class SafeTensors
{
    /// <summary>The largest header the reader accepts (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>
    /// Reads the tensors of a safetensors file (all, or those <paramref name="include"/> accepts) and its metadata.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="include">Which names to read (null: all). The whole header is validated either way.</param>
    /// <returns>The tensors in the header's order, CPU, contiguous, in the file's dtypes; the caller disposes them
    /// (<see cref="StateDict.Dispose"/>).</returns>
    /// <exception cref="CheckpointFormatException">The file breaks the format (see the remarks of the class).</exception>
    public static StateDict Read(string path, Func<string, bool>? include = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var (entries, metadata, dataStart) = ReadHeader(file, path);
        var result = new StateDict(metadata);
        using var scope = NewDisposeScope();
        try
        {
            foreach (var e in entries)
            {
                if (include is not null && !include(e.Name)) continue;
                var t = empty(e.Shape, e.DType);
                TensorBytes.ReadInto(t, file, dataStart + e.Begin);
                result.Add(e.Name, t.MoveToOuterDisposeScope());
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> as a safetensors file (contiguous CPU copies of tensors that are not, on any
    /// device), with <paramref name="metadata"/> as <c>__metadata__</c>. The target is replaced only once the whole
    /// file is written.
    /// </summary>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="tensors">The tensors by name: unique non-empty names other than <c>__metadata__</c>, dtypes
    /// among F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL.</param>
    /// <param name="metadata">String metadata (null: none). Hugging Face's loaders expect <c>{"format": "pt"}</c>;
    /// <see cref="Checkpoint.Save"/> adds it.</param>
    /// <exception cref="ArgumentException">A name is empty, repeated or <c>__metadata__</c>, a tensor is null or of
    /// a dtype the format lacks (complex): the message names it.</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var items = new List<(string Name, Tensor Tensor, string DType)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in tensors)
        {
            if (string.IsNullOrEmpty(name) || name == "__metadata__")
                throw new ArgumentException($"Expected tensor names that are non-empty and not '__metadata__'; got '{name}'.", nameof(tensors));
            if (!seen.Add(name)) throw new ArgumentException($"The tensor name '{name}' comes twice.", nameof(tensors));
            if (t is null) throw new ArgumentException($"The tensor '{name}' is null.", nameof(tensors));
            string dtype = DTypes.SafeTensorsName(t.dtype)
                ?? throw new ArgumentException($"The tensor '{name}' is {t.dtype}, which safetensors cannot hold; expected one of {DTypes.SafeTensorsList} (store a complex tensor as its real and imaginary parts).", nameof(tensors));
            items.Add((name, t, dtype));
        }
        if (metadata is not null)
            foreach (var (k, v) in metadata)
                if (k is null || v is null) throw new ArgumentException("Metadata keys and values must not be null.", nameof(metadata));

        // The reference writer's order: decreasing alignment (element size), then name.
        items.Sort((a, b) =>
        {
            int c = b.Tensor.element_size().CompareTo(a.Tensor.element_size());
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });
        byte[] header = Header(items, metadata);

        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (var (_, t, _) in items)
                {
                    using var scope = NewDisposeScope();
                    var cpu = t.detach().cpu().contiguous();
                    TensorBytes.WriteFrom(cpu, stream);
                }
            }
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static byte[] Header(List<(string Name, Tensor Tensor, string DType)> items, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t, dtype) in items)
            {
                long n = TensorBytes.ByteCount(t);
                w.WriteStartObject(name);
                w.WriteString("dtype", dtype);
                w.WriteStartArray("shape");
                foreach (long d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + n);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += n;
            }
            w.WriteEndObject();
        }
        long length = buffer.Length;
        long padded = (length + 7) / 8 * 8;
        for (long i = length; i < padded; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    /// <summary>One tensor of a header: its name, dtype, shape and byte range in the data section.</summary>
    internal sealed record Entry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    /// <summary>Reads and validates the header of an open safetensors file.</summary>
    internal static (List<Entry> Entries, Dictionary<string, string> Metadata, long DataStart) ReadHeader(SafeFileHandle file, string path)
    {
        long fileLength = RandomAccess.GetLength(file);
        if (fileLength < 8)
            throw new CheckpointFormatException(path, null, $"The file has {fileLength} bytes, fewer than the 8 of a safetensors header length.");
        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(file, lengthBytes, 0, path);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes || (long)headerLength > fileLength - 8)
            throw new CheckpointFormatException(path, null,
                $"The header length is {headerLength} bytes, but the file has {fileLength - 8} bytes after the length field (and a header may have at most {MaxHeaderBytes}): not a safetensors file, or a truncated one.");
        var header = new byte[(int)headerLength];
        ReadExactly(file, header, 8, path);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var (entries, metadata) = ParseHeader(header, dataLength, path);
        return (entries, metadata, dataStart);
    }

    private static void ReadExactly(SafeFileHandle file, Span<byte> span, long offset, string path)
    {
        int done = 0;
        while (done < span.Length)
        {
            int n = RandomAccess.Read(file, span[done..], offset + done);
            if (n == 0) throw new CheckpointFormatException(path, null, "The file ended inside the header.");
            done += n;
        }
    }

    /// <summary>Parses and validates a header of <paramref name="dataLength"/> bytes of data.</summary>
    internal static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(byte[] header, long dataLength, string path)
    {
        if (header.Length == 0 || header[0] != (byte)'{')
            throw new CheckpointFormatException(path, null, "The header does not begin with '{': not a safetensors file.");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException ex)
        {
            throw new CheckpointFormatException(path, null, $"The header is not valid JSON ({ex.Message}).", ex);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(path, null, "The header is not a JSON object.");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = new List<Entry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                string name = property.Name;
                if (!names.Add(name)) throw new CheckpointFormatException(path, name, "The name comes twice in the header.");
                if (name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw new CheckpointFormatException(path, null, "__metadata__ is not an object of strings.");
                    foreach (var m in property.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new CheckpointFormatException(path, null, $"__metadata__ entry '{m.Name}' is not a string ({m.Value.ValueKind}).");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(name, property.Value, dataLength, path));
            }
            CheckTiling(entries, dataLength, path);
            return (entries, metadata);
        }
    }

    private static Entry ParseEntry(string name, JsonElement e, long dataLength, string path)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, name, $"The header entry is a JSON {e.ValueKind}, not an object with dtype, shape and data_offsets.");
        if (!e.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException(path, name, "The header entry has no dtype string.");
        string dtypeName = dtypeElement.GetString()!;
        if (!DTypes.SafeTensors.TryGetValue(dtypeName, out var dtype))
            throw new CheckpointFormatException(path, name, $"Unknown dtype '{dtypeName}'; expected one of {DTypes.SafeTensorsList}.");
        if (!e.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException(path, name, "The header entry has no shape list.");
        var shape = new long[shapeElement.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long size) || size < 0)
                throw new CheckpointFormatException(path, name, $"The shape {shapeElement.GetRawText()} is not a list of non-negative integers.");
            shape[i++] = size;
            try { count = checked(count * size); }
            catch (OverflowException) { throw new CheckpointFormatException(path, name, $"The shape {shapeElement.GetRawText()} has too many elements."); }
        }
        if (!e.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw new CheckpointFormatException(path, name, "The header entry has no data_offsets [begin, end] of two integers.");
        if (begin < 0 || end < begin || end > dataLength)
            throw new CheckpointFormatException(path, name,
                $"data_offsets [{begin}, {end}] are out of range: expected 0 <= begin <= end <= {dataLength}, the size of the data section.");
        long expected;
        try { expected = checked(count * DTypes.ElementSize(dtype)); }
        catch (OverflowException) { throw new CheckpointFormatException(path, name, $"The shape {shapeElement.GetRawText()} has too many bytes."); }
        if (end - begin != expected)
            throw new CheckpointFormatException(path, name,
                $"data_offsets [{begin}, {end}] hold {end - begin} bytes, but {dtypeName} {shapeElement.GetRawText()} needs {expected}.");
        return new Entry(name, dtype, shape, begin, end);
    }

    private static void CheckTiling(List<Entry> entries, long dataLength, string path)
    {
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long cursor = 0;
        Entry? previous = null;
        foreach (var e in sorted)
        {
            if (e.Begin < cursor)
                throw new CheckpointFormatException(path, e.Name,
                    $"data_offsets [{e.Begin}, {e.End}] overlap those of '{previous!.Name}' [{previous.Begin}, {previous.End}].");
            if (e.Begin > cursor)
                throw new CheckpointFormatException(path, e.Name,
                    $"data_offsets [{e.Begin}, {e.End}] leave the bytes [{cursor}, {e.Begin}) of the data section to no tensor.");
            cursor = e.End;
            previous = e;
        }
        if (cursor != dataLength)
            throw new CheckpointFormatException(path, null,
                $"The tensors end at byte {cursor} of the data section, but it has {dataLength} bytes (trailing bytes, or a truncated header).");
    }
}
