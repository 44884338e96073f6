using System.Security.Cryptography;

namespace MnistClassifier.Data;

/// <summary>A data set that <see cref="DatasetDownloader"/> can fetch: where its four gzipped IDX files live and their MD5s.</summary>
/// <param name="Name">The name on the command line.</param>
/// <param name="Mirrors">Base URLs, tried in order for each file.</param>
/// <param name="Md5">The MD5 of each published <c>.gz</c> file, by file name.</param>
/// <param name="ClassNames">The names of the ten classes, in label order.</param>
public sealed record DownloadableDataset(string Name, IReadOnlyList<Uri> Mirrors, IReadOnlyDictionary<string, string> Md5,
    IReadOnlyList<string> ClassNames)
{
    /// <summary>
    /// MNIST: the mirror torchvision uses first, then Yann LeCun's original site; the MD5s of the published files
    /// (as listed in torchvision's <c>MNIST.resources</c>).
    /// </summary>
    public static readonly DownloadableDataset Mnist = new("mnist",
        new[] { new Uri("https://ossci-datasets.s3.amazonaws.com/mnist/"), new Uri("http://yann.lecun.com/exdb/mnist/") },
        new Dictionary<string, string>
        {
            ["train-images-idx3-ubyte.gz"] = "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ["train-labels-idx1-ubyte.gz"] = "d53e105ee54ea40749a09fcbcd1e9432",
            ["t10k-images-idx3-ubyte.gz"] = "9fb629c4189551a2d022fa330f9573f3",
            ["t10k-labels-idx1-ubyte.gz"] = "ec29112dd5afa0611ce80d1b7f02629c",
        },
        DataSource.DigitClassNames);

    /// <summary>
    /// Fashion-MNIST (MIT licence, Zalando Research): its S3 site, then its GitHub repository; the MD5s of the published
    /// files (as in torchvision's <c>FashionMNIST.resources</c>). Debian's <c>dataset-fashion-mnist</c> recompresses the
    /// same images, so its <c>.gz</c> files have other checksums; the program reads them without a download.
    /// </summary>
    public static readonly DownloadableDataset FashionMnist = new("fashion-mnist",
        new[]
        {
            new Uri("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
            new Uri("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        },
        new Dictionary<string, string>
        {
            ["train-images-idx3-ubyte.gz"] = "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ["train-labels-idx1-ubyte.gz"] = "25c81989df183df01b3e8a0aad5dffbe",
            ["t10k-images-idx3-ubyte.gz"] = "bef4ecab320f06d8554ea6380940ec79",
            ["t10k-labels-idx1-ubyte.gz"] = "bb300cfdad3c16e7a12a480ee83cd310",
        },
        DataSource.FashionClassNames);

    /// <summary>The data sets by name.</summary>
    public static readonly IReadOnlyList<DownloadableDataset> All = new[] { Mnist, FashionMnist };

    /// <summary>The data set named <paramref name="name"/> (case-insensitive).</summary>
    /// <param name="name">The name.</param>
    public static DownloadableDataset Get(string name) =>
        All.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown data set '{name}'; expected one of: {string.Join(", ", All.Select(d => d.Name))}.", nameof(name));
}

/// <summary>
/// Downloads an MNIST-style data set's four gzipped IDX files into a directory, so that <c>--data DIR</c> can read it.
/// Each file is fetched from the first mirror that serves it, written to a temporary name, checked against its
/// published MD5 and only then renamed into place; a file already present with the right checksum is kept. Finally
/// the four files are read back with the IDX reader (<see cref="MnistData.Load"/>), so a download that passed yields
/// a loadable data set. Every failure is a <see cref="DataFileException"/> naming the file and, for the network, the URL.
/// </summary>
public sealed class DatasetDownloader
{
    private readonly HttpClient _http;

    /// <summary>Creates the downloader.</summary>
    /// <param name="http">The HTTP client (tests pass one whose handler serves local files).</param>
    public DatasetDownloader(HttpClient http)
    {
        ArgumentNullException.ThrowIfNull(http);
        _http = http;
    }

    /// <summary>Downloads <paramref name="dataset"/> into <paramref name="directory"/> (created if needed).</summary>
    /// <param name="dataset">What to download.</param>
    /// <param name="directory">The target directory.</param>
    /// <param name="report">Called with one line per file (downloaded from where, or kept).</param>
    /// <param name="cancellation">Cancels the download.</param>
    /// <returns>The data set, read back from <paramref name="directory"/>.</returns>
    public async Task<MnistData> DownloadAsync(DownloadableDataset dataset, string directory, Action<string>? report = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var full = Path.GetFullPath(directory);
        Directory.CreateDirectory(full);
        foreach (var baseName in MnistData.FileNames)
        {
            var name = baseName + ".gz";
            if (!dataset.Md5.TryGetValue(name, out var md5))
                throw new ArgumentException($"The data set '{dataset.Name}' lists no checksum for {name}.", nameof(dataset));
            var target = Path.Combine(full, name);
            if (File.Exists(target) && await Md5Of(target, cancellation) == md5)
            {
                report?.Invoke($"{name}: present, checksum matches");
                continue;
            }
            var source = await FetchAsync(dataset, name, md5, target, cancellation);
            report?.Invoke($"{name}: downloaded from {source}");
        }
        return MnistData.Load(new DataSource(full, $"{dataset.Name} in {full}", dataset.ClassNames));
    }

    private async Task<Uri> FetchAsync(DownloadableDataset dataset, string name, string md5, string target, CancellationToken cancellation)
    {
        var failures = new List<string>();
        foreach (var mirror in dataset.Mirrors)
        {
            var url = new Uri(mirror, name);
            var temporary = target + ".part";
            try
            {
                using (var response = await _http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellation))
                {
                    if (!response.IsSuccessStatusCode)
                    {
                        failures.Add($"{url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
                        continue;
                    }
                    await using var body = await response.Content.ReadAsStreamAsync(cancellation);
                    await using var file = File.Create(temporary);
                    await body.CopyToAsync(file, cancellation);
                }
                var actual = await Md5Of(temporary, cancellation);
                if (actual != md5)
                {
                    failures.Add($"{url}: MD5 {actual}, expected {md5}");
                    continue;
                }
                File.Move(temporary, target, overwrite: true);
                return url;
            }
            catch (HttpRequestException e)
            {
                failures.Add($"{url}: {e.Message}");
            }
            catch (TaskCanceledException e) when (!cancellation.IsCancellationRequested)
            {
                failures.Add($"{url}: timed out ({e.Message})");
            }
            finally
            {
                if (File.Exists(temporary)) File.Delete(temporary);
            }
        }
        throw new DataFileException(target, $"download failed from every mirror: {string.Join("; ", failures)}");
    }

    private static async Task<string> Md5Of(string path, CancellationToken cancellation)
    {
        await using var stream = File.OpenRead(path);
        var hash = await MD5.HashDataAsync(stream, cancellation);
        return Convert.ToHexStringLower(hash);
    }
}
