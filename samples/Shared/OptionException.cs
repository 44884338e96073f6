namespace SampleSupport;

/// <summary>
/// A value the user gave an option that the program cannot use. Its message starts with the option as the user typed
/// it and its value (<c>--hidden 7 must be divisible by the heads (4) of deltanet</c>); the command line prints it as
/// <c>error: MESSAGE</c>, then a one-line hint to <c>--help</c>, and exits with code 1.
/// </summary>
public sealed class OptionException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="option">The option, as the user typed it (e.g. <c>--hidden</c>).</param>
    /// <param name="message">The whole message, starting with the option.</param>
    /// <param name="inner">The exception that caused it, if any.</param>
    public OptionException(string option, string message, Exception? inner = null) : base(message, inner) => Option = option;

    /// <summary>The option, as the user typed it.</summary>
    public string Option { get; }
}
