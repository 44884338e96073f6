using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a <see cref="SequenceMixers.LinOSSSequenceMixer"/> after the last step: the oscillators' velocity-like
/// <c>z [B, N, 2]</c> and position <c>y [B, N, 2]</c> (last axis: the real and imaginary part of <c>B u</c>'s channels).
/// </summary>
public sealed class LinOSSState : StreamingState
{
    /// <summary>Creates the state; it owns <paramref name="z"/> and <paramref name="y"/>.</summary>
    /// <param name="z">The first component of the oscillator state, <c>[B, N, 2]</c>.</param>
    /// <param name="y">The second component (the position read out by C), <c>[B, N, 2]</c>.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    public LinOSSState(Tensor z, Tensor y, ScalarType dtype) : base(StateChecks.Batch(z, 3, "z [B, N, 2]"), z.device, dtype)
    {
        StateChecks.Matches(y, BatchSize, Device, "y [B, N, 2]");
        Z = z;
        Y = y;
    }

    /// <summary>The first component of the oscillator state, <c>[B, N, 2]</c>.</summary>
    public Tensor Z { get; }

    /// <summary>The second component (the position), <c>[B, N, 2]</c>.</summary>
    public Tensor Y { get; }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("z", Z);
        yield return new("y", Y);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new LinOSSState(map(Z), map(Y), DType);

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the state fits <paramref name="stateDim"/> oscillators.</summary>
    internal void Validate(long stateDim, string module)
    {
        ExpectShape("z", new[] { BatchSize, stateDim, 2 }, "[B, N, 2]", module);
        ExpectShape("y", new[] { BatchSize, stateDim, 2 }, "[B, N, 2]", module);
    }
}
