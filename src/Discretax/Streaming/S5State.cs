using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>The complex state <c>x [B, P]</c> of an <see cref="SequenceMixers.S5SequenceMixer"/> after the last step (complex64, complex128 for a float64 mixer).</summary>
public sealed class S5State : SingleTensorState
{
    /// <summary>Creates the state; it owns <paramref name="x"/>.</summary>
    /// <param name="x">The state, <c>[B, P]</c>.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    public S5State(Tensor x, ScalarType dtype) : base("x", x, 2, "x [B, P]", dtype) { }

    /// <summary>The state, <c>[B, P]</c>.</summary>
    public Tensor X => Value;

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new S5State(map(Value), DType);
}
