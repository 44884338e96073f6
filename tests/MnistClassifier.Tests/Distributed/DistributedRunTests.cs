using System.Text.RegularExpressions;
using Discretax.Distributed.Tests;

namespace MnistClassifier.Tests.Distributed;

/// <summary>
/// The sample's <c>--distributed</c> run as users start it, <c>mpirun --oversubscribe -np 2 dotnet MnistClassifier.dll
/// --distributed ...</c> (<see cref="MpiLauncher"/>; skipped with the reason where Open MPI's mpirun is absent): the two
/// processes train together and only rank 0 reports and writes. Never in this process: MPI is initialized once per
/// process and would stay initialized in the test host.
/// </summary>
[Collection("MPI jobs")]
public sealed class DistributedRunTests
{
    [SkippableFact]
    public void TwoProcessesTrainTogetherAndOnlyRankZeroReportsAndWrites()
    {
        Skip.If(MpiLauncher.SkipReason is not null, MpiLauncher.SkipReason);
        using var dir = new TempDir();
        string metrics = Path.Combine(dir.Path, "m.csv"), save = Path.Combine(dir.Path, "c.pt");
        var (code, timedOut, _, output) = MpiLauncher.Start("MnistClassifier.dll",
            ["--distributed", "--data", TestData.Embedded.Source.Directory, "--limit", "256", "--epochs", "2", "--hidden", "8", "--blocks", "1",
             "--metrics", metrics, "--save", save], TimeSpan.FromSeconds(120));
        timedOut.Should().BeFalse(output);
        code.Should().Be(0, output);
        // One report (rank 0's), plain lines without terminal control codes although mpirun gives each process a pseudo-terminal.
        Regex.Matches(output, "^data: ", RegexOptions.Multiline).Should().HaveCount(1, output);
        output.Should().Contain("processes: 2 over MPI (Open MPI").And.Contain("each trains on its shard of 128 images per epoch, 32 of every batch of 64");
        Regex.Matches(output, @"^epoch \d/2 ", RegexOptions.Multiline).Should().HaveCount(2, output);
        output.Should().NotContain("\u001b");
        File.ReadAllLines(metrics).Should().HaveCount(3, "a header and two epochs");
        File.Exists(save).Should().BeTrue();
    }

    [SkippableFact]
    public void AnOptionErrorEndsTheWholeJobWithAnError()
    {
        Skip.If(MpiLauncher.SkipReason is not null, MpiLauncher.SkipReason);
        var (code, timedOut, _, output) = MpiLauncher.Start("MnistClassifier.dll",
            ["--distributed", "--data", TestData.Embedded.Source.Directory, "--limit", "64", "--epochs", "1", "--batch-size", "63"], TimeSpan.FromSeconds(60));
        timedOut.Should().BeFalse(output);
        code.Should().NotBe(0, output);
        output.Should().Contain("error: --batch-size 63 must be a multiple of the 2 processes of --distributed");
    }
}
