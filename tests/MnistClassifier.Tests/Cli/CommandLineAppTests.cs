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

    [Fact]
    public void Bad_option_values_are_refused_by_the_parser()
    {
        Run("--model", "nope").Code.Should().NotBe(0);
        Run("--layout", "columns").Code.Should().NotBe(0);
        Run("--epochs", "0").Code.Should().NotBe(0);
        Run("--device", "tpu").Code.Should().NotBe(0);
        var (code, output) = Run("--lr", "-1");
        code.Should().Be(1);
        output.Trim().Should().Be("error: Expected a positive learning rate; got -1.");
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

    [SkippableFact]
    public void Cuda_request_without_cuda_falls_back_with_a_message()
    {
        Skip.If(torch.cuda.is_available(), "CUDA is available here");
        string? message = null;
        var device = DeviceChoice.Resolve("cuda", torch.cuda.is_available(), m => message = m);
        device.type.Should().Be(DeviceType.CPU);
        message.Should().Contain("CUDA is not available").And.Contain("uses the CPU");
        DeviceChoice.Resolve("auto", false, _ => throw new InvalidOperationException("no message expected")).type.Should().Be(DeviceType.CPU);
    }
}
