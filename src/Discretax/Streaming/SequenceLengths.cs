using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The lengths of the sequences of a right-padded batch (docs/variable-length.md): sequence b holds its steps at
/// <c>t &lt; lengths[b]</c>, and the steps after it are padding that no valid output depends on.
/// </summary>
public static class SequenceLengths
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming <paramref name="paramName"/> unless <paramref name="lengths"/>
    /// is an integer tensor <c>[batch]</c> on <paramref name="device"/> with <c>1 &lt;= lengths[b] &lt;= length</c>;
    /// returns it as int64.
    /// </summary>
    /// <param name="lengths">The lengths.</param>
    /// <param name="batch">The batch size B.</param>
    /// <param name="length">The padded length L.</param>
    /// <param name="device">The device of the batch.</param>
    /// <param name="paramName">The argument name to report.</param>
    public static Tensor Validate(Tensor lengths, long batch, long length, Device device, string paramName = "lengths") =>
        ValidateWithMin(lengths, batch, length, device, paramName).Lengths;

    /// <summary><see cref="Validate"/>, also returning the shortest length (read once from the device).</summary>
    internal static (Tensor Lengths, long Shortest) ValidateWithMin(Tensor lengths, long batch, long length, Device device, string paramName)
    {
        ArgumentNullException.ThrowIfNull(lengths, paramName);
        if (lengths.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
            throw new ArgumentException($"Expected integer lengths (int64) [B]; got {lengths.dtype}.", paramName);
        if (lengths.dim() != 1 || lengths.shape[0] != batch)
            throw new ArgumentException($"Expected lengths [B] = [{batch}] (one per sequence of the batch); got shape {Check.Shape(lengths)}.", paramName);
        if (!Check.SameDevice(lengths.device, device))
            throw new ArgumentException($"Expected lengths on the input's device {device}; got {lengths.device}.", paramName);
        var l = lengths.to_type(ScalarType.Int64);
        long min = l.min().item<long>(), max = l.max().item<long>();
        if (min < 1 || max > length)
            throw new ArgumentException($"Expected 1 <= lengths[b] <= L = {length}; got values from {min} to {max}.", paramName);
        return (l, min);
    }

    /// <summary>Whether every sequence fills the whole length (no padding at all).</summary>
    /// <param name="lengths">Validated lengths.</param>
    /// <param name="length">The padded length L.</param>
    public static bool AreFull(Tensor lengths, long length) => lengths.min().item<long>() == length;

    /// <summary>The valid steps, <c>bool [B, L]</c>: <c>t &lt; lengths[b]</c>.</summary>
    /// <param name="lengths">Validated lengths <c>[B]</c>.</param>
    /// <param name="length">The padded length L.</param>
    public static Tensor Mask(Tensor lengths, long length) =>
        arange(length, dtype: ScalarType.Int64, device: lengths.device).unsqueeze(0) < lengths.unsqueeze(1);

    /// <summary>The entries of <paramref name="steps"/> <c>[B, L, ...]</c> at each sequence's last valid step, <c>[B, ...]</c>.</summary>
    /// <param name="steps">Per-step values, time in dimension 1.</param>
    /// <param name="lengths">Validated lengths <c>[B]</c>.</param>
    public static Tensor AtLast(Tensor steps, Tensor lengths)
    {
        var shape = steps.shape.ToArray();
        shape[1] = 1;
        var view = Enumerable.Repeat(1L, (int)steps.dim()).ToArray();
        view[0] = lengths.shape[0];
        var index = (lengths - 1).view(view).expand(shape);
        return steps.gather(1, index).squeeze(1);
    }
}
