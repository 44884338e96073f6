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
        if (s.EvalOnly && s.LoadPath is null) throw new ArgumentException("--eval-only needs --load PATH (a checkpoint saved with --save).");
        if (s.MetricsPath is not null) MetricsWriter.CheckPath(s.MetricsPath);
        if (s.PlotPath is not null && !s.PlotPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--plot expects a .png file; got '{s.PlotPath}'.");
        if (s.Threads is int threads) torch.set_num_threads(threads);
        var device = DeviceChoice.Resolve(s.Device, torch.cuda.is_available(), m => console.MarkupLineInterpolated($"[yellow]warning:[/] {m}"));
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
                SequenceEncoding.Features(s.Layout, images.Columns), SequenceEncoding.SequenceLength(s.Layout, images.Rows, images.Columns));
            network = ModelCatalog.Build(spec);
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
        var header = new Grid().AddColumn().AddColumn();
        header.AddRow("[bold]data[/]", Markup.Escape($"{source.Description}: {train.Count:N0} training, {data.Test.Count:N0} test images"));
        header.AddRow("[bold]model[/]", Markup.Escape($"{spec.Describe()}, {ParameterSummary.Count(net):N0} parameters"
            + (s.LoadPath is null ? "" : $", loaded from {s.LoadPath}")));
        header.AddRow("[bold]device[/]", Markup.Escape($"{device.type.ToString().ToLowerInvariant()}, {torch.get_num_threads()} threads"));
        if (!s.EvalOnly)
            header.AddRow("[bold]training[/]", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"{o.Epochs} epochs{(s.AutoEpochs ? " (default for this data: about 120,000 images in all)" : "")}, batch {o.BatchSize}, AdamW lr {o.LearningRate} (warm-up {o.WarmupFraction:P0} then cosine), weight decay {o.WeightDecay}, clip {o.ClipNorm}, seed {o.Seed}")));
        console.Write(new Panel(header).Header("[bold]Discretax MNIST-style sequence classifier[/]").Border(BoxBorder.Rounded));

        EvaluationResult final;
        if (s.EvalOnly)
        {
            final = Trainer.Evaluate(net, testX, testY, spec.Classes, o.BatchSize);
            console.MarkupLineInterpolated($"test loss {final.Loss:F4}, test accuracy [bold]{final.Accuracy:P2}[/]");
        }
        else
        {
            final = TrainLoop(s, spec, net, trainX, trainY, testX, testY, console);
            if (s.SavePath is not null)
            {
                Checkpoint.Save(s.SavePath, net, spec);
                console.MarkupLineInterpolated($"saved the checkpoint to [bold]{s.SavePath}[/] (+ {Path.GetFileName(Checkpoint.SpecPath(s.SavePath))})");
            }
        }
        console.Write(ConsoleReport.PerClassTable(final, source.ClassNames));
        console.Write(ConsoleReport.ConfusionTable(final, source.ClassNames));
        return 0;
    }

    private static EvaluationResult TrainLoop(RunSettings s, NetworkSpec spec, nn.Module<Tensor, Tensor> net,
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
            if (s.PlotPath is not null) CurvePlot.Save(s.PlotPath, history, $"{spec.Describe()}");
        }

        if (console.Profile.Capabilities.Interactive)
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
                console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {epoch}/{o.Epochs}  train loss {m.TrainLoss:F4} acc {m.TrainAccuracy:P2}  test loss {m.TestLoss:F4} acc {m.TestAccuracy:P2}  {m.TrainSeconds:F1} s, {m.ImagesPerSecond:F0} img/s, {m.TokensPerSecond:F0} tok/s"));
                AfterEpoch(m, test);
            }
        }

        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Epochs[/]");
        foreach (var c in new[] { "epoch", "train loss", "train acc", "test loss", "test acc", "lr (end)", "train s", "img/s", "tok/s" })
            table.AddColumn(new TableColumn(c).RightAligned());
        foreach (var m in history)
            table.AddRow(m.Epoch.ToString(CultureInfo.InvariantCulture), F(m.TrainLoss, "F4"), F(m.TrainAccuracy, "P2"), F(m.TestLoss, "F4"),
                $"[bold]{F(m.TestAccuracy, "P2")}[/]", F(m.LearningRate, "0.0e0"), F(m.TrainSeconds, "F1"), F(m.ImagesPerSecond, "F0"), F(m.TokensPerSecond, "F0"));
        console.Write(table);
        if (s.MetricsPath is not null) console.MarkupLineInterpolated($"metrics written to [bold]{s.MetricsPath}[/]");
        if (s.PlotPath is not null) console.MarkupLineInterpolated($"curves drawn to [bold]{s.PlotPath}[/]");
        return last!;
    }

    private static string Describe(BatchProgress p, int epochs) => Markup.Escape(string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{epochs} loss {p.Loss:F3} acc {p.Accuracy * 100:F1}% {p.ImagesPerSecond:F0} img/s {p.TokensPerSecond / 1000:F0}k tok/s"));

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
}
