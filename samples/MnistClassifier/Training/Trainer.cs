using System.Diagnostics;
using Discretax.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Training;

/// <summary>
/// Trains a classifier <c>[B, L, F] -&gt; [B, classes]</c> (log-probabilities) with AdamW, the loss
/// <c>nll_loss</c>, a <see cref="LearningRateSchedule"/> (warm-up, then cosine decay) set before every step, and
/// global gradient-norm clipping. Training runs in train mode (dropout on), evaluation in eval mode under
/// <c>no_grad</c>; every batch runs under its own dispose scope, so native memory stays flat over epochs.
/// The network and the tensors passed in must be on the same device.
/// <para>
/// With a <see cref="DataParallel"/> (the <c>--distributed</c> run under <c>mpirun</c>), every process trains on its
/// shard of each epoch (<see cref="DataParallel.ShardIndices"/>), <see cref="TrainingOptions.BatchSize"/> is the batch of
/// all processes together (each takes <c>BatchSize / W</c> images per step, so the steps, the learning-rate schedule
/// and the effective batch are those of one process), the gradients are averaged before clipping and the step, the
/// batch-norm running statistics are averaged at the end of each epoch, and the reported loss and accuracy (train and
/// test) are those of all processes together: each process evaluates its part of the test set.
/// </para>
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> network;
    private readonly optim.Optimizer optimizer;
    private readonly Generator shuffle;
    private readonly DataParallel? parallel;

    /// <summary>Creates the trainer and its optimizer.</summary>
    /// <param name="network">The classifier (already on its device).</param>
    /// <param name="options">The optimization settings.</param>
    /// <param name="trainCount">The number of training images (sets the schedule's length).</param>
    /// <param name="classes">The number of classes the network predicts.</param>
    /// <param name="parallel">The data-parallel wrapper of <paramref name="network"/> for a distributed run, or null.
    /// Its world size must divide the batch size, and the training set must hold at least one batch per process.</param>
    public Trainer(nn.Module<Tensor, Tensor> network, TrainingOptions options, int trainCount, int classes = 10, DataParallel? parallel = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (trainCount < 1) throw new ArgumentOutOfRangeException(nameof(trainCount), trainCount, $"Expected at least 1 training image; got {trainCount}.");
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, $"Expected at least 2 classes; got {classes}.");
        if (parallel is not null)
        {
            if (!ReferenceEquals(parallel.Module, network)) throw new ArgumentException("Expected the DataParallel of this network.", nameof(parallel));
            if (options.BatchSize % parallel.WorldSize != 0)
                throw new ArgumentException($"Expected a batch size divisible by the {parallel.WorldSize} processes (each takes an equal part); got {options.BatchSize}.", nameof(options));
            if (trainCount < parallel.WorldSize)
                throw new ArgumentOutOfRangeException(nameof(trainCount), trainCount, $"Expected at least one training image per process ({parallel.WorldSize}); got {trainCount}.");
        }
        this.parallel = parallel;
        this.network = network;
        Options = options;
        Classes = classes;
        int total = options.Epochs * StepsPerEpoch(trainCount);
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

    /// <summary>The processes training together (1 without <see cref="DataParallel"/>).</summary>
    public int WorldSize => parallel?.WorldSize ?? 1;

    /// <summary>Optimizer steps per epoch for <paramref name="trainCount"/> images: one process's
    /// <see cref="TrainingOptions.StepsPerEpoch"/>, or, distributed, the steps through one shard of
    /// <c>trainCount / W</c> images in batches of <c>BatchSize / W</c> (the same when W divides the count).</summary>
    /// <param name="trainCount">The number of training images.</param>
    public int StepsPerEpoch(int trainCount)
    {
        if (parallel is null) return Options.StepsPerEpoch(trainCount);
        int shard = trainCount / WorldSize, batch = Options.BatchSize / WorldSize;
        return (shard + batch - 1) / batch;
    }

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
        var test = parallel is null
            ? Evaluate(network, testInputs, testLabels, Classes, Options.BatchSize)
            : EvaluateShared(testInputs, testLabels);
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
        int world = WorldSize;
        network.train();
        // One process: a fresh random order of all images. Distributed: this process's shard of the epoch, in the
        // epoch's order (the same permutation on every process, a function of the seed and the epoch).
        using var order = parallel is null
            ? randperm(n, generator: shuffle).to(inputs.device)
            : tensor(parallel.ShardIndices(n, epoch, Options.Seed)).to(inputs.device);
        int mine = (int)order.shape[0], batchSize = Options.BatchSize / world;
        double lossSum = 0;
        long correct = 0;
        int done = 0;
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < mine; start += batchSize)
        {
            using var scope = NewDisposeScope();
            int size = Math.Min(batchSize, mine - start);
            var index = order.narrow(0, start, size);
            var x = inputs.index_select(0, index);
            var y = labels.index_select(0, index);
            double lr = Schedule.At(Math.Min(Step, Schedule.TotalSteps - 1));
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            optimizer.zero_grad();
            var logp = network.forward(x);
            var loss = nn.functional.nll_loss(logp, y);
            loss.backward();
            // The mean gradient of all processes' batches, before clipping, so every process takes the same step.
            parallel?.ReduceGradients();
            if (Options.ClipNorm > 0) nn.utils.clip_grad_norm_(network.parameters(), Options.ClipNorm);
            optimizer.step();
            Step++;
            lossSum += loss.item<float>() * size;
            correct += (logp.argmax(1) == y).sum().item<long>();
            done += size;
            if (progress is not null)
            {
                // Distributed: every process is as far as this one, so all together have done W times as much.
                double s = Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                int all = done * world;
                progress(new BatchProgress(epoch, all, n, lossSum / done, (double)correct / done, all / s, all * length / s));
            }
        }
        if (parallel is null) return (lossSum / n, (double)correct / n, clock.Elapsed.TotalSeconds);

        // The running statistics of batch norms, averaged over the processes before evaluating; then the loss and
        // accuracy of all shards together.
        parallel.SynchronizeBuffers();
        using var totals = tensor(new[] { lossSum, correct, done });
        Mpi.AllReduceSum(totals);
        var t = totals.data<double>().ToArray();
        return (t[0] / t[2], t[1] / t[2], clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// <see cref="Evaluate"/> over all processes: each evaluates its contiguous part of the test set (rank r of W:
    /// images <c>[r M / W, (r + 1) M / W)</c>), and the loss sums and confusion matrices are summed over the processes.
    /// </summary>
    private EvaluationResult EvaluateShared(Tensor testInputs, Tensor testLabels)
    {
        CheckData(testInputs, testLabels);
        long m = testInputs.shape[0];
        int world = WorldSize, rank = parallel!.Rank;
        long from = m * rank / world, to = m * (rank + 1) / world;
        var totals = new double[1 + Classes * Classes];
        if (to > from)
        {
            using var x = testInputs.narrow(0, from, to - from);
            using var y = testLabels.narrow(0, from, to - from);
            var part = Evaluate(network, x, y, Classes, Options.BatchSize);
            totals[0] = part.Loss * (to - from);
            for (int i = 0; i < Classes; i++)
                for (int j = 0; j < Classes; j++) totals[1 + i * Classes + j] = part.Confusion[i, j];
        }
        using var summed = tensor(totals);
        Mpi.AllReduceSum(summed);
        var s = summed.data<double>().ToArray();
        var confusion = new long[Classes, Classes];
        for (int i = 0; i < Classes; i++)
            for (int j = 0; j < Classes; j++) confusion[i, j] = (long)s[1 + i * Classes + j];
        return new EvaluationResult(s[0] / m, confusion);
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
