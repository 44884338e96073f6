namespace Discretax.Interop;

/// <summary>
/// A checkpoint file that cannot be read as what it claims to be: a safetensors header of a bad length, offsets out
/// of range, overlapping or leaving gaps, an unknown dtype, a torch.save archive without its pickle or storages, a
/// pickle that needs Python objects other than a state dict's, an inconsistent Hugging Face index. The message names
/// the file and, where one is at fault, the tensor (<see cref="TensorName"/>).
/// </summary>
public sealed class CheckpointFormatException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/> and, when one is at fault, a tensor.</summary>
    /// <param name="path">The file that is malformed.</param>
    /// <param name="tensorName">The tensor at fault, or null when the file as a whole is.</param>
    /// <param name="problem">What is wrong, as a sentence.</param>
    /// <param name="inner">The exception that revealed the problem, if any.</param>
    public CheckpointFormatException(string path, string? tensorName, string problem, Exception? inner = null)
        : base(Format(path, tensorName, problem), inner)
    {
        FilePath = path;
        TensorName = tensorName;
    }

    /// <summary>The file that is malformed.</summary>
    public string FilePath { get; }

    /// <summary>The tensor at fault, or null when the file as a whole is.</summary>
    public string? TensorName { get; }

    private static string Format(string path, string? tensorName, string problem) =>
        tensorName is null ? $"{path}: {problem}" : $"{path}: tensor '{tensorName}': {problem}";
}
