using SampleSupport;
using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;
using Spectre.Console;
using TextGenerator.Data;
using TextGenerator.Display;
using TextGenerator.Models;
using TextGenerator.Training;

namespace TextGenerator.Cli;

/// <summary>The command line (System.CommandLine): one root command that trains and generates.</summary>
public static class CommandLineApp
{
    /// <summary>
    /// Parses <paramref name="args"/> and runs; returns the exit code: 0, or 1 after one error line (<c>error: ...</c>)
    /// and possibly one hint line (<c>hint: ...</c>).
    /// </summary>
    /// <param name="args">The arguments.</param>
    /// <param name="console">Where to write (null: standard output).</param>
    /// <param name="error">Where to write errors (null: <paramref name="console"/> when given, else standard error).</param>
    public static int Run(string[] args, IAnsiConsole? console = null, IAnsiConsole? error = null) =>
        Run(args, console, error, Documents.DebianFortunes);

    /// <summary><see cref="Run(string[], IAnsiConsole?, IAnsiConsole?)"/> with another fortunes folder (for tests).</summary>
    internal static int Run(string[] args, IAnsiConsole? console, IAnsiConsole? error, string fortunesFolder)
    {
        error ??= console ?? Terminal.Stderr();
        console ??= Terminal.Stdout();
        var result = Build(console, error, fortunesFolder).Parse(args);
        if (result.Action is ParseErrorAction)
        {
            ReportOptionError(error, ParseErrorMessage(result.Errors[0].Message));
            return 1;
        }
        return result.Invoke();
    }

    /// <summary>One line for a parse error, starting with the option or word the user typed.</summary>
    /// <param name="message">System.CommandLine's message.</param>
    public static string ParseErrorMessage(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        message = Messages.OneLine(message);
        var m = Regex.Match(message, @"^Unrecognized command or argument '(.*)'\.$");
        if (m.Success) return $"{m.Groups[1].Value} is not an option here";
        m = Regex.Match(message, @"^Required argument missing for option: '(.*)'\.$");
        if (m.Success) return $"{m.Groups[1].Value} needs a value";
        return message;
    }

    private static void ReportOptionError(IAnsiConsole error, string message)
    {
        Terminal.Line(error, $"[red]error:[/] {Markup.Escape(message)}");
        Terminal.Line(error, "[grey]hint: --help lists the options and their defaults[/]");
    }

    private static RootCommand Build(IAnsiConsole console, IAnsiConsole error, string fortunesFolder)
    {
        var d = new TrainSettings();
        var model = new Option<string>("--model", "-m") { Description = "The model: " + ModelCatalog.Description, DefaultValueFactory = _ => ModelCatalog.Names[0] }
            .OneOf(ModelCatalog.Names);
        var text = new Option<string?>("--text") { Description = $"The UTF-8 text file to train on: its %-separated records, else its blank-line-separated paragraphs (default: the fortunes in {Documents.DebianFortunes})" };
        var context = new Option<int>("--context") { Description = "Training window length in tokens (bytes)", DefaultValueFactory = _ => d.Context }.WholeNumber(2);
        var epochs = new Option<int>("--epochs") { Description = "Passes over the training windows (0: only generate, e.g. with --load)", DefaultValueFactory = _ => d.Epochs }.WholeNumber(0);
        var batch = new Option<int>("--batch-size") { Description = "Windows per step", DefaultValueFactory = _ => d.BatchSize }.WholeNumber(1);
        var lr = new Option<double>("--lr") { Description = "AdamW's learning rate", DefaultValueFactory = _ => d.LearningRate }.Number(v => v > 0, "a positive number");
        var hidden = new Option<int>("--hidden") { Description = "Hidden size", DefaultValueFactory = _ => 64 }.WholeNumber(1);
        var blocks = new Option<int>("--blocks") { Description = "Blocks (layers for lstm and gru)", DefaultValueFactory = _ => 2 }.WholeNumber(1);
        var seed = new Option<long>("--seed") { Description = "Seed of the initialization, the shuffling and the sampling", DefaultValueFactory = _ => 0 }.WholeNumber();
        var device = new Option<string>("--device") { Description = "cpu, or cuda (an error when CUDA is not available)", DefaultValueFactory = _ => "cpu" }.OneOf("cpu", "cuda");
        var save = new Option<string?>("--save") { Description = "Save the trained model to PATH (TorchSharp weights + PATH.json with the model options)" };
        var load = new Option<string?>("--load") { Description = "Start from the model saved at PATH (its options replace --model, --hidden, --blocks)" };
        var prompt = new Option<string>("--prompt") { Description = "The text to continue", DefaultValueFactory = _ => d.Prompt };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "The most bytes to generate (generation also stops at end-of-text)", DefaultValueFactory = _ => d.MaxNewTokens }.WholeNumber(0);
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature (0: greedy)", DefaultValueFactory = _ => d.Temperature }.Number(v => v >= 0, "at least 0");
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely bytes (0: all)", DefaultValueFactory = _ => d.TopK ?? 0 }.WholeNumber(0);
        var maxSteps = new Option<int?>("--max-steps") { Description = "At most N training steps per epoch (quick runs)" }.WholeNumber(1);
        var budget = new Option<double?>("--time-budget") { Description = "Stop training after SECONDS of wall time (the epoch under way is evaluated)" };
        budget.HelpName = "seconds";
        budget.CustomParser = r =>
        {
            string t = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) && v > 0) return v;
            r.AddError($"{OptionValues.Typed(r)} {t} must be a positive number of seconds");
            return null;
        };
        var plot = new Option<string?>("--plot") { Description = "Draw the train loss and held-out bits/byte against steps to PATH (.png)" };

        var root = new RootCommand("Trains a byte-level language model (a Discretax model, or an LSTM/GRU baseline) on a text and generates text.")
        {
            model, text, context, epochs, batch, lr, hidden, blocks, seed, device, save, load, prompt, maxNew, temperature, topK, maxSteps, budget, plot,
        };
        root.SetAction(pr => Guard(error, () =>
        {
            var training = new TrainSettings(pr.GetValue(context), pr.GetValue(epochs), pr.GetValue(batch), pr.GetValue(lr), pr.GetValue(seed),
                pr.GetValue(maxSteps), pr.GetValue(budget), pr.GetValue(prompt)!, pr.GetValue(maxNew), pr.GetValue(temperature),
                pr.GetValue(topK) is int k && k > 0 ? k : null);
            var settings = new RunSettings(pr.GetValue(model)!, pr.GetValue(text), pr.GetValue(hidden), pr.GetValue(blocks), pr.GetValue(device)!,
                pr.GetValue(save), pr.GetValue(load), pr.GetValue(plot), training) { FortunesFolder = fortunesFolder };
            return TrainCommand.Execute(settings, console);
        }));
        return root;
    }

    /// <summary>Runs <paramref name="action"/>, turning the errors a user can cause into <c>error: ...</c> (+ hint) and exit code 1.</summary>
    private static int Guard(IAnsiConsole console, Func<int> action)
    {
        try
        {
            return action();
        }
        catch (OptionException e)
        {
            ReportOptionError(console, Messages.OneLine(e));
            return 1;
        }
        catch (TextDataException e)
        {
            Terminal.Line(console, $"[red]error:[/] {Markup.Escape(Messages.OneLine(e))}");
            if (e.Hint is not null) Terminal.Line(console, $"[grey]hint: {Markup.Escape(e.Hint)}[/]");
            return 1;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            Terminal.Line(console, $"[red]error:[/] {Markup.Escape(Messages.OneLine(e))}");
            return 1;
        }
    }
}
