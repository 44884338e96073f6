namespace MnistClassifier.Data;

/// <summary>
/// A set of grey-scale images as stored in an IDX3 file: <see cref="Count"/> images of
/// <see cref="Rows"/> x <see cref="Columns"/> bytes, row-major, one after the other (0 = background, 255 = ink).
/// </summary>
/// <param name="Count">The number of images N.</param>
/// <param name="Rows">The rows per image.</param>
/// <param name="Columns">The columns per image.</param>
/// <param name="Pixels">The N * Rows * Columns pixel bytes.</param>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels)
{
    /// <summary>The number of pixels of one image.</summary>
    public int PixelsPerImage => Rows * Columns;

    /// <summary>The pixels of image <paramref name="index"/>.</summary>
    /// <param name="index">The image index in [0, Count).</param>
    public ReadOnlySpan<byte> Image(int index)
    {
        if (index < 0 || index >= Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Expected an image index in [0, {Count}); got {index}.");
        return Pixels.AsSpan(index * PixelsPerImage, PixelsPerImage);
    }

    /// <summary>The images at the given indices, in that order, as a new set.</summary>
    /// <param name="indices">Image indices in [0, Count).</param>
    public IdxImages Select(IReadOnlyList<int> indices)
    {
        var pixels = new byte[indices.Count * PixelsPerImage];
        for (int i = 0; i < indices.Count; i++)
            Image(indices[i]).CopyTo(pixels.AsSpan(i * PixelsPerImage));
        return new IdxImages(indices.Count, Rows, Columns, pixels);
    }
}
