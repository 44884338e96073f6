namespace TextGenerator.Data;

/// <summary>
/// The text to train on cannot be used (a missing, empty or non-UTF-8 file, no fortunes installed). The command line
/// prints its message as <c>error: MESSAGE</c>, then its <see cref="Hint"/> if any, and exits with code 1.
/// </summary>
public sealed class TextDataException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">One line saying what is wrong.</param>
    /// <param name="hint">One line saying what to do, or null.</param>
    /// <param name="inner">The cause, if any.</param>
    public TextDataException(string message, string? hint = null, Exception? inner = null) : base(message, inner) => Hint = hint;

    /// <summary>What to do about it, or null.</summary>
    public string? Hint { get; }
}
