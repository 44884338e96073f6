using Spectre.Console;

namespace MnistClassifier.Tests;

/// <summary>A Spectre console without colours, ANSI codes or interaction, writing into a string.</summary>
public static class PlainConsole
{
    /// <summary>Creates the console and the writer that collects its output.</summary>
    /// <param name="width">The console width in characters.</param>
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
