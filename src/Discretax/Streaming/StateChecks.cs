using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>Construction checks shared by the state types.</summary>
internal static class StateChecks
{
    /// <summary>The batch size of <paramref name="t"/> after checking it is a tensor of rank <paramref name="rank"/>.</summary>
    public static long Batch(Tensor t, int rank, string layout, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(t, paramName);
        if (t.dim() != rank || t.shape[0] < 1)
            throw new ArgumentException($"Expected a state tensor {layout} (rank {rank}, batch at least 1); got shape {Check.Shape(t)}.", paramName);
        return t.shape[0];
    }

    /// <summary>Throws unless <paramref name="t"/> has batch size <paramref name="batch"/> and lives on <paramref name="device"/>.</summary>
    public static void Matches(Tensor t, long batch, Device device, string layout, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(t, paramName);
        if (t.dim() < 1 || t.shape[0] != batch)
            throw new ArgumentException($"Expected a state tensor {layout} with batch size {batch}; got shape {Check.Shape(t)}.", paramName);
        if (!Check.SameDevice(t.device, device))
            throw new ArgumentException($"Expected a state tensor on {device}; got one on {t.device}.", paramName);
    }

    /// <summary>Throws unless <paramref name="child"/> has the batch size, device and dtype of its parent.</summary>
    public static void Child(StreamingState child, long batch, Device device, ScalarType dtype, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(child))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(child, paramName);
        if (child.BatchSize != batch || !Check.SameDevice(child.Device, device) || child.DType != dtype)
            throw new ArgumentException($"Expected a child state of batch size {batch} on {device} in {dtype}; got {child.Describe()} on {child.Device}.", paramName);
    }
}
