namespace MnistClassifier.Data;

/// <summary>
/// The training and test splits of an MNIST-style data set, read from a directory holding the four standard
/// IDX files (<c>train-images-idx3-ubyte</c>, <c>train-labels-idx1-ubyte</c>, <c>t10k-images-idx3-ubyte</c>,
/// <c>t10k-labels-idx1-ubyte</c>, each raw or with <c>.gz</c>).
/// </summary>
/// <param name="Train">The training split.</param>
/// <param name="Test">The test split.</param>
/// <param name="Source">Where the data came from.</param>
public sealed record MnistData(LabeledImages Train, LabeledImages Test, DataSource Source)
{
    /// <summary>The base names of the four files.</summary>
    public static readonly string[] FileNames =
    {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    };

    /// <summary>The path of <paramref name="baseName"/> in <paramref name="directory"/>, raw or <c>.gz</c>, or null.</summary>
    /// <param name="directory">The directory.</param>
    /// <param name="baseName">One of <see cref="FileNames"/>.</param>
    public static string? FindFile(string directory, string baseName)
    {
        foreach (var name in new[] { baseName + ".gz", baseName })
        {
            var path = Path.Combine(directory, name);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>Whether <paramref name="directory"/> holds all four files.</summary>
    /// <param name="directory">The directory.</param>
    public static bool HasAllFiles(string directory) =>
        Directory.Exists(directory) && FileNames.All(n => FindFile(directory, n) is not null);

    /// <summary>Reads both splits from <paramref name="source"/>'s directory.</summary>
    /// <param name="source">The data source.</param>
    public static MnistData Load(DataSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var dir = source.Directory;
        if (!Directory.Exists(dir)) throw new DataFileException(dir, "directory not found");
        string Need(string baseName) => FindFile(dir, baseName)
            ?? throw new DataFileException(Path.Combine(dir, baseName), "file not found (looked for it raw and with .gz)");
        var train = LabeledImages.Read(Need(FileNames[0]), Need(FileNames[1]));
        var test = LabeledImages.Read(Need(FileNames[2]), Need(FileNames[3]));
        if (train.Images.Rows != test.Images.Rows || train.Images.Columns != test.Images.Columns)
            throw new DataFileException(Need(FileNames[2]),
                $"images are {test.Images.Rows}x{test.Images.Columns} but the training images are {train.Images.Rows}x{train.Images.Columns}");
        return new MnistData(train, test, source);
    }
}
