using System.Diagnostics;
using Discretax.Text;
using TextGenerator.Data;
using TextGenerator.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace TextGenerator.Training;

/// <summary>The training settings.</summary>
internal sealed record TrainSettings(int Context = 128, int Epochs = 1, int BatchSize = 16, double LearningRate = 3e-3,
    long Seed = 0, int? MaxSteps = null, double? TimeBudgetSeconds = null, string Prompt = "The ", int MaxNewTokens = 200,
    double Temperature = 0.8, int? TopK = 40);

/// <summary>One epoch's figures.</summary>
/// <param name="Epoch">The epoch, from 1.</param>
/// <param name="Step">The optimizer steps so far (all epochs).</param>
/// <param name="TrainLoss">The mean training loss of the epoch's steps, in nats per token.</param>
/// <param name="HeldOutNats">The held-out mean cross-entropy in nats per predicted token (end-of-text included).</param>
/// <param name="TrainTokensPerSecond">Training tokens per second (forward, backward and step).</param>
/// <param name="Sample">The text generated for the prompt.</param>
/// <param name="GenerationTokensPerSecond">Generated tokens per second.</param>
/// <param name="StoppedEarly">Whether --max-steps or --time-budget cut the epoch short.</param>
internal sealed record EpochResult(int Epoch, int Step, double TrainLoss, double HeldOutNats, double TrainTokensPerSecond,
    string Sample, double GenerationTokensPerSecond, bool StoppedEarly)
{
    /// <summary>Held-out bits per byte: nats / ln 2 (every token is a byte, or an end-of-text counted as one).</summary>
    public double BitsPerByte => HeldOutNats / Math.Log(2);

    /// <summary>Held-out perplexity: exp of the mean nats.</summary>
    public double Perplexity => Math.Exp(HeldOutNats);
}

/// <summary>
/// Trains a <see cref="ILanguageModel"/> on packed windows with AdamW and <c>Loss</c>; after each epoch evaluates
/// the held-out windows and samples a continuation of the prompt.
/// </summary>
internal sealed class Trainer(ILanguageModel model, Device device, TrainSettings settings)
{
    /// <summary>Every step's training loss, in order (for the plot).</summary>
    public List<double> StepLosses { get; } = new();

    /// <summary>Called after each step: (epoch, step in epoch, steps in epoch, loss).</summary>
    public Action<int, int, int, double>? OnStep { get; init; }

    /// <summary>Runs the epochs; calls <paramref name="onEpoch"/> after each; stops after the time budget.</summary>
    public List<EpochResult> Run(Corpus corpus, Action<EpochResult>? onEpoch = null)
    {
        var train = WindowPacking.Pack(corpus.Train, settings.Context);
        var heldOut = WindowPacking.Pack(corpus.HeldOut, settings.Context);
        if (train.Count == 0) throw new TextDataException("the training text is too short: it needs at least 2 tokens");
        var parameters = model.Module.parameters().ToList();
        using var optimizer = optim.AdamW(parameters, settings.LearningRate);
        var budget = Stopwatch.StartNew();
        var results = new List<EpochResult>();
        int step = 0;
        for (int epoch = 1; epoch <= settings.Epochs; epoch++)
        {
            var order = train.ToArray();
            new Random(unchecked((int)settings.Seed + epoch)).Shuffle(order);
            var batches = WindowPacking.Batches(order, settings.BatchSize).ToList();
            int steps = settings.MaxSteps is int m ? Math.Min(m, batches.Count) : batches.Count;
            bool stopped = steps < batches.Count;
            model.Module.train();
            double lossSum = 0;
            long tokens = 0;
            int done = 0;
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                if (settings.TimeBudgetSeconds is double s && budget.Elapsed.TotalSeconds >= s && done > 0) { stopped = true; break; }
                using var scope = NewDisposeScope();
                var (ids, lengths) = ToTensors(batches[i]);
                optimizer.zero_grad();
                var (loss, _) = model.Loss(ids, lengths);
                loss.backward();
                optimizer.step();
                double value = loss.item<float>();
                lossSum += value;
                tokens += batches[i].Lengths.Sum();
                done++;
                step++;
                StepLosses.Add(value);
                OnStep?.Invoke(epoch, i + 1, steps, value);
            }
            double trainSeconds = clock.Elapsed.TotalSeconds;
            double nats = Evaluate(heldOut);
            var (sample, genRate) = Sample();
            var result = new EpochResult(epoch, step, lossSum / Math.Max(1, done), nats, tokens / Math.Max(trainSeconds, 1e-9),
                sample, genRate, stopped);
            results.Add(result);
            onEpoch?.Invoke(result);
            if (settings.TimeBudgetSeconds is double b && budget.Elapsed.TotalSeconds >= b) break;
        }
        return results;
    }

    /// <summary>The mean cross-entropy in nats over every predicted token of the windows (NaN for none).</summary>
    public double Evaluate(IReadOnlyList<long[]> windows)
    {
        bool wasTraining = model.Module.training;
        model.Module.eval();
        try
        {
            using var noGrad = no_grad();
            double total = 0;
            long count = 0;
            foreach (var batch in WindowPacking.Batches(windows, settings.BatchSize))
            {
                using var scope = NewDisposeScope();
                var (ids, lengths) = ToTensors(batch);
                var (loss, predicted) = model.Loss(ids, lengths);
                total += loss.item<float>() * predicted;
                count += predicted;
            }
            return count == 0 ? double.NaN : total / count;
        }
        finally
        {
            model.Module.train(wasTraining);
        }
    }

    /// <summary>The continuation of the prompt (until end-of-text or the token limit) and tokens per second.</summary>
    public (string Text, double TokensPerSecond) Sample()
    {
        var prompt = ByteTokenizer.Encode(settings.Prompt);
        if (prompt.Length == 0) prompt = new[] { ByteTokenizer.EndOfText };
        var clock = Stopwatch.StartNew();
        var ids = model.Generate(new[] { prompt }, settings.MaxNewTokens, settings.Temperature, settings.TopK, settings.Seed, ByteTokenizer.EndOfText)[0];
        double rate = ids.Length / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        return (ByteTokenizer.Decode(ids), rate);
    }

    private (Tensor Ids, Tensor Lengths) ToTensors((long[,] Tokens, long[] Lengths) batch)
    {
        var ids = tensor(batch.Tokens, ScalarType.Int64, device);
        var lengths = tensor(batch.Lengths, ScalarType.Int64, device);
        return (ids, lengths);
    }
}
