namespace MnistClassifier.Tests;

/// <summary>Values pinned from the first run of the code, so that silent changes fail a test.</summary>
public static class PinnedValues
{
    /// <summary>The first five entries of the permuted layout's permutation of 784 pixels.</summary>
    public static readonly int[] PermutationStart = { 191, 763, 203, 316, 496 };
}
