using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>The state of a <see cref="Models.SequenceModel"/>: one state per block, in order.</summary>
public sealed class SequenceModelState : StreamingState
{
    private readonly StreamingState[] _blocks;

    /// <summary>Creates the state; it owns <paramref name="blocks"/>.</summary>
    /// <param name="blocks">One state per block (at least one), all of one batch size, device and dtype.</param>
    public SequenceModelState(IReadOnlyList<StreamingState> blocks)
        : base(First(blocks).BatchSize, First(blocks).Device, First(blocks).DType)
    {
        _blocks = blocks.ToArray();
        for (int i = 0; i < _blocks.Length; i++)
            StateChecks.Child(_blocks[i], BatchSize, Device, DType, $"blocks[{i}]");
    }

    /// <summary>The blocks' states, in order.</summary>
    public IReadOnlyList<StreamingState> Blocks => _blocks;

    /// <inheritdoc />
    public override IReadOnlyList<StreamingState> Children => _blocks;

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors() => Array.Empty<KeyValuePair<string, Tensor>>();

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) =>
        new SequenceModelState(_blocks.Select(b => b.Map(map, device)).ToArray());

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the state has one child per block.</summary>
    internal void Validate(int numBlocks, string module)
    {
        if (_blocks.Length != numBlocks)
            throw new ArgumentException($"{module} has {numBlocks} blocks, but the SequenceModelState holds {_blocks.Length} block states (a state of another model).", "state");
    }

    private static StreamingState First(IReadOnlyList<StreamingState> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        if (blocks.Count == 0) throw new ArgumentException("A model state needs at least one block state.", nameof(blocks));
        return blocks[0] ?? throw new ArgumentException("Block state 0 is null.", nameof(blocks));
    }
}
