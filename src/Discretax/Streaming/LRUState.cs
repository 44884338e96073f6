using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>The complex state <c>h [B, N]</c> of an <see cref="SequenceMixers.LRUSequenceMixer"/> after the last step (complex64, complex128 for a float64 mixer).</summary>
public sealed class LRUState : SingleTensorState
{
    /// <summary>Creates the state; it owns <paramref name="h"/>.</summary>
    /// <param name="h">The state, <c>[B, N]</c>.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    public LRUState(Tensor h, ScalarType dtype) : base("h", h, 2, "h [B, N]", dtype) { }

    /// <summary>The state, <c>[B, N]</c>.</summary>
    public Tensor H => Value;

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new LRUState(map(Value), DType);
}
