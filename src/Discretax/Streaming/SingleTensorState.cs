using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>Base of the states that are one named tensor, batch first (the diagonal recurrences' states).</summary>
public abstract class SingleTensorState : StreamingState
{
    private readonly string _name;

    /// <summary>Creates the state; it owns <paramref name="value"/>.</summary>
    /// <param name="name">The tensor's name (as in <see cref="StreamingState.Tensors"/>).</param>
    /// <param name="value">The tensor, batch first.</param>
    /// <param name="rank">Its rank.</param>
    /// <param name="layout">Its layout, for messages.</param>
    /// <param name="dtype">The compute dtype of the module that made it.</param>
    protected SingleTensorState(string name, Tensor value, int rank, string layout, ScalarType dtype)
        : base(StateChecks.Batch(value, rank, layout, name), value.device, dtype)
    {
        _name = name;
        Value = value;
    }

    /// <summary>The tensor.</summary>
    protected Tensor Value { get; }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new(_name, Value);
    }

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the tensor has <paramref name="shape"/>.</summary>
    internal void Validate(long[] shape, string meaning, string module) => ExpectShape(_name, shape, meaning, module);
}
