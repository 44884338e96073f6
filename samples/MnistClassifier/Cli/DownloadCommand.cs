using MnistClassifier.Data;
using Spectre.Console;

namespace MnistClassifier.Cli;

/// <summary>
/// The <c>download</c> command: fetches MNIST (or Fashion-MNIST) into a directory for <c>--data</c>, on a machine
/// that is online (see <see cref="DatasetDownloader"/>).
/// </summary>
public static class DownloadCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    /// <param name="datasetName">The data set's name (<c>mnist</c> or <c>fashion-mnist</c>).</param>
    /// <param name="directory">The target directory.</param>
    /// <param name="console">Where to write.</param>
    /// <param name="http">The HTTP client; null creates one with a 10-minute timeout.</param>
    public static int Execute(string datasetName, string directory, IAnsiConsole console, HttpClient? http = null)
    {
        ArgumentNullException.ThrowIfNull(console);
        var dataset = DownloadableDataset.Get(datasetName);
        using var owned = http is null ? new HttpClient { Timeout = TimeSpan.FromMinutes(10) } : null;
        var downloader = new DatasetDownloader(http ?? owned!);
        var data = downloader.DownloadAsync(dataset, directory, line => console.MarkupLineInterpolated($"{line}"))
            .GetAwaiter().GetResult();
        console.MarkupLineInterpolated(
            $"{dataset.Name}: {data.Train.Count} training and {data.Test.Count} test images in {data.Source.Directory}; train with --data {data.Source.Directory}");
        return 0;
    }
}
