using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Interop;

/// <summary>
/// Moves the bytes of contiguous CPU tensors straight between a file (or stream) and the tensor's own memory, in
/// spans of at most 1 GiB over that memory: no managed array holds tensor data on the way.
/// </summary>
internal static class TensorBytes
{
    private const long ChunkBytes = 1L << 30;

    /// <summary>The number of bytes of <paramref name="t"/>'s elements.</summary>
    public static long ByteCount(Tensor t) => checked(t.numel() * t.element_size());

    /// <summary>A visitor of one span of a tensor's memory and its byte offset from the tensor's start.</summary>
    public delegate void SpanVisitor(Span<byte> span, long offset);

    /// <summary>Calls <paramref name="visit"/> on consecutive spans covering the memory of the contiguous CPU
    /// tensor <paramref name="t"/>, in order.</summary>
    public static void ForEachSpan(Tensor t, SpanVisitor visit)
    {
        if (!t.is_contiguous() || t.device_type != DeviceType.CPU)
            throw new InvalidOperationException($"Expected a contiguous CPU tensor; got one on {t.device}, contiguous = {t.is_contiguous()}.");
        long total = ByteCount(t);
        if (total == 0) return;
        if (total <= ChunkBytes)
        {
            visit(t.bytes, 0);
            return;
        }
        using var flat = t.reshape(-1);
        long itemSize = t.element_size();
        long perChunk = ChunkBytes / itemSize, count = t.numel();
        for (long start = 0; start < count; start += perChunk)
        {
            using var piece = flat.narrow(0, start, Math.Min(perChunk, count - start));
            visit(piece.bytes, start * itemSize);
        }
    }

    /// <summary>Fills <paramref name="t"/> with the bytes of <paramref name="file"/> from <paramref name="fileOffset"/>
    /// on (the caller checked that the file holds them).</summary>
    public static void ReadInto(Tensor t, SafeFileHandle file, long fileOffset) =>
        ForEachSpan(t, (span, offset) =>
        {
            int done = 0;
            while (done < span.Length)
            {
                int n = RandomAccess.Read(file, span[done..], fileOffset + offset + done);
                if (n == 0) throw new EndOfStreamException("The file ended inside a tensor's data.");
                done += n;
            }
        });

    /// <summary>Fills <paramref name="t"/> with the next bytes of <paramref name="stream"/>.</summary>
    public static void ReadInto(Tensor t, Stream stream) => ForEachSpan(t, (span, _) => stream.ReadExactly(span));

    /// <summary>Writes the bytes of the contiguous CPU tensor <paramref name="t"/> to <paramref name="stream"/>.</summary>
    public static void WriteFrom(Tensor t, Stream stream) => ForEachSpan(t, (span, _) => stream.Write(span));
}
