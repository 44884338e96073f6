namespace TextGenerator.Tests;

public class CommandLineTests
{
    [Fact]
    public void A_missing_text_file_is_one_error_line_and_exit_code_1()
    {
        var (code, output) = Cli.Run(null, "--text", "/nonexistent/corpus.txt");
        code.Should().Be(1);
        output.Trim().Should().Be("error: --text /nonexistent/corpus.txt: no such file");
    }

    [Fact]
    public void An_empty_text_file_is_an_error()
    {
        using var dir = new TempDir();
        var path = dir.File("empty.txt");
        File.WriteAllText(path, "\n\n  \n");
        var (code, output) = Cli.Run(null, "--text", path);
        code.Should().Be(1);
        output.Trim().Should().Be($"error: --text {path} is empty: it holds no text to train on");
    }

    [Fact]
    public void A_non_utf8_file_is_an_error()
    {
        using var dir = new TempDir();
        var path = dir.File("latin1.txt");
        File.WriteAllBytes(path, new byte[] { (byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'\n' });
        var (code, output) = Cli.Run(null, "--text", path);
        code.Should().Be(1);
        output.Should().StartWith($"error: --text {path} is not UTF-8 text (invalid byte sequence at byte 3)");
        output.Trim().Split('\n').Should().HaveCount(1);
    }

    [Fact]
    public void No_text_and_no_fortunes_folder_says_to_install_fortunes_or_pass_text()
    {
        var (code, output) = Cli.Run("/nonexistent/fortunes", "--max-steps", "1");
        code.Should().Be(1);
        var lines = output.Trim().Split('\n');
        lines[0].Should().Be("error: no --text FILE given and no fortunes in /nonexistent/fortunes");
        lines[1].Should().Contain("apt-get install fortunes").And.Contain("--text FILE");
    }

    [Fact]
    public void A_bad_option_value_names_the_option()
    {
        var (code, output) = Cli.Run(null, "--model", "transformer");
        code.Should().Be(1);
        output.Should().StartWith("error: --model transformer must be one of: lru, deltanet, gated-deltanet, mamba2, s4d, s5, linoss, mlstm, lstm, gru");
    }

    [SkippableFact]
    public void Cuda_without_cuda_is_an_error()
    {
        Skip.If(torch.cuda.is_available(), "CUDA is available here");
        using var dir = new TempDir();
        var path = dir.File("t.txt");
        File.WriteAllText(path, Cli.Repetitive(4));
        var (code, output) = Cli.Run(null, "--text", path, "--device", "cuda");
        code.Should().Be(1);
        output.Should().StartWith("error: --device cuda: CUDA is not available here");
    }

    [Fact]
    public void An_unwritable_save_path_fails_before_training()
    {
        using var dir = new TempDir();
        var path = dir.File("t.txt");
        File.WriteAllText(path, Cli.Repetitive(4));
        var (code, output) = Cli.Run(null, "--text", path, "--save", path + "/model.bin");
        code.Should().Be(1);
        output.Should().StartWith($"error: --save {path}/model.bin cannot be written").And.NotContain("epoch");
    }
}
