namespace Discretax.Distributed;

/// <summary>An MPI function returned an error code (with Open MPI's default error handler, <c>MPI_ERRORS_ARE_FATAL</c>,
/// most errors end the job instead).</summary>
public sealed class MpiException : Exception
{
    /// <summary>Creates the exception for <paramref name="function"/>'s error <paramref name="errorCode"/>.</summary>
    /// <param name="function">The MPI function, e.g. <c>MPI_Allreduce</c>.</param>
    /// <param name="errorCode">The code it returned.</param>
    /// <param name="description">The library's text for the code (<c>MPI_Error_string</c>).</param>
    public MpiException(string function, int errorCode, string description)
        : base($"{function} failed with MPI error {errorCode}: {description}")
    {
        Function = function;
        ErrorCode = errorCode;
    }

    /// <summary>The MPI function that failed.</summary>
    public string Function { get; }

    /// <summary>The MPI error code it returned.</summary>
    public int ErrorCode { get; }
}
