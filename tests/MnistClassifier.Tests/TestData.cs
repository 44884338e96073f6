using MnistClassifier.Data;

namespace MnistClassifier.Tests;

/// <summary>Small data sets the tests make themselves, and the embedded subset.</summary>
public static class TestData
{
    private static readonly Lazy<MnistData> embedded = new(() =>
        MnistData.Load(DataSource.Resolve(null, debianDirectory: null)));

    /// <summary>The embedded Fashion-MNIST subset, as the program finds it next to its binary.</summary>
    public static MnistData Embedded => embedded.Value;

    /// <summary>n images of rows x cols whose pixel (i, p) is (31 i + 7 p) mod 256, and labels i mod 10.</summary>
    public static (IdxImages Images, byte[] Labels) Synthetic(int n, int rows = 4, int cols = 3)
    {
        var pixels = new byte[n * rows * cols];
        for (int i = 0; i < n; i++)
            for (int p = 0; p < rows * cols; p++)
                pixels[i * rows * cols + p] = (byte)((31 * i + 7 * p) % 256);
        return (new IdxImages(n, rows, cols, pixels), Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray());
    }

    /// <summary>Writes the four files of a synthetic data set into dir (gzipped or raw).</summary>
    public static void WriteSet(string dir, int trainCount, int testCount, bool gzip)
    {
        string ext = gzip ? ".gz" : "";
        var (trainImages, trainLabels) = Synthetic(trainCount, 28, 28);
        var (testImages, testLabels) = Synthetic(testCount, 28, 28);
        IdxFile.WriteImages(Path.Combine(dir, MnistData.FileNames[0] + ext), trainImages, gzip);
        IdxFile.WriteLabels(Path.Combine(dir, MnistData.FileNames[1] + ext), trainLabels, gzip);
        IdxFile.WriteImages(Path.Combine(dir, MnistData.FileNames[2] + ext), testImages, gzip);
        IdxFile.WriteLabels(Path.Combine(dir, MnistData.FileNames[3] + ext), testLabels, gzip);
    }
}
