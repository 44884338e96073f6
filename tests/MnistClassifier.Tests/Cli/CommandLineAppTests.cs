using SampleSupport;
using MnistClassifier.Cli;
using MnistClassifier.Models;

using Spectre.Console;

namespace MnistClassifier.Tests.Cli;

public class CommandLineAppTests
{
    private static (int Code, string Output) Run(params string[] args)
    {
        var (console, writer) = PlainConsole.Create();
        int code = CommandLineApp.Run(args, console);
        return (code, writer.ToString());
    }

    [Fact]
    public void Corrupt_data_gives_one_line_naming_the_file_and_no_stack_trace()
    {
        using var dir = new TempDir();
        TestData.WriteSet(dir.Path, 20, 10, gzip: false);
        var images = Path.Combine(dir.Path, "t10k-images-idx3-ubyte");
        File.WriteAllBytes(images, File.ReadAllBytes(images)[..1000]);
        var (code, output) = Run("--data", dir.Path, "--epochs", "1");
        code.Should().Be(1);
        output.Trim().Should().Be($"error: {images}: truncated: the header announces 10 images of 28x28 (7840 bytes) but only 984 bytes follow");
    }

    [Fact]
    public void Missing_data_directory_and_eval_only_without_checkpoint_are_one_line_errors()
    {
        var (code, output) = Run("--data", "/no/such/dir");
        code.Should().Be(1);
        output.Trim().Should().Be("error: /no/such/dir: directory not found (given with --data)");
        (code, output) = Run("--eval-only");
        code.Should().Be(1);
        output.Trim().Should().StartWith("error: --eval-only needs --load PATH");
    }

    private const string Hint = "hint: --help lists the options and their defaults";

    // Every bad value: exit code 1, "error: OPTION VALUE ..." naming the option as typed, then the hint, and nothing
    // else (no stack trace, no help). None of these reads the data or trains.
    [Theory]
    [InlineData("error: --epochs abc must be a whole number of at least 1", "--epochs", "abc")]
    [InlineData("error: --batch-size abc must be a whole number of at least 1", "--batch-size", "abc")]
    [InlineData("error: --limit abc must be a whole number of at least 1", "--limit", "abc")]
    [InlineData("error: --hidden 1.5 must be a whole number of at least 1", "--hidden", "1.5")]
    [InlineData("error: --blocks x must be a whole number of at least 1", "--blocks", "x")]
    [InlineData("error: --threads x must be a whole number of at least 1", "--threads", "x")]
    [InlineData("error: --epochs 0 must be at least 1", "--epochs", "0")]
    [InlineData("error: --hidden -3 must be at least 1", "--hidden", "-3")]
    [InlineData("error: --seed x must be a whole number", "--seed", "x")]
    [InlineData("error: --lr -1 must be a positive number", "--lr", "-1")]
    [InlineData("error: --lr abc must be a number (a positive number)", "--lr", "abc")]
    [InlineData("error: --weight-decay -0.1 must be at least 0", "--weight-decay", "-0.1")]
    [InlineData("error: --clip -1 must be at least 0 (0: no clipping)", "--clip", "-1")]
    [InlineData("error: --dropout 1 must be in [0, 1)", "--dropout", "1")]
    [InlineData("error: --model nope must be one of: lru, deltanet, gated-deltanet, mamba2, s4d, mlstm, linoss, s5, conv-baseline", "--model", "nope")]
    [InlineData("error: -m nope must be one of: lru, deltanet, gated-deltanet, mamba2, s4d, mlstm, linoss, s5, conv-baseline", "-m", "nope")]
    [InlineData("error: --layout columns must be one of: rows, pixels, permuted", "--layout", "columns")]
    [InlineData("error: --device tpu must be one of: auto, cpu, cuda", "--device", "tpu")]
    [InlineData("error: --foo is not an option or command here", "--foo")]
    [InlineData("error: --epochs needs a value", "--epochs")]
    [InlineData("error: --eval-only needs --load PATH (a checkpoint saved with --save)", "--eval-only")]
    [InlineData("error: --plot curves.jpg must end in .png", "--plot", "curves.jpg")]
    [InlineData("error: --metrics m.txt must end in .csv or .json", "--metrics", "m.txt")]
    public void A_bad_option_value_is_one_error_line_naming_the_option_then_a_hint(string expected, params string[] args)
    {
        var (code, output) = Run(args);
        code.Should().Be(1);
        output.TrimEnd().Split('\n').Should().Equal(expected, Hint);
    }

    [Fact]
    public void A_subcommands_bad_value_points_to_its_own_help()
    {
        var (code, output) = Run("predict", "--load", "x.pt", "--image", "-1");
        code.Should().Be(1);
        output.TrimEnd().Split('\n').Should().Equal("error: --image -1 must be at least 0", "hint: predict --help lists the options and their defaults");
        (code, output) = Run("predict");
        code.Should().Be(1);
        output.TrimEnd().Split('\n')[0].Should().Be("error: --load is required");
    }

    [Fact]
    public void Values_are_accepted_in_any_case_and_help_still_wins_over_a_bad_value()
    {
        var writer = new StringWriter();
        var result = CommandLineApp.Build(AnsiConsole.Console).Parse(new[] { "--model", "DeltaNet", "--layout", "PIXELS" });
        result.Errors.Should().BeEmpty();
        result.GetValue<string>("--model").Should().Be("deltanet");
        result.GetValue<string>("--layout").Should().Be("pixels");
        result.GetValue<string>("--device").Should().Be("auto", "auto is the default device");
        result = CommandLineApp.Build(AnsiConsole.Console).Parse(new[] { "--help", "--epochs", "abc" });
        result.InvocationConfiguration.Output = writer;
        result.Invoke().Should().Be(0);
        writer.ToString().Should().Contain("--epochs");
    }

    [Fact]
    public void The_librarys_refusal_of_a_hidden_size_names_the_option()
    {
        var (code, output) = Run("--data", TestData.Embedded.Source.Directory, "--limit", "8", "--model", "deltanet", "--hidden", "7", "--epochs", "1");
        code.Should().Be(1);
        output.TrimEnd().Split('\n').Should().Equal("error: --hidden 7 must be divisible by the heads (4) of deltanet", Hint);
    }

    [Fact]
    public void An_unwritable_save_path_fails_before_the_data_is_read_or_training_starts()
    {
        using var dir = new TempDir();
        var file = dir.File("not-a-folder");
        File.WriteAllText(file, "x");
        var save = Path.Combine(file, "model.pt");
        // --data names a missing directory: had the run got as far as the data, the error would name it instead.
        var (code, output) = Run("--data", "/no/such/dir", "--save", save);
        code.Should().Be(1);
        output.TrimEnd().Split('\n').Should().Equal($"error: --save {save} cannot be written: {file} is a file, not a folder", Hint);
        (code, output) = Run("--data", "/no/such/dir", "--save", dir.Path);
        code.Should().Be(1);
        output.TrimEnd().Split('\n')[0].Should().Be($"error: --save {dir.Path} is a folder; give a file name");
        (code, output) = Run("--data", "/no/such/dir", "--plot", Path.Combine(file, "c.png"));
        code.Should().Be(1);
        output.TrimEnd().Split('\n')[0].Should().Be($"error: --plot {Path.Combine(file, "c.png")} cannot be written: {file} is a file, not a folder");
        (code, output) = Run("--data", "/no/such/dir", "--metrics", Path.Combine(file, "m.csv"));
        code.Should().Be(1);
        output.TrimEnd().Split('\n')[0].Should().StartWith($"error: --metrics {Path.Combine(file, "m.csv")} cannot be written");
        Directory.EnumerateFileSystemEntries(dir.Path).Should().Equal(file);
    }

    [Fact]
    public void The_save_check_leaves_no_file_behind_and_keeps_an_existing_one()
    {
        using var dir = new TempDir();
        var fresh = dir.File("runs/a.pt");
        OutputPath.CheckWritable("--save", fresh);
        File.Exists(fresh).Should().BeFalse();
        var existing = dir.File("b.pt");
        File.WriteAllText(existing, "weights");
        OutputPath.CheckWritable("--save", existing);
        File.ReadAllText(existing).Should().Be("weights");
    }

    [SkippableFact]
    public void Cuda_without_cuda_is_an_error_before_the_data_is_read()
    {
        Skip.If(torch.cuda.is_available(), "CUDA is available here");
        var (code, output) = Run("--device", "cuda", "--data", "/no/such/dir");
        code.Should().Be(1);
        var lines = output.TrimEnd().Split('\n');
        lines[0].Should().StartWith("error: --device cuda: CUDA is not available here");
        lines.Should().HaveCount(2).And.EndWith(Hint);
    }

    [Fact]
    public void Train_save_predict_eval_only_and_mismatched_load_end_to_end()
    {
        using var dir = new TempDir();
        var checkpoint = dir.File("conv.pt");
        var metrics = dir.File("m.json");
        var plot = dir.File("curves.png");
        var (code, output) = Run("--data", TestData.Embedded.Source.Directory, "--limit", "64", "--epochs", "2", "--hidden", "8", "--blocks", "1",
            "--batch-size", "32", "--save", checkpoint, "--metrics", metrics, "--plot", plot, "--threads", "1");
        code.Should().Be(0, output);
        output.Should().Contain("64 training, 1,000 test images").And.Contain("epoch 2/2").And.Contain("Test accuracy per class")
            .And.Contain("Confusion matrix").And.Contain("Ankle boot");
        File.Exists(checkpoint).Should().BeTrue();
        File.ReadAllText(metrics).Should().Contain("\"epoch\": 2");
        File.ReadAllBytes(plot).Take(4).Should().Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' });

        (code, output) = Run("predict", "--load", checkpoint, "--image", "3", "--data", TestData.Embedded.Source.Directory);
        code.Should().Be(0, output);
        output.Should().Contain("test image 3").And.Contain("true class:").And.Contain("Top 3 classes");

        (code, output) = Run("--load", checkpoint, "--eval-only", "--data", TestData.Embedded.Source.Directory);
        code.Should().Be(0, output);
        output.Should().Contain("test accuracy").And.Contain("loaded from");

        (code, output) = Run("--load", checkpoint, "--eval-only", "--hidden", "32", "--data", TestData.Embedded.Source.Directory);
        code.Should().Be(1);
        output.Trim().Should().Be($"error: {checkpoint}: was saved with --hidden 8, but --hidden 32 was asked for; drop --hidden or use a matching checkpoint");
    }

    [Fact]
    public void Help_lists_every_registered_model()
    {
        var writer = new StringWriter();
        var root = CommandLineApp.Build(AnsiConsole.Console);
        var result = root.Parse("--help");
        result.InvocationConfiguration.Output = writer;
        result.Invoke().Should().Be(0);
        foreach (var name in ModelCatalog.Names) writer.ToString().Should().Contain(name);
    }

    [Fact]
    public void Device_auto_takes_cuda_when_available_and_says_so_cuda_without_it_is_refused()
    {
        DeviceChoice.Default.Should().Be("auto");
        var (device, description) = DeviceChoice.Resolve("auto", cudaAvailable: false);
        device.type.Should().Be(DeviceType.CPU);
        description.Should().Be("cpu (auto: CUDA not available)");
        var (cuda, said) = DeviceChoice.Resolve("auto", cudaAvailable: true);
        cuda.type.Should().Be(DeviceType.CUDA);
        said.Should().Be("cuda (auto: CUDA available)");
        DeviceChoice.Resolve("cpu", cudaAvailable: true).Device.type.Should().Be(DeviceType.CPU);
        var act = () => DeviceChoice.Resolve("cuda", cudaAvailable: false);
        act.Should().Throw<OptionException>().Which.Option.Should().Be("--device");
    }

    [Theory]
    [InlineData("numBlocks", "--blocks 2 is refused by s5: too many")]
    [InlineData("inFeatures", "--hidden 7 is refused by s5: too many")]
    [InlineData("dropRate", "--dropout 0.1 is refused by s5: too many")]
    [InlineData("stateDim", "--model s5 refuses --hidden 7 --blocks 2: too many")]
    [InlineData("numHeads", "--hidden 7 must be divisible by the heads of s5")]
    [InlineData("headDim", "--model s5 refuses --hidden 7 --blocks 2: too many")]
    [InlineData("Block", "--block library does not apply to s5: too many")]
    public void Library_errors_are_told_in_terms_of_the_options(string paramName, string expected)
    {
        var spec = new NetworkSpec("s5", MnistClassifier.Data.SequenceLayout.Rows, 7, 2, 0.1, 28, 28);
        LibraryErrors.Translate(new ArgumentException("too many", paramName), spec).Message.Should().Be(expected);
    }

    // Redirected output (a log file, CI) in 80 columns: plain lines that are never wrapped, tables that fit.
    [Fact]
    public void A_plain_console_gets_unwrapped_lines_and_singular_counts()
    {
        var (console, writer) = PlainConsole.Create(width: 80);
        int code = CommandLineApp.Run(new[] { "--data", TestData.Embedded.Source.Directory, "--limit", "32", "--epochs", "1", "--hidden", "8",
            "--blocks", "1", "--batch-size", "32", "--threads", "1" }, console);
        var output = writer.ToString();
        code.Should().Be(0, output);
        var lines = output.Split('\n');
        lines.Should().Contain("model: lru, rows (28 steps x 28), hidden 8, 1 block, dropout 0.1, 2,706 parameters");
        lines.Should().ContainSingle(l => l.StartsWith("device: ", StringComparison.Ordinal)).Which.Should().EndWith(", 1 thread")
            .And.Contain("(auto: CUDA");
        lines.Should().ContainSingle(l => l.StartsWith("training: ", StringComparison.Ordinal)).Which.Should().StartWith("training: 1 epoch, batch 32,");
        lines.Should().ContainSingle(l => l.StartsWith("epoch 1/1", StringComparison.Ordinal)).Which.Should()
            .MatchRegex(@"^epoch 1/1  train loss \d\.\d{4} acc \d+\.\d\d%  test loss \d\.\d{4} acc \d+\.\d\d%  \d+\.\d s, \d+ img/s, \d+ tok/s$")
            .And.Subject.Length.Should().BeGreaterThan(80, "the line is not wrapped at the console's width");
        lines.Should().NotContain(l => l.Trim('│', ' ', '\r') == "%");
        lines.Where(l => l.Contains('│') || l.Contains('╭')).Should().OnlyContain(l => l.Length <= 80);
    }
}
