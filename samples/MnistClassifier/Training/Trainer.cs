using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Training;

/// <summary>
/// Trains a classifier <c>[B, L, F] -&gt; [B, classes]</c> (log-probabilities) with AdamW, the loss
/// <c>nll_loss</c>, a <see cref="LearningRateSchedule"/> (warm-up, then cosine decay) set before every step, and
/// global gradient-norm clipping. Training runs in train mode (dropout on), evaluation in eval mode under
/// <c>no_grad</c>; every batch runs under its own dispose scope, so native memory stays flat over epochs.
/// The network and the tensors passed in must be on the same device.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> network;
    private readonly optim.Optimizer optimizer;
    private readonly Generator shuffle;

    /// <summary>Creates the trainer and its optimizer.</summary>
    /// <param name="network">The classifier (already on its device).</param>
    /// <param name="options">The optimization settings.</param>
    /// <param name="trainCount">The number of training images (sets the schedule's length).</param>
    /// <param name="classes">The number of classes the network predicts.</param>
    public Trainer(nn.Module<Tensor, Tensor> network, TrainingOptions options, int trainCount, int classes = 10)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (trainCount < 1) throw new ArgumentOutOfRangeException(nameof(trainCount), trainCount, $"Expected at least 1 training image; got {trainCount}.");
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, $"Expected at least 2 classes; got {classes}.");
        this.network = network;
        Options = options;
        Classes = classes;
        int total = options.Epochs * options.StepsPerEpoch(trainCount);
        int warmup = (int)Math.Round(options.WarmupFraction * total);
        Schedule = new LearningRateSchedule(options.LearningRate, total, warmup);
        optimizer = optim.AdamW(network.parameters(), lr: Schedule.At(0), weight_decay: options.WeightDecay);
        shuffle = new Generator((ulong)options.Seed);
    }

    /// <summary>The optimization settings.</summary>
    public TrainingOptions Options { get; }

    /// <summary>The number of classes.</summary>
    public int Classes { get; }

    /// <summary>The learning-rate schedule over all steps of the run.</summary>
    public LearningRateSchedule Schedule { get; }

    /// <summary>The optimizer steps taken so far.</summary>
    public int Step { get; private set; }

    /// <summary>Trains one epoch over <paramref name="inputs"/> in a fresh random order, then evaluates on the test set.</summary>
    /// <param name="inputs">Training sequences <c>[N, L, F]</c>.</param>
    /// <param name="labels">Training labels <c>[N]</c>, int64.</param>
    /// <param name="testInputs">Test sequences <c>[M, L, F]</c>.</param>
    /// <param name="testLabels">Test labels <c>[M]</c>, int64.</param>
    /// <param name="epoch">The 1-based epoch number (for the reports).</param>
    /// <param name="progress">Called after every batch, or null.</param>
    public (EpochMetrics Metrics, EvaluationResult Test) RunEpoch(Tensor inputs, Tensor labels, Tensor testInputs, Tensor testLabels,
        int epoch, Action<BatchProgress>? progress = null)
    {
        var (loss, accuracy, seconds) = TrainEpoch(inputs, labels, epoch, progress);
        var test = Evaluate(network, testInputs, testLabels, Classes, Options.BatchSize);
        long n = inputs.shape[0], length = inputs.shape[1];
        return (new EpochMetrics(epoch, loss, accuracy, test.Loss, test.Accuracy, Schedule.At(Math.Max(0, Step - 1)), seconds,
            n / seconds, n * length / seconds), test);
    }

    /// <summary>Trains one epoch: returns the mean loss, the accuracy (both in train mode) and the seconds taken.</summary>
    /// <param name="inputs">Training sequences <c>[N, L, F]</c>.</param>
    /// <param name="labels">Training labels <c>[N]</c>, int64.</param>
    /// <param name="epoch">The 1-based epoch number (for the reports).</param>
    /// <param name="progress">Called after every batch, or null.</param>
    public (double Loss, double Accuracy, double Seconds) TrainEpoch(Tensor inputs, Tensor labels, int epoch, Action<BatchProgress>? progress = null)
    {
        CheckData(inputs, labels);
        int n = (int)inputs.shape[0];
        long length = inputs.shape[1];
        network.train();
        using var order = randperm(n, generator: shuffle).to(inputs.device);
        double lossSum = 0;
        long correct = 0;
        int done = 0;
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < n; start += Options.BatchSize)
        {
            using var scope = NewDisposeScope();
            int size = Math.Min(Options.BatchSize, n - start);
            var index = order.narrow(0, start, size);
            var x = inputs.index_select(0, index);
            var y = labels.index_select(0, index);
            double lr = Schedule.At(Math.Min(Step, Schedule.TotalSteps - 1));
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            optimizer.zero_grad();
            var logp = network.forward(x);
            var loss = nn.functional.nll_loss(logp, y);
            loss.backward();
            if (Options.ClipNorm > 0) nn.utils.clip_grad_norm_(network.parameters(), Options.ClipNorm);
            optimizer.step();
            Step++;
            lossSum += loss.item<float>() * size;
            correct += (logp.argmax(1) == y).sum().item<long>();
            done += size;
            if (progress is not null)
            {
                double s = Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                progress(new BatchProgress(epoch, done, n, lossSum / done, (double)correct / done, done / s, done * length / s));
            }
        }
        return (lossSum / n, (double)correct / n, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Evaluates in eval mode under <c>no_grad</c>: the mean loss and the confusion matrix.</summary>
    /// <param name="network">The classifier.</param>
    /// <param name="inputs">Sequences <c>[N, L, F]</c>.</param>
    /// <param name="labels">Labels <c>[N]</c>, int64, each in [0, classes).</param>
    /// <param name="classes">The number of classes.</param>
    /// <param name="batchSize">Images per forward.</param>
    public static EvaluationResult Evaluate(nn.Module<Tensor, Tensor> network, Tensor inputs, Tensor labels, int classes, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(network);
        CheckData(inputs, labels);
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, $"Expected at least 1 class; got {classes}.");
        using var predictions = Predict(network, inputs, batchSize);
        using var scope = NewDisposeScope();
        var y = labels.cpu();
        double loss = nn.functional.nll_loss(predictions.log(), y).item<double>();
        var predicted = predictions.argmax(1).data<long>().ToArray();
        var truth = y.data<long>().ToArray();
        var confusion = new long[classes, classes];
        for (int i = 0; i < truth.Length; i++) confusion[truth[i], predicted[i]]++;
        return new EvaluationResult(loss, confusion);
    }

    /// <summary>Class probabilities <c>[N, classes]</c> (float64, on the CPU), in eval mode under <c>no_grad</c>.</summary>
    /// <param name="network">The classifier.</param>
    /// <param name="inputs">Sequences <c>[N, L, F]</c>.</param>
    /// <param name="batchSize">Images per forward.</param>
    public static Tensor Predict(nn.Module<Tensor, Tensor> network, Tensor inputs, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.dim() != 3) throw new ArgumentException($"Expected sequences [N, L, F]; got shape [{string.Join(", ", inputs.shape)}].", nameof(inputs));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"Expected a batch size of at least 1; got {batchSize}.");
        network.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        long n = inputs.shape[0];
        for (long start = 0; start < n; start += batchSize)
        {
            var x = inputs.narrow(0, start, Math.Min(batchSize, n - start));
            parts.Add(network.forward(x).to(ScalarType.Float64).exp().cpu());
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        optimizer.Dispose();
        shuffle.Dispose();
    }

    private static void CheckData(Tensor inputs, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        if (inputs.dim() != 3) throw new ArgumentException($"Expected sequences [N, L, F]; got shape [{string.Join(", ", inputs.shape)}].", nameof(inputs));
        if (labels.dim() != 1 || labels.shape[0] != inputs.shape[0])
            throw new ArgumentException($"Expected labels [{inputs.shape[0]}]; got shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        if (labels.dtype != ScalarType.Int64) throw new ArgumentException($"Expected int64 labels; got {labels.dtype}.", nameof(labels));
        if (inputs.shape[0] < 1) throw new ArgumentException("Expected at least one sequence; got none.", nameof(inputs));
    }
}
