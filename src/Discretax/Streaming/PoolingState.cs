using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a pooling head (<see cref="Heads.SequenceHead"/> with <c>reduce</c>) while it streams: the sum of the
/// features of every step so far, <c>sum [B, H]</c> (float32 at least), and the number of steps.
/// </summary>
public sealed class PoolingState : StreamingState
{
    /// <summary>Creates the state; it owns <paramref name="sum"/>.</summary>
    /// <param name="sum">The sum over the steps so far, <c>[B, H]</c>.</param>
    /// <param name="steps">The number of steps summed (at least 1).</param>
    /// <param name="dtype">The compute dtype of the head that made it.</param>
    public PoolingState(Tensor sum, long steps, ScalarType dtype) : base(StateChecks.Batch(sum, 2, "sum [B, H]"), sum.device, dtype)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "Expected at least one step.");
        Sum = sum;
        Steps = steps;
    }

    /// <summary>The sum over the steps so far, <c>[B, H]</c>.</summary>
    public Tensor Sum { get; }

    /// <summary>The number of steps summed.</summary>
    public long Steps { get; }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("sum", Sum);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new PoolingState(map(Sum), Steps, DType);

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the sum has <paramref name="features"/> features.</summary>
    internal void Validate(long features, string module) =>
        ExpectShape("sum", new[] { BatchSize, features }, "[B, H]", module);
}
