using TorchSharp;

namespace MnistClassifier.Cli;

/// <summary>Turns <c>--device auto|cpu|cuda</c> into a device, falling back to the CPU with a message when CUDA is absent.</summary>
public static class DeviceChoice
{
    /// <summary>The accepted values.</summary>
    public static readonly string[] Values = { "auto", "cpu", "cuda" };

    /// <summary>The device for <paramref name="requested"/>.</summary>
    /// <param name="requested">auto (CUDA when available), cpu or cuda.</param>
    /// <param name="cudaAvailable">Whether CUDA is available (a parameter for tests; normally <c>torch.cuda.is_available()</c>).</param>
    /// <param name="warn">Receives the fall-back message, if any.</param>
    public static torch.Device Resolve(string requested, bool cudaAvailable, Action<string> warn)
    {
        ArgumentNullException.ThrowIfNull(warn);
        switch (requested.ToLowerInvariant())
        {
            case "cpu":
                return torch.CPU;
            case "auto":
                return cudaAvailable ? torch.CUDA : torch.CPU;
            case "cuda":
                if (cudaAvailable) return torch.CUDA;
                warn("--device cuda: CUDA is not available here (no NVIDIA GPU, or this build uses the CPU backend; build with "
                    + "-p:TorchBackend=cuda for a GPU), so the run uses the CPU.");
                return torch.CPU;
            default:
                throw new ArgumentException($"Expected --device to be one of {string.Join(", ", Values)}; got '{requested}'.", nameof(requested));
        }
    }
}
