using MnistClassifier.Data;
using Spectre.Console;

namespace MnistClassifier.Cli;

/// <summary>
/// The hidden <c>make-subset</c> command that drew the embedded data: a class-balanced random subset of each split
/// (see <see cref="LabeledImages.BalancedSubset"/>), written as gzipped IDX files with the standard names.
/// </summary>
public static class MakeSubsetCommand
{
    /// <summary>The seed the committed subset was drawn with.</summary>
    public const ulong DefaultSeed = 20240607;

    /// <summary>Runs the command; returns the exit code.</summary>
    /// <param name="from">A directory with the four IDX files.</param>
    /// <param name="to">The output directory (created).</param>
    /// <param name="trainCount">Training images to draw (a multiple of 10).</param>
    /// <param name="testCount">Test images to draw (a multiple of 10).</param>
    /// <param name="seed">The seed.</param>
    /// <param name="console">Where to write.</param>
    public static int Execute(string from, string to, int trainCount, int testCount, ulong seed, IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        var data = MnistData.Load(new DataSource(Path.GetFullPath(from), from, DataSource.FashionClassNames));
        Directory.CreateDirectory(to);
        var train = data.Train.BalancedSubset(trainCount, seed);
        var test = data.Test.BalancedSubset(testCount, seed + 1);
        IdxFile.WriteImages(Path.Combine(to, MnistData.FileNames[0] + ".gz"), train.Images, gzip: true);
        IdxFile.WriteLabels(Path.Combine(to, MnistData.FileNames[1] + ".gz"), train.Labels, gzip: true);
        IdxFile.WriteImages(Path.Combine(to, MnistData.FileNames[2] + ".gz"), test.Images, gzip: true);
        IdxFile.WriteLabels(Path.Combine(to, MnistData.FileNames[3] + ".gz"), test.Labels, gzip: true);
        console.MarkupLineInterpolated($"wrote {train.Count} training and {test.Count} test images (seed {seed}) to {to}");
        return 0;
    }
}
