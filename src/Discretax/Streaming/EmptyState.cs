using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>The state of a module with no memory (<see cref="SequenceMixers.IdentitySequenceMixer"/>): no tensors.</summary>
public sealed class EmptyState : StreamingState
{
    /// <summary>Creates the state.</summary>
    /// <param name="batchSize">The batch size.</param>
    /// <param name="device">The device of the sequence.</param>
    /// <param name="dtype">The compute dtype of the module.</param>
    public EmptyState(long batchSize, Device device, ScalarType dtype) : base(batchSize, device, dtype) { }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors() => Array.Empty<KeyValuePair<string, Tensor>>();

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new EmptyState(BatchSize, device, DType);
}
