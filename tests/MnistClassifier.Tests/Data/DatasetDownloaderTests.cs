using System.Net;
using System.Security.Cryptography;
using MnistClassifier.Cli;
using MnistClassifier.Data;

namespace MnistClassifier.Tests.Data;

/// <summary>
/// The download path, tested with shipped files instead of the network: a handler serves the embedded subset's four
/// files (or errors) at the mirrors' URLs, and the data set's checksums are those files' own MD5s.
/// </summary>
public class DatasetDownloaderTests
{
    private static string EmbeddedDir => DataSource.EmbeddedDirectory;

    private static string Md5(string path) => Convert.ToHexStringLower(MD5.HashData(File.ReadAllBytes(path)));

    private static DownloadableDataset Served(params string[] mirrors) => new("test-set",
        mirrors.Select(m => new Uri(m)).ToArray(),
        MnistData.FileNames.ToDictionary(n => n + ".gz", n => Md5(Path.Combine(EmbeddedDir, n + ".gz"))),
        DataSource.FashionClassNames);

    /// <summary>Serves the embedded files under <c>good</c> mirrors; <c>broken</c> answers 404 and <c>corrupt</c> serves bytes that fail the checksum.</summary>
    private sealed class ShippedFilesHandler : HttpMessageHandler
    {
        public List<Uri> Requests { get; } = new();

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var uri = request.RequestUri!;
            Requests.Add(uri);
            var name = uri.Segments[^1];
            var path = Path.Combine(EmbeddedDir, name);
            if (uri.Host == "broken.example" || !File.Exists(path))
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound) { ReasonPhrase = "Not Found" });
            if (uri.Host == "offline.example")
                throw new HttpRequestException("Name or service not known (offline.example:443)");
            var bytes = File.ReadAllBytes(path);
            if (uri.Host == "corrupt.example") bytes = bytes.Take(bytes.Length / 2).ToArray();
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(bytes) });
        }
    }

    [Fact]
    public async Task DownloadsTheFourFilesChecksThemAndReadsThemBack()
    {
        using var dir = new TempDir();
        var handler = new ShippedFilesHandler();
        var lines = new List<string>();
        var target = Path.Combine(dir.Path, "mnist");
        var data = await new DatasetDownloader(new HttpClient(handler)).DownloadAsync(Served("https://good.example/data/"), target, lines.Add);

        data.Train.Count.Should().Be(TestData.Embedded.Train.Count);
        data.Test.Count.Should().Be(TestData.Embedded.Test.Count);
        data.Source.ClassNames.Should().Equal(DataSource.FashionClassNames);
        foreach (var n in MnistData.FileNames)
            File.ReadAllBytes(Path.Combine(target, n + ".gz")).Should().Equal(File.ReadAllBytes(Path.Combine(EmbeddedDir, n + ".gz")));
        Directory.GetFiles(target).Should().HaveCount(4, "no temporary file is left behind");
        handler.Requests.Select(u => u.ToString()).Should().Equal(MnistData.FileNames.Select(n => $"https://good.example/data/{n}.gz"));
        lines.Should().OnlyContain(l => l.Contains("downloaded from https://good.example/data/"));
    }

    [Fact]
    public async Task FilesAlreadyPresentWithTheRightChecksumAreKept()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(EmbeddedDir, MnistData.FileNames[1] + ".gz"), dir.File(MnistData.FileNames[1] + ".gz"));
        var handler = new ShippedFilesHandler();
        var lines = new List<string>();
        await new DatasetDownloader(new HttpClient(handler)).DownloadAsync(Served("https://good.example/"), dir.Path, lines.Add);
        handler.Requests.Should().HaveCount(3);
        handler.Requests.Should().NotContain(u => u.ToString().Contains(MnistData.FileNames[1]));
        lines.Should().Contain($"{MnistData.FileNames[1]}.gz: present, checksum matches");
    }

    [Fact]
    public async Task AFailingMirrorFallsBackToTheNext()
    {
        using var dir = new TempDir();
        var handler = new ShippedFilesHandler();
        var data = await new DatasetDownloader(new HttpClient(handler))
            .DownloadAsync(Served("https://broken.example/", "https://corrupt.example/", "https://offline.example/", "https://good.example/"), dir.Path);
        data.Train.Count.Should().Be(TestData.Embedded.Train.Count);
        handler.Requests.Should().HaveCount(16);
    }

    [Fact]
    public async Task EveryMirrorFailingGivesOneMessageNamingTheFileAndEachUrl()
    {
        using var dir = new TempDir();
        var downloader = new DatasetDownloader(new HttpClient(new ShippedFilesHandler()));
        var act = () => downloader.DownloadAsync(Served("https://broken.example/", "https://corrupt.example/", "https://offline.example/"), dir.Path);
        var e = (await act.Should().ThrowAsync<DataFileException>()).Which;
        e.FilePath.Should().Be(dir.File(MnistData.FileNames[0] + ".gz"));
        e.Problem.Should().Contain("https://broken.example/train-images-idx3-ubyte.gz: HTTP 404 Not Found")
            .And.Contain("https://corrupt.example/train-images-idx3-ubyte.gz: MD5 ")
            .And.Contain("https://offline.example/train-images-idx3-ubyte.gz: Name or service not known");
        Directory.GetFiles(dir.Path).Should().BeEmpty("a file that failed its checksum is not kept");
    }

    [Fact]
    public void TheCommandPrintsTheSummaryAndAnUnknownDataSetIsAClearError()
    {
        using var dir = new TempDir();
        var (console, writer) = PlainConsole.Create(300);
        // The command's own data sets point at the internet; only the unknown-name path runs here without it.
        CommandLineApp.Guard(console, () => DownloadCommand.Execute("cifar", dir.Path, console, new HttpClient(new ShippedFilesHandler())))
            .Should().Be(1);
        writer.ToString().Should().Contain("Unknown data set 'cifar'; expected one of: mnist, fashion-mnist.");
        DownloadableDataset.Get("MNIST").Should().BeSameAs(DownloadableDataset.Mnist);
        DownloadableDataset.Mnist.Md5.Keys.Should().BeEquivalentTo(MnistData.FileNames.Select(n => n + ".gz"));
        DownloadableDataset.FashionMnist.Md5.Keys.Should().BeEquivalentTo(MnistData.FileNames.Select(n => n + ".gz"));
    }
}
