namespace MnistClassifier.Training;

/// <summary>The figures of one epoch.</summary>
/// <param name="Epoch">The 1-based epoch.</param>
/// <param name="TrainLoss">Mean training loss (NLL) over the epoch's batches, in train mode.</param>
/// <param name="TrainAccuracy">Training accuracy over the epoch, in train mode.</param>
/// <param name="TestLoss">Mean test loss, in eval mode.</param>
/// <param name="TestAccuracy">Test accuracy, in eval mode.</param>
/// <param name="LearningRate">The learning rate of the epoch's last step.</param>
/// <param name="TrainSeconds">Seconds spent training (not evaluating).</param>
/// <param name="ImagesPerSecond">Training images per second.</param>
/// <param name="TokensPerSecond">Training sequence steps per second (images x L).</param>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy,
    double LearningRate, double TrainSeconds, double ImagesPerSecond, double TokensPerSecond);
