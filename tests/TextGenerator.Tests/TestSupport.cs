using System.Runtime.CompilerServices;
using Spectre.Console;

namespace TextGenerator.Tests;

/// <summary>Process-wide setup of the test assembly.</summary>
public static class TestSetup
{
    /// <summary>One intra-op thread: tiny tensors, tests running in parallel on 2 shared cores.</summary>
    [ModuleInitializer]
    public static void Init() => torch.set_num_threads(1);
}

/// <summary>A fresh temporary directory, deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "textgen-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A Spectre console without colours or interaction, writing into a string.</summary>
public static class PlainConsole
{
    public static (IAnsiConsole Console, StringWriter Output) Create(int width = 200)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = width;
        return (console, writer);
    }
}

/// <summary>Runs the command line into a string.</summary>
public static class Cli
{
    /// <summary>The exit code and everything written (output and errors), with a fortunes folder that does not exist unless given.</summary>
    public static (int Code, string Output) Run(string? fortunes, params string[] args)
    {
        var (console, output) = PlainConsole.Create();
        int code = TextGenerator.Cli.CommandLineApp.Run(args, console, console, fortunes ?? "/nonexistent/fortunes-" + Guid.NewGuid().ToString("N"));
        return (code, output.ToString());
    }

    /// <summary>A small repetitive text of %-separated records.</summary>
    public static string Repetitive(int records = 40) =>
        string.Concat(Enumerable.Range(0, records).Select(i => $"The cat sat on the mat. The cat sat on the mat.\n%\n"));
}
