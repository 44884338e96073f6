namespace MnistClassifier.Training;

/// <summary>The optimization settings of a run.</summary>
/// <param name="Epochs">Passes over the training set.</param>
/// <param name="BatchSize">Images per step.</param>
/// <param name="LearningRate">AdamW's peak learning rate.</param>
/// <param name="WeightDecay">AdamW's decoupled weight decay.</param>
/// <param name="ClipNorm">The global gradient-norm clip (0: none).</param>
/// <param name="WarmupFraction">The share of all steps spent warming up, in [0, 1].</param>
/// <param name="Seed">Seeds the shuffling of the training set.</param>
public sealed record TrainingOptions(int Epochs = 5, int BatchSize = 64, double LearningRate = 3e-3, double WeightDecay = 0.05,
    double ClipNorm = 1.0, double WarmupFraction = 0.05, long Seed = 0)
{
    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, $"Expected at least 1 epoch; got {Epochs}.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"Expected a batch size of at least 1; got {BatchSize}.");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, $"Expected a positive learning rate; got {LearningRate}.");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, $"Expected a weight decay of at least 0; got {WeightDecay}.");
        if (!(ClipNorm >= 0)) throw new ArgumentOutOfRangeException(nameof(ClipNorm), ClipNorm, $"Expected a clip norm of at least 0; got {ClipNorm}.");
        if (!(WarmupFraction >= 0 && WarmupFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(WarmupFraction), WarmupFraction, $"Expected a fraction in [0, 1]; got {WarmupFraction}.");
    }

    /// <summary>The images the default run trains on in all, whatever the data: see <see cref="AutoEpochs"/>.</summary>
    public const int DefaultImageBudget = 120_000;

    /// <summary>
    /// The default number of epochs: enough to train on about <paramref name="imageBudget"/> images, at least one
    /// (20 epochs of the embedded 6,000-image subset, 2 of full Fashion-MNIST's 60,000), so the plain run takes
    /// about the same time whichever data it finds.
    /// </summary>
    /// <param name="trainCount">The number of training images.</param>
    /// <param name="imageBudget">The images to train on in all.</param>
    public static int AutoEpochs(int trainCount, int imageBudget = DefaultImageBudget)
    {
        if (trainCount < 1) throw new ArgumentOutOfRangeException(nameof(trainCount), trainCount, $"Expected at least 1 training image; got {trainCount}.");
        return Math.Max(1, (int)Math.Round((double)imageBudget / trainCount));
    }

    /// <summary>Optimizer steps per epoch for <paramref name="trainCount"/> images (the last batch may be smaller).</summary>
    /// <param name="trainCount">The number of training images.</param>
    public int StepsPerEpoch(int trainCount) => (trainCount + BatchSize - 1) / BatchSize;
}
