using System.Buffers.Binary;
using System.IO.Compression;

namespace MnistClassifier.Data;

/// <summary>
/// Reads and writes the IDX format in which MNIST and Fashion-MNIST ship (http://yann.lecun.com/exdb/mnist/):
/// a big-endian header (magic number <c>0x00 0x00 type dims</c>, then one 32-bit size per dimension) followed by
/// the data. Images are IDX3 of unsigned bytes (magic 0x00000803, sizes N, rows, columns), labels IDX1 of unsigned
/// bytes (magic 0x00000801, size N). A file is read raw or gzip-compressed, recognized by its first bytes, whatever
/// its name. Every problem throws a <see cref="DataFileException"/> naming the file.
/// </summary>
public static class IdxFile
{
    /// <summary>The magic number of an IDX3 file of unsigned bytes (images).</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>The magic number of an IDX1 file of unsigned bytes (labels).</summary>
    public const int LabelsMagic = 0x00000801;

    /// <summary>Reads an IDX3 image file (raw or gzip).</summary>
    /// <param name="path">The file.</param>
    public static IdxImages ReadImages(string path)
    {
        var bytes = ReadContent(path);
        CheckMagic(path, bytes, ImagesMagic, "images (IDX3 of unsigned bytes)");
        if (bytes.Length < 16) throw new DataFileException(path, $"truncated: the IDX3 header needs 16 bytes, the file has {bytes.Length}");
        int count = ReadSize(bytes, 4, path, "image count");
        int rows = ReadSize(bytes, 8, path, "row count");
        int cols = ReadSize(bytes, 12, path, "column count");
        long expected = (long)count * rows * cols;
        long actual = bytes.Length - 16L;
        if (actual < expected)
            throw new DataFileException(path, $"truncated: the header announces {count} images of {rows}x{cols} ({expected} bytes) but only {actual} bytes follow");
        if (actual > expected)
            throw new DataFileException(path, $"corrupt: the header announces {count} images of {rows}x{cols} ({expected} bytes) but {actual} bytes follow");
        return new IdxImages(count, rows, cols, bytes.AsSpan(16).ToArray());
    }

    /// <summary>Reads an IDX1 label file (raw or gzip).</summary>
    /// <param name="path">The file.</param>
    public static byte[] ReadLabels(string path)
    {
        var bytes = ReadContent(path);
        CheckMagic(path, bytes, LabelsMagic, "labels (IDX1 of unsigned bytes)");
        if (bytes.Length < 8) throw new DataFileException(path, $"truncated: the IDX1 header needs 8 bytes, the file has {bytes.Length}");
        int count = ReadSize(bytes, 4, path, "label count");
        long actual = bytes.Length - 8L;
        if (actual < count)
            throw new DataFileException(path, $"truncated: the header announces {count} labels but only {actual} bytes follow");
        if (actual > count)
            throw new DataFileException(path, $"corrupt: the header announces {count} labels but {actual} bytes follow");
        return bytes.AsSpan(8).ToArray();
    }

    /// <summary>Writes images as an IDX3 file, gzip-compressed when <paramref name="gzip"/>.</summary>
    /// <param name="path">The file to create (overwritten).</param>
    /// <param name="images">The images.</param>
    /// <param name="gzip">Whether to gzip the file.</param>
    public static void WriteImages(string path, IdxImages images, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Pixels.Length != (long)images.Count * images.Rows * images.Columns)
            throw new ArgumentException($"Expected {images.Count}x{images.Rows}x{images.Columns} pixels; got {images.Pixels.Length}.", nameof(images));
        var header = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(0), ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), images.Count);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), images.Rows);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), images.Columns);
        Write(path, header, images.Pixels, gzip);
    }

    /// <summary>Writes labels as an IDX1 file, gzip-compressed when <paramref name="gzip"/>.</summary>
    /// <param name="path">The file to create (overwritten).</param>
    /// <param name="labels">The labels, one byte each.</param>
    /// <param name="gzip">Whether to gzip the file.</param>
    public static void WriteLabels(string path, byte[] labels, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var header = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(0), LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), labels.Length);
        Write(path, header, labels, gzip);
    }

    private static void Write(string path, byte[] header, byte[] data, bool gzip)
    {
        using var file = File.Create(path);
        using Stream stream = gzip ? new GZipStream(file, CompressionLevel.SmallestSize) : file;
        stream.Write(header);
        stream.Write(data);
    }

    private static byte[] ReadContent(string path)
    {
        if (!File.Exists(path)) throw new DataFileException(path, "file not found");
        byte[] raw;
        try { raw = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataFileException(path, $"cannot be read: {e.Message}", e);
        }
        if (raw.Length < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
        try
        {
            using var gz = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var output = new MemoryStream();
            gz.CopyTo(output);
            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DataFileException(path, $"corrupt gzip data: {e.Message}", e);
        }
    }

    private static void CheckMagic(string path, byte[] bytes, int expected, string what)
    {
        if (bytes.Length < 4)
            throw new DataFileException(path, $"truncated: {bytes.Length} bytes, too short for an IDX header");
        int magic = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (magic != expected)
            throw new DataFileException(path, $"wrong magic number 0x{magic:x8}, expected 0x{expected:x8} for {what}");
    }

    private static int ReadSize(byte[] bytes, int offset, string path, string what)
    {
        int value = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(offset));
        if (value < 0) throw new DataFileException(path, $"corrupt: negative {what} {value} in the header");
        return value;
    }
}
