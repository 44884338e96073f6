namespace MnistClassifier.Training;

/// <summary>Where an epoch stands, reported after every batch.</summary>
/// <param name="Epoch">The 1-based epoch.</param>
/// <param name="ImagesDone">Images trained on so far in this epoch.</param>
/// <param name="ImagesTotal">Images in the epoch.</param>
/// <param name="Loss">Mean loss so far in this epoch.</param>
/// <param name="Accuracy">Accuracy so far in this epoch.</param>
/// <param name="ImagesPerSecond">Images per second so far.</param>
/// <param name="TokensPerSecond">Sequence steps per second so far.</param>
public sealed record BatchProgress(int Epoch, int ImagesDone, int ImagesTotal, double Loss, double Accuracy,
    double ImagesPerSecond, double TokensPerSecond);
