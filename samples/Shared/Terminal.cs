using Spectre.Console;

namespace SampleSupport;

/// <summary>
/// The consoles the program writes to, and its one rule for output: on an interactive terminal, Spectre's live
/// progress, panels and colours; otherwise (output redirected to a file or a pipe, as in CI) plain lines that are
/// never wrapped, so that each epoch is one line a script can grep.
/// </summary>
public static class Terminal
{
    /// <summary>The width a redirected output is rendered at: wide enough that no table or line is wrapped.</summary>
    public const int RedirectedWidth = 1000;

    /// <summary>A console on standard output: interactive only when standard output is a terminal.</summary>
    public static IAnsiConsole Stdout() => Create(Console.Out, Console.IsOutputRedirected);

    /// <summary>A console on standard error, for the error lines.</summary>
    public static IAnsiConsole Stderr() => Create(Console.Error, Console.IsErrorRedirected);

    /// <summary>A plain console on standard output, whatever standard output is (under <c>mpirun</c>, which gives each
    /// process a pseudo-terminal and forwards its lines: live progress would arrive as escape sequences).</summary>
    public static IAnsiConsole PlainStdout() => Create(Console.Out, redirected: true);

    /// <summary>A plain console that discards everything (the other ranks of a distributed run: only rank 0 reports).</summary>
    public static IAnsiConsole Discard() => Create(TextWriter.Null, redirected: true);

    /// <summary>Whether <paramref name="console"/> gets plain, unwrapped lines instead of live progress and panels.</summary>
    /// <param name="console">The console.</param>
    public static bool IsPlain(IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(console);
        return !console.Profile.Capabilities.Interactive;
    }

    /// <summary>
    /// Writes one line of markup: on a plain console without the markup and unwrapped, whatever the width; else
    /// through Spectre.
    /// </summary>
    /// <param name="console">The console.</param>
    /// <param name="markup">The line, in Spectre markup (escape user text with <see cref="Markup.Escape"/>).</param>
    public static void Line(IAnsiConsole console, string markup)
    {
        ArgumentNullException.ThrowIfNull(console);
        if (IsPlain(console)) console.Profile.Out.Writer.WriteLine(Markup.Remove(markup));
        else console.MarkupLine(markup);
    }

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
        });
        if (redirected) console.Profile.Width = RedirectedWidth;
        return console;
    }
}
