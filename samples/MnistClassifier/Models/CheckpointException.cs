namespace MnistClassifier.Models;

/// <summary>A checkpoint is missing, unreadable, or does not fit the requested model; the message is one line naming the file.</summary>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="problem">What was wrong.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public CheckpointException(string path, string problem, Exception? inner = null) : base($"{path}: {problem}", inner)
    {
        FilePath = path;
    }

    /// <summary>The checkpoint file.</summary>
    public string FilePath { get; }
}
