using SampleSupport;
using TorchSharp;

namespace MnistClassifier.Cli;

/// <summary>
/// Turns <c>--device auto|cpu|cuda</c> into a device: <c>auto</c> (the default) takes CUDA when it is available and
/// the CPU otherwise; <c>cuda</c> without CUDA is an error, not a silent run on the CPU.
/// </summary>
public static class DeviceChoice
{
    /// <summary>The accepted values.</summary>
    public static readonly string[] Values = { "auto", "cpu", "cuda" };

    /// <summary>The default: <c>auto</c>.</summary>
    public const string Default = "auto";

    /// <summary>The device for <paramref name="requested"/>, and how it was chosen, for the panel (e.g. <c>cpu (auto: CUDA not available)</c>).</summary>
    /// <param name="requested">auto (CUDA when available), cpu or cuda.</param>
    /// <param name="cudaAvailable">Whether CUDA is available (a parameter for tests; normally <c>torch.cuda.is_available()</c>).</param>
    /// <param name="option">The option as the user typed it, for the error.</param>
    /// <exception cref="OptionException"><paramref name="requested"/> is cuda and CUDA is not available, or an unknown value.</exception>
    public static (torch.Device Device, string Description) Resolve(string requested, bool cudaAvailable, string option = "--device")
    {
        ArgumentNullException.ThrowIfNull(requested);
        switch (requested.ToLowerInvariant())
        {
            case "cpu":
                return (torch.CPU, "cpu");
            case "auto":
                return cudaAvailable ? (new torch.Device(DeviceType.CUDA), "cuda (auto: CUDA available)") : (torch.CPU, "cpu (auto: CUDA not available)");
            case "cuda":
                if (cudaAvailable) return (new torch.Device(DeviceType.CUDA), "cuda");
                throw new OptionException(option, $"{option} cuda: CUDA is not available here (no NVIDIA GPU, or this build uses the CPU "
                    + "backend: build with -p:TorchBackend=cuda); use --device auto or --device cpu");
            default:
                throw new OptionException(option, $"{option} {requested} must be one of: {string.Join(", ", Values)}");
        }
    }
}
