using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a block (<see cref="Blocks.StandardBlock"/>, <see cref="Blocks.MLSTMBlock"/>,
/// <see cref="Blocks.TransformerBlock"/>): the state of its sequence mixer, the block's one recurrent part.
/// </summary>
public sealed class BlockState : StreamingState
{
    /// <summary>Creates the state; it owns <paramref name="mixer"/>.</summary>
    /// <param name="mixer">The sequence mixer's state.</param>
    public BlockState(StreamingState mixer) : base(mixer.BatchSize, mixer.Device, mixer.DType)
    {
        Mixer = mixer;
    }

    /// <summary>The sequence mixer's state.</summary>
    public StreamingState Mixer { get; }

    /// <inheritdoc />
    public override IReadOnlyList<StreamingState> Children => new[] { Mixer };

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors() => Array.Empty<KeyValuePair<string, Tensor>>();

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) => new BlockState(Mixer.Map(map, device));
}
