using SampleSupport;
using System.Globalization;
using Discretax.Utilities;
using MnistClassifier.Data;
using MnistClassifier.Display;
using MnistClassifier.Models;
using MnistClassifier.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Cli;

/// <summary>The main command: load the data, build (or load) the classifier, train it with live progress, report.</summary>
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
        var (device, deviceDescription) = DeviceChoice.Resolve(s.Device, torch.cuda.is_available());
        if (s.Threads is int threads) torch.set_num_threads(threads);
        torch.manual_seed(s.Training.Seed);

        var source = DataSource.Resolve(s.DataDirectory);
        var data = MnistData.Load(source);
        var train = s.Limit is int limit ? data.Train.Take(limit) : data.Train;
        if (s.AutoEpochs) s = s with { Training = s.Training with { Epochs = TrainingOptions.AutoEpochs(train.Count) } };

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

        using var trainX = SequenceEncoding.ToTensor(train.Images, spec.Layout).to(device);
        using var trainY = SequenceEncoding.LabelsToTensor(train.Labels).to(device);
        using var testX = SequenceEncoding.ToTensor(data.Test.Images, spec.Layout).to(device);
        using var testY = SequenceEncoding.LabelsToTensor(data.Test.Labels).to(device);

        var o = s.Training;
        var rows = new List<(string Key, string Value)>
        {
            ("data", $"{source.Description}: {train.Count:N0} training, {Words.Count(data.Test.Count, "test image")}"),
            ("model", $"{spec.Describe()}, {Words.Count(ParameterSummary.Count(net), "parameter")}" + (s.LoadPath is null ? "" : $", loaded from {s.LoadPath}")),
            ("device", $"{deviceDescription}, {Words.Count(torch.get_num_threads(), "thread")}"),
        };
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
            final = TrainLoop(s, spec, source.Description, net, trainX, trainY, testX, testY, console);
            if (s.SavePath is not null)
            {
                Checkpoint.Save(s.SavePath, net, spec);
                Terminal.Line(console, $"saved the checkpoint to [bold]{Markup.Escape(s.SavePath)}[/] (+ {Markup.Escape(Path.GetFileName(Checkpoint.SpecPath(s.SavePath)))})");
            }
        }
        console.Write(ConsoleReport.PerClassTable(final, source.ClassNames));
        console.Write(ConsoleReport.ConfusionTable(final, source.ClassNames));
        return 0;
    }

    private static EvaluationResult TrainLoop(RunSettings s, NetworkSpec spec, string dataset, nn.Module<Tensor, Tensor> net,
        Tensor trainX, Tensor trainY, Tensor testX, Tensor testY, IAnsiConsole console)
    {
        var o = s.Training;
        using var trainer = new Trainer(net, o, (int)trainX.shape[0], spec.Classes);
        var history = new List<EpochMetrics>();
        EvaluationResult? last = null;
        void AfterEpoch(EpochMetrics m, EvaluationResult test)
        {
            history.Add(m);
            last = test;
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
