using SampleSupport;
using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;
using Discretax.Distributed;
using MnistClassifier.Data;
using MnistClassifier.Display;
using MnistClassifier.Models;
using MnistClassifier.Training;
using Spectre.Console;

namespace MnistClassifier.Cli;

/// <summary>The command line (System.CommandLine): the training run as the root command, plus <c>predict</c>.</summary>
public static class CommandLineApp
{
    /// <summary>
    /// Parses <paramref name="args"/> and runs the command; returns the exit code: 0, or 1 after one error line
    /// (<c>error: ...</c>; for a bad option value, then one line pointing to <c>--help</c>).
    /// </summary>
    /// <param name="args">The arguments.</param>
    /// <param name="console">Where to write (null: standard output, see <see cref="Terminal"/>).</param>
    /// <param name="error">Where to write errors (null: <paramref name="console"/> when given, else standard error).</param>
    public static int Run(string[] args, IAnsiConsole? console = null, IAnsiConsole? error = null)
    {
        error ??= console ?? Terminal.Stderr();
        console ??= Terminal.Stdout();
        var result = Build(console, error).Parse(args);
        if (result.Action is ParseErrorAction)
        {
            // Our own report instead of System.CommandLine's (the errors followed by the whole help).
            ReportOptionError(error, ParseErrorMessage(result.Errors[0].Message), result.CommandResult.Command);
            return 1;
        }
        return result.Invoke();
    }

    /// <summary>
    /// One line for a parse error, starting with the option or word the user typed: ours are already in that form
    /// (<see cref="OptionValues"/>); System.CommandLine's own (an unknown word, a missing value or option) are
    /// reworded to it.
    /// </summary>
    /// <param name="message">System.CommandLine's message.</param>
    public static string ParseErrorMessage(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        message = Messages.OneLine(message);
        var m = Regex.Match(message, @"^Unrecognized command or argument '(.*)'\.$");
        if (m.Success) return $"{m.Groups[1].Value} is not an option or command here";
        m = Regex.Match(message, @"^Required argument missing for option: '(.*)'\.$");
        if (m.Success) return $"{m.Groups[1].Value} needs a value";
        m = Regex.Match(message, @"^Option '(.*)' is required\.$");
        if (m.Success) return $"{m.Groups[1].Value} is required";
        return message;
    }

    /// <summary>Writes <c>error: MESSAGE</c> and the one-line hint to <c>--help</c>.</summary>
    /// <param name="error">Where to write.</param>
    /// <param name="message">The message, naming the option.</param>
    /// <param name="command">The command whose options are meant (null: the root command).</param>
    public static void ReportOptionError(IAnsiConsole error, string message, Command? command = null)
    {
        ArgumentNullException.ThrowIfNull(error);
        Terminal.Line(error, $"[red]error:[/] {Markup.Escape(message)}");
        string help = command is null or RootCommand ? "--help" : $"{command.Name} --help";
        Terminal.Line(error, $"[grey]hint: {Markup.Escape(help)} lists the options and their defaults[/]");
    }

    /// <summary>Builds the root command.</summary>
    /// <param name="console">Where the commands write.</param>
    /// <param name="error">Where the commands write errors (null: <paramref name="console"/>).</param>
    public static RootCommand Build(IAnsiConsole console, IAnsiConsole? error = null)
    {
        error ??= console;
        var defaults = new TrainingOptions();
        var model = new Option<string>("--model", "-m")
        {
            Description = "The sequence model: " + string.Join("; ", ModelCatalog.All.Select(e => $"{e.Name} ({e.Description})")),
            DefaultValueFactory = _ => ModelCatalog.DefaultName,
        };
        model.HelpName = "name";
        model.OneOf(ModelCatalog.Names.ToArray());
        var layout = new Option<string>("--layout")
        {
            Description = "How an image becomes a sequence: rows (28 steps x 28), pixels (784 x 1), permuted (784 x 1, fixed permutation)",
            DefaultValueFactory = _ => "rows",
        };
        layout.OneOf("rows", "pixels", "permuted");
        var block = new Option<string>("--block")
        {
            Description = "The standard blocks' norm and activation: library (PyTorch's batch norm, exact GELU) or discretax (discretax's exactly: equinox's EMA batch norm, tanh GELU); not for mlstm",
            DefaultValueFactory = _ => MnistClassifier.Models.BlockStyles.Library,
        };
        block.OneOf(MnistClassifier.Models.BlockStyles.All);
        var data = new Option<string?>("--data") { Description = "Directory with the four IDX files (raw or .gz); default: Debian's Fashion-MNIST if installed, else the embedded subset" };
        var epochs = new Option<int?>("--epochs") { Description = "Passes over the training set (default: enough for about 120,000 images: 20 on the embedded subset, 2 on full Fashion-MNIST)" }.WholeNumber(1);
        var batch = new Option<int>("--batch-size") { Description = "Images per step", DefaultValueFactory = _ => defaults.BatchSize }.WholeNumber(1);
        var lr = new Option<double>("--lr") { Description = "Peak learning rate of AdamW (warm-up, then cosine decay)", DefaultValueFactory = _ => defaults.LearningRate }
            .Number(v => v > 0, "a positive number");
        var wd = new Option<double>("--weight-decay") { Description = "AdamW's weight decay", DefaultValueFactory = _ => defaults.WeightDecay }
            .Number(v => v >= 0, "at least 0");
        var clip = new Option<double>("--clip") { Description = "Gradient-norm clip (0: none)", DefaultValueFactory = _ => defaults.ClipNorm }
            .Number(v => v >= 0, "at least 0 (0: no clipping)");
        var hidden = new Option<int>("--hidden") { Description = "Hidden size", DefaultValueFactory = _ => 64 }.WholeNumber(1);
        var blocks = new Option<int>("--blocks") { Description = "Number of blocks", DefaultValueFactory = _ => 2 }.WholeNumber(1);
        var dropout = new Option<double>("--dropout") { Description = "Dropout probability in the blocks (train mode only)", DefaultValueFactory = _ => 0.1 }
            .Number(v => v >= 0 && v < 1, "in [0, 1)");
        var seed = new Option<long>("--seed") { Description = "Seed of the initialization and the shuffling", DefaultValueFactory = _ => 0 }.WholeNumber();
        var device = new Option<string>("--device")
        {
            Description = "auto (CUDA when available, else the CPU), cpu or cuda (an error when CUDA is not available)",
            DefaultValueFactory = _ => DeviceChoice.Default,
        }.OneOf(DeviceChoice.Values);
        var threads = new Option<int>("--threads")
        {
            Description = "CPU threads for TorchSharp (default 1: these models are small, and on 2 shared cores 2 threads ran several times slower; try 2 on an idle machine)",
            DefaultValueFactory = _ => 1,
        }.WholeNumber(1);
        var save = new Option<string?>("--save") { Description = "Save the trained model to PATH (TorchSharp weights + PATH.json with the model options)" };
        var load = new Option<string?>("--load") { Description = "Start from the checkpoint at PATH (its model options rebuild the network)" };
        var evalOnly = new Option<bool>("--eval-only") { Description = "Only evaluate the --load checkpoint on the test set" };
        var metrics = new Option<string?>("--metrics") { Description = "Write per-epoch metrics to PATH (.csv or .json)" };
        var plot = new Option<string?>("--plot") { Description = "Draw loss and accuracy curves to PATH (.png)" };
        var limit = new Option<int?>("--limit") { Description = "Use only the first N training images" }.WholeNumber(1);
        var distributed = new Option<bool>("--distributed")
        {
            Description = "Data-parallel training over MPI: start the program with mpirun -np N (Open MPI); each process trains on its shard of every epoch, --batch-size is the batch of all processes together, and rank 0 reports, plots and saves (docs/distributed.md)",
        };

        var root = new RootCommand("Trains and evaluates a Discretax sequence classifier on MNIST-style images read as sequences.")
        {
            model, layout, block, data, epochs, batch, lr, wd, clip, hidden, blocks, dropout, seed, device, threads, save, load, evalOnly, metrics, plot, limit,
            distributed,
        };
        root.SetAction(pr => Distributed(pr.GetValue(distributed), () => Guard(error, () =>
        {
            var given = new Dictionary<string, string>();
            void Given<T>(Option<T> o, string name)
            {
                var r = pr.GetResult(o);
                if (r is not null && !r.Implicit) given[name] = Convert.ToString(pr.GetValue(o), CultureInfo.InvariantCulture) ?? "";
            }
            Given(model, "--model");
            Given(layout, "--layout");
            Given(hidden, "--hidden");
            Given(blocks, "--blocks");
            Given(block, "--block");
            var settings = new RunSettings(
                pr.GetValue(model)!, Enum.Parse<SequenceLayout>(pr.GetValue(layout)!, ignoreCase: true), pr.GetValue(data),
                new TrainingOptions(pr.GetValue(epochs) ?? 1, pr.GetValue(batch), pr.GetValue(lr), pr.GetValue(wd), pr.GetValue(clip),
                    defaults.WarmupFraction, pr.GetValue(seed)),
                pr.GetValue(hidden), pr.GetValue(blocks), pr.GetValue(dropout), pr.GetValue(device)!, pr.GetValue(threads),
                pr.GetValue(save), pr.GetValue(load), pr.GetValue(evalOnly), pr.GetValue(metrics), pr.GetValue(plot), pr.GetValue(limit), given, AutoEpochs: pr.GetValue(epochs) is null,
                Block: pr.GetValue(block)!, Distributed: pr.GetValue(distributed));
            settings.Training.Validate();
            return TrainCommand.Execute(settings, console);
        })));

        var predictLoad = new Option<string>("--load") { Description = "The checkpoint (saved with --save PATH)", Required = true };
        var image = new Option<int>("--image") { Description = "Index of the test image", DefaultValueFactory = _ => 0 }.WholeNumber(0);
        var predictData = new Option<string?>("--data") { Description = "Directory with the four IDX files (default as for training)" };
        var predict = new Command("predict", "Shows one test image in the terminal with the model's top-3 classes.") { predictLoad, image, predictData };
        predict.SetAction(pr => Guard(error, () => PredictCommand.Execute(pr.GetValue(predictLoad)!, pr.GetValue(image), pr.GetValue(predictData), console), predict));
        root.Subcommands.Add(predict);

        var datasetName = new Option<string>("--dataset")
        {
            Description = "The data set to download",
            DefaultValueFactory = _ => DownloadableDataset.Mnist.Name,
        };
        datasetName.OneOf(DownloadableDataset.All.Select(d => d.Name).ToArray());
        var downloadOut = new Option<string>("--out") { Description = "Directory to download into (then train with --data DIR)", Required = true };
        var download = new Command("download", "Downloads MNIST or Fashion-MNIST (four IDX files, MD5-checked) for --data; needs internet access.") { datasetName, downloadOut };
        download.SetAction(pr => Guard(error, () => DownloadCommand.Execute(pr.GetValue(datasetName)!, pr.GetValue(downloadOut)!, console)));
        root.Subcommands.Add(download);

        var from = new Option<string>("--from") { Description = "Directory with the full data set", DefaultValueFactory = _ => DataSource.DebianDirectory };
        var to = new Option<string>("--out") { Description = "Output directory", Required = true };
        var trainCount = new Option<int>("--train") { DefaultValueFactory = _ => 6000 }.WholeNumber(10);
        var testCount = new Option<int>("--test") { DefaultValueFactory = _ => 1000 }.WholeNumber(10);
        var subsetSeed = new Option<ulong>("--seed") { DefaultValueFactory = _ => MakeSubsetCommand.DefaultSeed }.WholeNumber();
        var makeSubset = new Command("make-subset", "Draws the class-balanced embedded subset (maintainers only).") { from, to, trainCount, testCount, subsetSeed };
        makeSubset.Hidden = true;
        makeSubset.SetAction(pr => Guard(error, () => MakeSubsetCommand.Execute(pr.GetValue(from)!, pr.GetValue(to)!, pr.GetValue(trainCount),
            pr.GetValue(testCount), pr.GetValue(subsetSeed), console)));
        root.Subcommands.Add(makeSubset);
        return root;
    }

    /// <summary>
    /// Runs <paramref name="run"/>; with <c>--distributed</c> inside <see cref="Mpi.Run"/>: MPI is initialized first, and a
    /// process whose run fails (exit code 1 after its error line) ends the whole job instead of leaving the other
    /// processes waiting for it.
    /// </summary>
    /// <param name="distributed">Whether <c>--distributed</c> was given.</param>
    /// <param name="run">The command.</param>
    public static int Distributed(bool distributed, Func<int> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return distributed ? Mpi.Run(run) : run();
    }

    /// <summary>
    /// Runs <paramref name="action"/>, turning the errors a user can cause into one line on the console and exit code 1;
    /// an <see cref="OptionException"/> (a bad option value) adds the one-line hint to <c>--help</c>.
    /// </summary>
    /// <param name="console">Where to write the error.</param>
    /// <param name="action">The command.</param>
    /// <param name="command">The command whose <c>--help</c> the hint names (null: the root command).</param>
    public static int Guard(IAnsiConsole console, Func<int> action, Command? command = null)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(action);
        try
        {
            return action();
        }
        catch (OptionException e)
        {
            ReportOptionError(console, Messages.OneLine(e), command);
            return 1;
        }
        catch (Exception e) when (e is DataFileException or CheckpointException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            Terminal.Line(console, $"[red]error:[/] {Markup.Escape(Messages.OneLine(e))}");
            return 1;
        }
    }
}
