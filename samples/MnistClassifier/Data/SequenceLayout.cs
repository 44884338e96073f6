namespace MnistClassifier.Data;

/// <summary>How a 28x28 image is read as a sequence.</summary>
public enum SequenceLayout
{
    /// <summary>One step per row: 28 steps of 28 features (fast).</summary>
    Rows,

    /// <summary>One step per pixel, row-major: 784 steps of 1 feature (sequential MNIST).</summary>
    Pixels,

    /// <summary>One step per pixel in a fixed random order: 784 steps of 1 feature (permuted sequential MNIST).</summary>
    Permuted,
}
