namespace SampleSupport;

/// <summary>Error messages as the samples print them: one line each.</summary>
public static class Messages
{
    /// <summary>An exception's message as one line, without .NET's "(Parameter 'x')" suffix.</summary>
    /// <param name="e">The exception.</param>
    public static string OneLine(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        var message = e.Message;
        if (e is ArgumentException { ParamName: not null } a)
        {
            int cut = message.IndexOf($" (Parameter '{a.ParamName}')", StringComparison.Ordinal);
            if (cut >= 0) message = message[..cut];
        }
        return OneLine(message);
    }

    /// <summary>The first line of <paramref name="message"/>.</summary>
    /// <param name="message">The message.</param>
    public static string OneLine(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        int newline = message.IndexOfAny(new[] { '\r', '\n' });
        return newline < 0 ? message : message[..newline];
    }
}
