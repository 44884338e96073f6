namespace MnistClassifier.Data;

/// <summary>Where the data comes from.</summary>
/// <param name="Directory">The directory with the four IDX files.</param>
/// <param name="Description">A short description for the user (e.g. "embedded Fashion-MNIST subset").</param>
/// <param name="ClassNames">The names of the ten classes.</param>
public sealed record DataSource(string Directory, string Description, IReadOnlyList<string> ClassNames)
{
    /// <summary>Fashion-MNIST's class names, in label order.</summary>
    public static readonly IReadOnlyList<string> FashionClassNames = new[]
    {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    };

    /// <summary>MNIST's class names (the digits), in label order.</summary>
    public static readonly IReadOnlyList<string> DigitClassNames = Enumerable.Range(0, 10).Select(i => i.ToString()).ToArray();

    /// <summary>The directory where Debian's <c>dataset-fashion-mnist</c> package installs the data set.</summary>
    public const string DebianDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>The directory of the embedded subset, next to the program.</summary>
    public static string EmbeddedDirectory => Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist-subset");

    /// <summary>
    /// Chooses the data: <paramref name="dataDirectory"/> when given; else <paramref name="debianDirectory"/> when it
    /// holds the four files; else <paramref name="embeddedDirectory"/>.
    /// </summary>
    /// <param name="dataDirectory">The user's <c>--data</c>, or null.</param>
    /// <param name="debianDirectory">Debian's install directory (a parameter for tests).</param>
    /// <param name="embeddedDirectory">The embedded subset's directory (null: <see cref="EmbeddedDirectory"/>).</param>
    public static DataSource Resolve(string? dataDirectory, string? debianDirectory = DebianDirectory, string? embeddedDirectory = null)
    {
        if (!string.IsNullOrEmpty(dataDirectory))
        {
            var full = Path.GetFullPath(dataDirectory);
            if (!System.IO.Directory.Exists(full)) throw new DataFileException(full, "directory not found (given with --data)");
            bool fashion = full.Contains("fashion", StringComparison.OrdinalIgnoreCase);
            return new DataSource(full, $"{full} (--data)", fashion ? FashionClassNames : DigitClassNames);
        }
        if (debianDirectory is not null && MnistData.HasAllFiles(debianDirectory))
            return new DataSource(debianDirectory, $"full Fashion-MNIST from Debian's dataset-fashion-mnist ({debianDirectory})", FashionClassNames);
        var embedded = embeddedDirectory ?? EmbeddedDirectory;
        if (!MnistData.HasAllFiles(embedded))
            throw new DataFileException(embedded, "the embedded Fashion-MNIST subset is missing; pass --data DIR with the four IDX files");
        return new DataSource(embedded, "embedded Fashion-MNIST subset (6,000 train / 1,000 test, class-balanced)", FashionClassNames);
    }
}
