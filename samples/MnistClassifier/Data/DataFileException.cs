namespace MnistClassifier.Data;

/// <summary>
/// A data file is missing or not a valid IDX file. The message names the file and what was wrong, in one line,
/// so that the program can print it as it is instead of a stack trace.
/// </summary>
public sealed class DataFileException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The file (or directory) concerned.</param>
    /// <param name="problem">What was wrong with it, without the path.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public DataFileException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
        Problem = problem;
    }

    /// <summary>The file (or directory) concerned.</summary>
    public string FilePath { get; }

    /// <summary>What was wrong, without the path.</summary>
    public string Problem { get; }
}
