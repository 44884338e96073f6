using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a <see cref="Layers.ShortConvolution"/>: the last <c>K - 1</c> inputs, <c>cache [B, K - 1, H]</c>
/// (zeros before the sequence start), in the convolution's compute dtype.
/// </summary>
public sealed class ShortConvolutionState : StreamingState
{
    /// <summary>Creates the state; it owns <paramref name="cache"/>.</summary>
    /// <param name="cache">The last K - 1 inputs, <c>[B, K - 1, H]</c>.</param>
    /// <param name="dtype">The compute dtype of the convolution that made it.</param>
    public ShortConvolutionState(Tensor cache, ScalarType dtype)
        : base(StateChecks.Batch(cache, 3, "cache [B, K - 1, H]"), cache.device, dtype)
    {
        Cache = cache;
    }

    /// <summary>The last K - 1 inputs, <c>[B, K - 1, H]</c>.</summary>
    public Tensor Cache { get; }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("cache", Cache);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new ShortConvolutionState(map(Cache), DType);

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless this state fits a convolution of these sizes.</summary>
    internal void Validate(long kernelSize, long channels, string module) =>
        ExpectShape("cache", new[] { BatchSize, kernelSize - 1, channels }, "[B, K - 1, H]", module);
}
