using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a pooling head (<see cref="Heads.SequenceHead"/> with <c>reduce</c>) while it streams: the sum of the
/// features of every valid step so far, <c>sum [B, H]</c> (float32 at least), and their number per sequence,
/// <c>count [B]</c> (int64).
/// </summary>
public sealed class PoolingState : StreamingState
{
    /// <summary>Creates the state; it owns <paramref name="sum"/> and <paramref name="count"/>.</summary>
    /// <param name="sum">The sum over the valid steps so far, <c>[B, H]</c>.</param>
    /// <param name="count">The number of valid steps summed per sequence, int64 <c>[B]</c>.</param>
    /// <param name="dtype">The compute dtype of the head that made it.</param>
    public PoolingState(Tensor sum, Tensor count, ScalarType dtype) : base(StateChecks.Batch(sum, 2, "sum [B, H]"), sum.device, dtype)
    {
        StateChecks.Matches(count, BatchSize, Device, "count [B]");
        if (count.dim() != 1 || count.dtype != ScalarType.Int64)
            throw new ArgumentException($"Expected count as int64 [B] = [{BatchSize}]; got {count.dtype} of rank {count.dim()}.", nameof(count));
        Sum = sum;
        Count = count;
    }

    /// <summary>The sum over the valid steps so far, <c>[B, H]</c>.</summary>
    public Tensor Sum { get; }

    /// <summary>The number of valid steps summed per sequence, int64 <c>[B]</c>.</summary>
    public Tensor Count { get; }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("sum", Sum);
        yield return new("count", Count);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new PoolingState(map(Sum), map(Count), DType);

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the sum has <paramref name="features"/> features.</summary>
    internal void Validate(long features, string module) =>
        ExpectShape("sum", new[] { BatchSize, features }, "[B, H]", module);
}
