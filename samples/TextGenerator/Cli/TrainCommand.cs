using SampleSupport;
using System.Globalization;
using Spectre.Console;
using TextGenerator.Data;
using TextGenerator.Display;
using TextGenerator.Models;
using TextGenerator.Training;
using TorchSharp;

namespace TextGenerator.Cli;

/// <summary>The run: read the documents, build or load the model, train, report each epoch, save, plot.</summary>
internal static class TrainCommand
{
    /// <summary>Runs <paramref name="s"/>; returns the exit code.</summary>
    public static int Execute(RunSettings s, IAnsiConsole console)
    {
        var device = ResolveDevice(s.Device, torch.cuda.is_available());
        if (s.Save is not null) OutputPath.CheckWritable("--save", s.Save);
        if (s.Plot is not null) OutputPath.CheckWritable("--plot", s.Plot);
        var documents = s.Text is null ? Documents.ReadFortunes(s.FortunesFolder) : Documents.ReadFile(s.Text);
        var corpus = Corpus.Build(documents, s.Training.Seed);
        string source = s.Text ?? $"fortunes in {s.FortunesFolder}";

        torch.random.manual_seed(s.Training.Seed);
        ILanguageModel model;
        ModelSpec spec;
        if (s.Load is not null) (model, spec) = Checkpoint.Load(s.Load, device);
        else
        {
            spec = new ModelSpec(s.Model, s.Hidden, s.Blocks);
            model = ModelCatalog.Create(s.Model, s.Hidden, s.Blocks);
            model.Module.to(device);
        }
        using var disposeModel = model;
        long parameters = model.Module.parameters().Sum(p => p.numel());
        Terminal.Line(console, Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"{spec.Model}: hidden {spec.Hidden}, blocks {spec.Blocks}, {parameters:N0} parameters on {device}{(s.Load is null ? "" : $" (loaded from {s.Load})")}")));
        Terminal.Line(console, Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"data: {source}: {corpus.TrainDocuments:N0} train documents ({corpus.Train.Length:N0} tokens), {corpus.HeldOutDocuments:N0} held-out ({corpus.HeldOut.Length:N0} tokens); windows of {s.Training.Context}, batches of {s.Training.BatchSize}")));

        var trainer = new Trainer(model, device, s.Training);
        List<EpochResult> results;
        if (Terminal.IsPlain(console) || s.Training.Epochs == 0)
        {
            results = trainer.Run(corpus, r => Report(console, r, s.Training));
        }
        else
        {
            results = new List<EpochResult>();
            console.Progress().AutoClear(true).Start(ctx =>
            {
                ProgressTask? task = null;
                var live = new Trainer(model, device, s.Training)
                {
                    OnStep = (epoch, i, n, loss) =>
                    {
                        task ??= ctx.AddTask($"epoch {epoch}", maxValue: n);
                        task.Description = string.Create(CultureInfo.InvariantCulture, $"epoch {epoch}/{s.Training.Epochs} loss {loss:F3}");
                        task.MaxValue = n;
                        task.Value = i;
                    },
                };
                results = live.Run(corpus, r => { task?.StopTask(); task = null; Report(console, r, s.Training); });
                trainer = live;
            });
        }
        if (s.Training.Epochs == 0)
        {
            var (text, rate) = trainer.Sample();
            Terminal.Line(console, Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"generated ({rate:F0} tokens/s): {Quote(s.Training.Prompt + text)}")));
        }
        if (s.Save is not null)
        {
            Checkpoint.Save(s.Save, model, spec);
            Terminal.Line(console, Markup.Escape($"saved: {s.Save} (+ {s.Save}.json)"));
        }
        if (s.Plot is not null && results.Count > 0)
        {
            CurvePlot.Save(s.Plot, trainer.StepLosses, results, string.Create(CultureInfo.InvariantCulture,
                $"{spec.Model} on {Path.GetFileName(source)}: {results[^1].BitsPerByte:F3} bits/byte after epoch {results[^1].Epoch}"));
            Terminal.Line(console, Markup.Escape($"plot: {s.Plot}"));
        }
        return 0;
    }

    /// <summary>The device for <c>--device cpu|cuda</c>; cuda without CUDA is an error.</summary>
    public static torch.Device ResolveDevice(string requested, bool cudaAvailable)
    {
        if (requested == "cpu") return torch.CPU;
        if (cudaAvailable) return new torch.Device(DeviceType.CUDA);
        throw new OptionException("--device", "--device cuda: CUDA is not available here (no NVIDIA GPU, or this build uses the CPU backend: build with -p:TorchBackend=cuda); use --device cpu");
    }

    private static void Report(IAnsiConsole console, EpochResult r, TrainSettings t)
    {
        Terminal.Line(console, Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"epoch {r.Epoch}/{t.Epochs}: step {r.Step}, train loss {r.TrainLoss:F4}, held-out {r.BitsPerByte:F4} bits/byte, perplexity {r.Perplexity:F3}, train {r.TrainTokensPerSecond:F0} tokens/s{(r.StoppedEarly ? " (stopped early: --max-steps or --time-budget)" : "")}")));
        Terminal.Line(console, Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"generated ({r.GenerationTokensPerSecond:F0} tokens/s): {Quote(t.Prompt + r.Sample)}")));
    }

    private static string Quote(string text) => "\"" + text.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\t", "\\t") + "\"";
}
