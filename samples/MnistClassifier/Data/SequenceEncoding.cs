using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Data;

/// <summary>
/// Turns images into sequences for a <see cref="SequenceLayout"/>. A pixel value p in [0, 255] becomes the
/// feature <c>2 p / 255 - 1</c> in [-1, 1]. Rows: <c>x[n, t, f] = pixel(n, row t, column f)</c>, shape
/// <c>[N, rows, columns]</c>. Pixels: <c>x[n, t, 0] = pixel(n, t)</c> in row-major order, shape
/// <c>[N, rows * columns, 1]</c>. Permuted: <c>x[n, t, 0] = pixel(n, perm[t])</c> with the fixed permutation
/// <see cref="Permutation"/>.
/// </summary>
public static class SequenceEncoding
{
    /// <summary>The seed of the fixed permutation of the permuted layout (never change it: checkpoints depend on it).</summary>
    public const ulong PermutationSeed = 0x5EC_0E7CE;

    /// <summary>The sequence length L of a layout for images of <paramref name="rows"/> x <paramref name="columns"/>.</summary>
    /// <param name="layout">The layout.</param>
    /// <param name="rows">Rows per image.</param>
    /// <param name="columns">Columns per image.</param>
    public static int SequenceLength(SequenceLayout layout, int rows, int columns) =>
        layout == SequenceLayout.Rows ? rows : rows * columns;

    /// <summary>The features per step F of a layout for images with <paramref name="columns"/> columns.</summary>
    /// <param name="layout">The layout.</param>
    /// <param name="columns">Columns per image.</param>
    public static int Features(SequenceLayout layout, int columns) => layout == SequenceLayout.Rows ? columns : 1;

    /// <summary>The fixed permutation of <paramref name="length"/> pixel positions (the same on every run).</summary>
    /// <param name="length">The number of pixels.</param>
    public static int[] Permutation(int length)
    {
        var perm = Enumerable.Range(0, length).ToArray();
        new FixedRandom(PermutationSeed).Shuffle(perm);
        return perm;
    }

    /// <summary>The sequences of all images: a float32 tensor <c>[N, L, F]</c> on the CPU.</summary>
    /// <param name="images">The images.</param>
    /// <param name="layout">The layout.</param>
    public static Tensor ToTensor(IdxImages images, SequenceLayout layout)
    {
        ArgumentNullException.ThrowIfNull(images);
        int n = images.Count, p = images.PixelsPerImage;
        var values = new float[(long)n * p];
        int[]? perm = layout == SequenceLayout.Permuted ? Permutation(p) : null;
        for (int i = 0; i < n; i++)
        {
            var src = images.Image(i);
            var dst = values.AsSpan(i * p, p);
            for (int t = 0; t < p; t++)
                dst[t] = src[perm is null ? t : perm[t]] * (2f / 255f) - 1f;
        }
        long length = SequenceLength(layout, images.Rows, images.Columns);
        long features = Features(layout, images.Columns);
        return tensor(values, new long[] { n, length, features }, ScalarType.Float32);
    }

    /// <summary>The labels as an int64 tensor <c>[N]</c> on the CPU.</summary>
    /// <param name="labels">The labels.</param>
    public static Tensor LabelsToTensor(byte[] labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        return tensor(labels.Select(l => (long)l).ToArray(), ScalarType.Int64);
    }
}
