using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>The complex diagonal state <c>x [B, H, N/2]</c> of an <see cref="SequenceMixers.S4DSequenceMixer"/> after the last step (complex64, complex128 for a float64 mixer).</summary>
public sealed class S4DState : SingleTensorState
{
    /// <summary>Creates the state; it owns <paramref name="x"/>.</summary>
    /// <param name="x">The state, <c>[B, H, N/2]</c>.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    public S4DState(Tensor x, ScalarType dtype) : base("x", x, 3, "x [B, H, N/2]", dtype) { }

    /// <summary>The state, <c>[B, H, N/2]</c>.</summary>
    public Tensor X => Value;

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new S4DState(map(Value), DType);
}
