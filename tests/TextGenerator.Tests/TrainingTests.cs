using TextGenerator.Data;
using TextGenerator.Models;
using TextGenerator.Training;

namespace TextGenerator.Tests;

public class TrainingTests
{
    [Theory]
    [InlineData("lru")]
    [InlineData("deltanet")]
    [InlineData("gated-deltanet")]
    [InlineData("mamba2")]
    [InlineData("lstm")]
    public void A_short_run_lowers_the_loss(string name)
    {
        torch.random.manual_seed(0);
        var corpus = Corpus.Build(Documents.Split(Cli.Repetitive(60)), seed: 0);
        using var model = ModelCatalog.Create(name, 16, 1);
        var trainer = new Trainer(model, torch.CPU, new TrainSettings(Context: 32, Epochs: 2, BatchSize: 8, LearningRate: 1e-2, MaxSteps: 10, MaxNewTokens: 8));
        var results = trainer.Run(corpus);
        trainer.StepLosses.Should().HaveCount(20);
        trainer.StepLosses.Skip(17).Average().Should().BeLessThan(trainer.StepLosses.Take(3).Average() - 0.5, $"{name} should learn a repetitive text");
        results[^1].HeldOutNats.Should().BeLessThan(Math.Log(257), "below a uniform guess after training");
        results[0].BitsPerByte.Should().BeApproximately(results[0].HeldOutNats / Math.Log(2), 1e-12);
        results[0].Perplexity.Should().BeApproximately(Math.Exp(results[0].HeldOutNats), 1e-9);
    }

    [Theory]
    [InlineData("lru")]
    [InlineData("deltanet")]
    [InlineData("lstm")]
    public void The_command_line_runs_a_few_steps_and_reports_an_epoch(string name)
    {
        using var dir = new TempDir();
        var path = dir.File("t.txt");
        File.WriteAllText(path, Cli.Repetitive(40));
        var plot = dir.File("curves.png");
        var (code, output) = Cli.Run(null, "--text", path, "--model", name, "--max-steps", "5", "--hidden", "16", "--blocks", "1",
            "--context", "32", "--batch-size", "4", "--max-new-tokens", "20", "--plot", plot);
        code.Should().Be(0, output);
        output.Should().MatchRegex(@"epoch 1/1: step 5, train loss \d+\.\d+, held-out \d+\.\d+ bits/byte, perplexity \d+\.\d+, train \d+ tokens/s");
        output.Should().MatchRegex("generated \\(\\d+ tokens/s\\): \"The ");
        new FileInfo(plot).Length.Should().BeGreaterThan(1000);
    }

    [Theory]
    [InlineData("lru")]
    [InlineData("gru")]
    public void Save_then_load_generates_the_same_text_with_the_same_seed(string name)
    {
        using var dir = new TempDir();
        var path = dir.File("t.txt");
        File.WriteAllText(path, Cli.Repetitive(40));
        var model = dir.File("m.bin");
        var (code, trained) = Cli.Run(null, "--text", path, "--model", name, "--max-steps", "3", "--hidden", "16", "--blocks", "1",
            "--context", "32", "--max-new-tokens", "30", "--seed", "7", "--save", model);
        code.Should().Be(0, trained);
        File.Exists(model + ".json").Should().BeTrue();
        var (code2, loaded) = Cli.Run(null, "--text", path, "--load", model, "--epochs", "0", "--max-new-tokens", "30", "--seed", "7");
        code2.Should().Be(0, loaded);
        loaded.Should().Contain("(loaded from");
        Generated(loaded).Should().Be(Generated(trained)).And.StartWith("\"The ");
    }

    [Fact]
    public void Loading_a_missing_checkpoint_is_an_error()
    {
        using var dir = new TempDir();
        var path = dir.File("t.txt");
        File.WriteAllText(path, Cli.Repetitive(4));
        var (code, output) = Cli.Run(null, "--text", path, "--load", dir.File("none.bin"));
        code.Should().Be(1);
        output.Trim().Should().Be($"error: --load {dir.File("none.bin")}: no such file");
    }

    private static string Generated(string output) =>
        output.Split('\n').Last(l => l.StartsWith("generated", StringComparison.Ordinal)) is var line ? line[(line.IndexOf("): ", StringComparison.Ordinal) + 3)..].TrimEnd() : "";
}
