using SampleSupport;
using System.Globalization;
using Discretax.Distributed;
using Discretax.Utilities;
using MnistClassifier.Data;
using MnistClassifier.Display;
using MnistClassifier.Models;
using MnistClassifier.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Cli;

/// <summary>
/// The main command: load the data, build (or load) the classifier, train it with live progress, report. With
/// <c>--distributed</c> (in every process <c>mpirun</c> started, MPI initialized by <see cref="CommandLineApp.Distributed"/>)
/// the processes train together through <see cref="DataParallel"/>, and only rank 0 writes to the console, the
/// metrics, the plot and the checkpoint.
/// </summary>
public static class TrainCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    /// <param name="s">The settings.</param>
    /// <param name="console">Where to write.</param>
    public static int Execute(RunSettings s, IAnsiConsole console)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(console);
        if (s.EvalOnly && s.LoadPath is null) throw new OptionException("--eval-only", "--eval-only needs --load PATH (a checkpoint saved with --save)");
        // Everything the user can get wrong is checked here, before the data is read and before any training.
        int world = 1;
        bool root = true;
        if (s.Distributed)
        {
            if (!Mpi.IsInitialized) throw new InvalidOperationException("--distributed: MPI is not initialized (CommandLineApp.Distributed runs the command inside Mpi.Run).");
            if (s.EvalOnly) throw new OptionException("--distributed", "--distributed trains; --eval-only evaluates in one process: drop --distributed");
            world = Mpi.WorldSize;
            root = Mpi.IsRoot;
            if (s.Training.BatchSize % world != 0)
                throw new OptionException("--batch-size", $"--batch-size {s.Training.BatchSize} must be a multiple of the {world} processes of --distributed (each takes an equal part of every batch)");
            // Only rank 0 reports, in plain lines (mpirun forwards them from a pseudo-terminal); the other ranks' errors
            // still reach standard error.
            console = root ? Terminal.PlainStdout() : Terminal.Discard();
        }
        if (root) CheckOutputPaths(s);
        var (device, deviceDescription) = s.Distributed ? DistributedDevice(s.Device) : DeviceChoice.Resolve(s.Device, torch.cuda.is_available());
        if (s.Threads is int threads) torch.set_num_threads(threads);
        torch.manual_seed(s.Training.Seed);

        var source = DataSource.Resolve(s.DataDirectory);
        var data = MnistData.Load(source);
        var train = s.Limit is int limit ? data.Train.Take(limit) : data.Train;
        if (train.Count < world)
            throw new OptionException("--limit", $"--limit {train.Count} leaves fewer training images than the {world} processes of --distributed");
        if (s.AutoEpochs) s = s with { Training = s.Training with { Epochs = TrainingOptions.AutoEpochs(train.Count) } };
        return Run(s, console, source, data, train, device, deviceDescription, world);
    }

    private static void CheckOutputPaths(RunSettings s)
    {
        if (s.MetricsPath is not null)
        {
            var ext = Path.GetExtension(s.MetricsPath).ToLowerInvariant();
            if (ext is not ".csv" and not ".json") throw new OptionException("--metrics", $"--metrics {s.MetricsPath} must end in .csv or .json");
            OutputPath.CheckWritable("--metrics", s.MetricsPath);
        }
        if (s.PlotPath is not null)
        {
            if (!s.PlotPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new OptionException("--plot", $"--plot {s.PlotPath} must end in .png");
            OutputPath.CheckWritable("--plot", s.PlotPath);
        }
        if (s.SavePath is not null && !s.EvalOnly)
        {
            OutputPath.CheckWritable("--save", s.SavePath);
            OutputPath.CheckWritable("--save", Checkpoint.SpecPath(s.SavePath), s.SavePath);
        }
    }

    /// <summary>The device of a distributed run: the CPU, since the MPI collectives move host memory.</summary>
    private static (Device Device, string Description) DistributedDevice(string requested) => requested.ToLowerInvariant() switch
    {
        "cuda" => throw new OptionException("--device", "--device cuda: --distributed trains on the CPU (the MPI collectives move host memory; docs/distributed.md says how NCCL would serve GPUs): use --device cpu"),
        "auto" => (torch.CPU, "cpu (auto: --distributed trains on the CPU)"),
        _ => DeviceChoice.Resolve(requested, cudaAvailable: false),
    };

    private static int Run(RunSettings s, IAnsiConsole console, DataSource source, MnistData data, LabeledImages train, Device device,
        string deviceDescription, int world)
    {
        NetworkSpec spec;
        nn.Module<Tensor, Tensor> network;
        if (s.LoadPath is not null)
        {
            var saved = Checkpoint.ReadSpec(s.LoadPath);
            Checkpoint.CheckRequested(s.LoadPath, saved, s.Explicit);
            (network, spec) = Checkpoint.Load(s.LoadPath);
        }
        else
        {
            var images = train.Images;
            spec = new NetworkSpec(ModelCatalog.Get(s.Model).Name, s.Layout, s.Hidden, s.Blocks, s.DropRate,
                SequenceEncoding.Features(s.Layout, images.Columns), SequenceEncoding.SequenceLength(s.Layout, images.Rows, images.Columns),
                Block: s.Block);
            try
            {
                network = ModelCatalog.Build(spec);
            }
            catch (ArgumentException e) when (e is not OptionException)
            {
                throw LibraryErrors.Translate(e, spec);
            }
        }
        using var net = network;
        int length = SequenceEncoding.SequenceLength(spec.Layout, data.Test.Images.Rows, data.Test.Images.Columns);
        int features = SequenceEncoding.Features(spec.Layout, data.Test.Images.Columns);
        if (length != spec.SequenceLength || features != spec.InputFeatures)
            throw new CheckpointException(s.LoadPath ?? "", $"was trained on sequences of {spec.SequenceLength} x {spec.InputFeatures}; this data gives {length} x {features}");
        net.to(device);
        // Distributed: rank 0's weights on every process; then each process its own dropout masks.
        using var parallel = s.Distributed ? new DataParallel(net) : null;
        if (parallel is not null && !parallel.IsRoot) torch.manual_seed(s.Training.Seed + 1_000_003L * parallel.Rank);
        bool root = parallel?.IsRoot ?? true;

        using var trainX = SequenceEncoding.ToTensor(train.Images, spec.Layout).to(device);
        using var trainY = SequenceEncoding.LabelsToTensor(train.Labels).to(device);
        using var testX = SequenceEncoding.ToTensor(data.Test.Images, spec.Layout).to(device);
        using var testY = SequenceEncoding.LabelsToTensor(data.Test.Labels).to(device);

        var o = s.Training;
        var rows = new List<(string Key, string Value)>
        {
            ("data", $"{source.Description}: {train.Count:N0} training, {Words.Count(data.Test.Count, "test image")}"),
            ("model", $"{spec.Describe()}, {Words.Count(ParameterSummary.Count(net), "parameter")}" + (s.LoadPath is null ? "" : $", loaded from {s.LoadPath}")),
            ("device", $"{deviceDescription}, {Words.Count(torch.get_num_threads(), "thread")}" + (world > 1 ? " per process" : "")),
        };
        if (s.Distributed)
            rows.Add(("processes", $"{world} over MPI ({Mpi.LibraryVersion.Split(',')[0]}): each trains on its shard of {train.Count / world:N0} images per epoch, " +
                $"{s.Training.BatchSize / world} of every batch of {s.Training.BatchSize}; rank 0 reports"));
        if (!s.EvalOnly)
            rows.Add(("training", string.Create(CultureInfo.InvariantCulture,
                $"{Words.Count(o.Epochs, "epoch")}{(s.AutoEpochs ? " (default for this data: about 120,000 images in all)" : "")}, batch {o.BatchSize}, AdamW lr {o.LearningRate} (warm-up {o.WarmupFraction:P0} then cosine), weight decay {o.WeightDecay}, clip {o.ClipNorm}, seed {o.Seed}")));
        if (Terminal.IsPlain(console))
        {
            foreach (var (key, value) in rows) Terminal.Line(console, Markup.Escape($"{key}: {value}"));
        }
        else
        {
            var header = new Grid().AddColumn().AddColumn();
            foreach (var (key, value) in rows) header.AddRow($"[bold]{key}[/]", Markup.Escape(value));
            console.Write(new Panel(header).Header("[bold]Discretax MNIST-style sequence classifier[/]").Border(BoxBorder.Rounded));
        }

        EvaluationResult final;
        if (s.EvalOnly)
        {
            final = Trainer.Evaluate(net, testX, testY, spec.Classes, o.BatchSize);
            Terminal.Line(console, string.Create(CultureInfo.InvariantCulture, $"test loss {final.Loss:F4}, test accuracy [bold]{final.Accuracy * 100:F2}%[/]"));
        }
        else
        {
            final = TrainLoop(s, spec, source.Description, net, parallel, trainX, trainY, testX, testY, console);
            if (s.SavePath is not null && root)
            {
                Checkpoint.Save(s.SavePath, net, spec);
                Terminal.Line(console, $"saved the checkpoint to [bold]{Markup.Escape(s.SavePath)}[/] (+ {Markup.Escape(Path.GetFileName(Checkpoint.SpecPath(s.SavePath)))})");
            }
        }
        console.Write(ConsoleReport.PerClassTable(final, source.ClassNames));
        console.Write(ConsoleReport.ConfusionTable(final, source.ClassNames));
        return 0;
    }

    private static EvaluationResult TrainLoop(RunSettings s, NetworkSpec spec, string dataset, nn.Module<Tensor, Tensor> net, DataParallel? parallel,
        Tensor trainX, Tensor trainY, Tensor testX, Tensor testY, IAnsiConsole console)
    {
        var o = s.Training;
        bool root = parallel?.IsRoot ?? true;
        using var trainer = new Trainer(net, o, (int)trainX.shape[0], spec.Classes, parallel);
        var history = new List<EpochMetrics>();
        EvaluationResult? last = null;
        void AfterEpoch(EpochMetrics m, EvaluationResult test)
        {
            history.Add(m);
            last = test;
            if (!root) return;
            if (s.MetricsPath is not null) MetricsWriter.Write(s.MetricsPath, history);
            if (s.PlotPath is not null) CurvePlot.Save(s.PlotPath, history, CurvePlot.Title(spec.Model, dataset, m, o.Epochs));
        }

        if (!Terminal.IsPlain(console))
        {
            console.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 12 }, new PercentageColumn(),
                    new RemainingTimeColumn())
                .Start(ctx =>
                {
                    for (int epoch = 1; epoch <= o.Epochs; epoch++)
                    {
                        var task = ctx.AddTask($"epoch {epoch}/{o.Epochs}", maxValue: trainX.shape[0]);
                        var (m, test) = trainer.RunEpoch(trainX, trainY, testX, testY, epoch, p =>
                        {
                            task.Value = p.ImagesDone;
                            task.Description = Describe(p, o.Epochs);
                        });
                        task.Description = Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                            $"epoch {epoch}/{o.Epochs} loss {m.TrainLoss:F3} acc {m.TrainAccuracy * 100:F1}% test {m.TestAccuracy * 100:F1}% {m.TrainSeconds:F0}s"));
                        task.StopTask();
                        AfterEpoch(m, test);
                    }
                });
        }
        else
        {
            for (int epoch = 1; epoch <= o.Epochs; epoch++)
            {
                var (m, test) = trainer.RunEpoch(trainX, trainY, testX, testY, epoch);
                // One unwrapped line per epoch, whatever the console's width: a log file or CI gets one line to grep.
                console.Profile.Out.Writer.WriteLine(EpochLine(m, o.Epochs));
                AfterEpoch(m, test);
            }
        }

        console.Write(ConsoleReport.EpochTable(history));
        if (s.MetricsPath is not null) Terminal.Line(console, $"metrics written to [bold]{Markup.Escape(s.MetricsPath)}[/]");
        if (s.PlotPath is not null) Terminal.Line(console, $"curves drawn to [bold]{Markup.Escape(s.PlotPath)}[/]");
        return last!;
    }

    private static string Describe(BatchProgress p, int epochs) => Markup.Escape(string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{epochs} loss {p.Loss:F3} acc {p.Accuracy * 100:F1}% {p.ImagesPerSecond:F0} img/s {p.TokensPerSecond / 1000:F0}k tok/s"));

    /// <summary>The line a plain console gets per epoch, e.g. <c>epoch 1/2  train loss 2.0512 acc 31.25%  test loss ...  12.3 s, 520 img/s, 14560 tok/s</c>.</summary>
    /// <param name="m">The epoch.</param>
    /// <param name="epochs">The epochs of the run.</param>
    public static string EpochLine(EpochMetrics m, int epochs)
    {
        ArgumentNullException.ThrowIfNull(m);
        return string.Create(CultureInfo.InvariantCulture,
            $"epoch {m.Epoch}/{epochs}  train loss {m.TrainLoss:F4} acc {m.TrainAccuracy * 100:F2}%  test loss {m.TestLoss:F4} acc {m.TestAccuracy * 100:F2}%  {m.TrainSeconds:F1} s, {m.ImagesPerSecond:F0} img/s, {m.TokensPerSecond:F0} tok/s");
    }
}
