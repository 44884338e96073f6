using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>The normalization of a <see cref="StandardBlock"/>.</summary>
public enum NormKind
{
    /// <summary>
    /// Batch normalization with statistics per channel over batch and time, no affine parameters, eps 1e-5,
    /// running averages with momentum 0.01 (discretax's default). In eval mode it uses the running
    /// statistics, so it acts per time step and streams exactly.
    /// </summary>
    Batch,

    /// <summary>Layer normalization over the features, with a learned gain and bias.</summary>
    Layer,

    /// <summary>RMS normalization over the features (<see cref="Layers.RMSNorm"/>), with a learned gain.</summary>
    Rms,
}

/// <summary>Applies a block's norm module to <c>[..., H]</c> features.</summary>
internal static class NormKindExtensions
{
    /// <summary>
    /// <paramref name="norm"/> over the last axis of <paramref name="x"/>. Batch norm sees the input as
    /// <c>[B * L, H]</c> rows (a view of a contiguous input): the same statistics per channel over batch and time as
    /// <c>BatchNorm1d</c> on <c>[B, H, L]</c>, but over contiguous memory (about 4x faster forward+backward at
    /// <c>[64, 784, 64]</c>, docs/benchmarks.md "Pixels-layout layer costs").
    /// </summary>
    /// <param name="kind">The norm kind of <paramref name="norm"/>.</param>
    /// <param name="norm">The norm module.</param>
    /// <param name="x">The input, features last.</param>
    internal static Tensor Apply(this NormKind kind, nn.Module<Tensor, Tensor> norm, Tensor x) =>
        kind == NormKind.Batch
            ? norm.forward(x.reshape(-1, x.shape[^1])).reshape(x.shape)
            : norm.forward(x);
}
