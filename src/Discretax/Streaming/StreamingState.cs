using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The recurrent state a streaming module carries from one piece of a sequence to the next
/// (DESIGN.md §3). A state knows its batch size, device and dtype, moves with <see cref="To(Device)"/>,
/// and owns its tensors: disposing it disposes them.
/// </summary>
/// <remarks>
/// The base holds named tensors and child states; most modules need nothing more (a block's state is its
/// mixer's state; a model's state is one child per block). Kernels with a fixed state layout (for example
/// the mLSTM's <c>(C, n, m)</c>) derive typed states from it.
/// </remarks>
public class StreamingState : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors;
    private readonly List<StreamingState?> _children;
    private bool _disposed;

    /// <summary>Creates a state that owns <paramref name="tensors"/> and <paramref name="children"/>.</summary>
    /// <param name="batchSize">The batch size the state belongs to.</param>
    /// <param name="device">The device its tensors live on.</param>
    /// <param name="dtype">The dtype of the sequence it was computed from (its tensors may be wider).</param>
    /// <param name="tensors">Named tensors, each with the batch as its first dimension.</param>
    /// <param name="children">Child states (null for a child that carries no state).</param>
    public StreamingState(long batchSize, Device device, ScalarType dtype,
        IEnumerable<KeyValuePair<string, Tensor>>? tensors = null, IEnumerable<StreamingState?>? children = null)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size of a state must be at least 1.");
        BatchSize = batchSize;
        Device = device;
        DType = dtype;
        _tensors = tensors is null ? new() : new(tensors);
        foreach (var (name, t) in _tensors)
        {
            if (t.dim() == 0 || t.shape[0] != batchSize)
                throw new ArgumentException($"State tensor '{name}' must have the batch size {batchSize} as its first dimension; got shape [{string.Join(", ", t.shape)}].", nameof(tensors));
        }
        _children = children is null ? new() : new(children);
    }

    /// <summary>The batch size B of the sequences this state continues.</summary>
    public long BatchSize { get; }

    /// <summary>The device of the state's tensors.</summary>
    public Device Device { get; }

    /// <summary>The dtype of the sequence the state was computed from.</summary>
    public ScalarType DType { get; }

    /// <summary>The named tensors of this state.</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => _tensors;

    /// <summary>The child states (for example one per block of a model).</summary>
    public IReadOnlyList<StreamingState?> Children => _children;

    /// <summary>The tensor named <paramref name="name"/>.</summary>
    public Tensor this[string name] => _tensors.TryGetValue(name, out var t)
        ? t
        : throw new KeyNotFoundException($"This state has no tensor named '{name}'; it has: {string.Join(", ", _tensors.Keys)}.");

    /// <summary>Returns a copy of this state on <paramref name="device"/>; this state is left as it is.</summary>
    public virtual StreamingState To(Device device) =>
        new(BatchSize, device, DType,
            _tensors.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.to(device))),
            _children.Select(c => c?.To(device)));

    /// <summary>Returns a copy whose tensors are detached from the autograd graph (for truncated BPTT).</summary>
    public virtual StreamingState Detach() =>
        new(BatchSize, Device, DType,
            _tensors.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach())),
            _children.Select(c => c?.Detach()));

    /// <summary>Moves every tensor of this state (and of its children) out of the current dispose scope.</summary>
    public StreamingState MoveToOuterDisposeScope()
    {
        foreach (var t in _tensors.Values) t.MoveToOuterDisposeScope();
        foreach (var c in _children) c?.MoveToOuterDisposeScope();
        return this;
    }

    /// <summary>Throws unless this state continues a batch of <paramref name="batchSize"/> sequences on <paramref name="device"/>.</summary>
    /// <param name="batchSize">The batch size of the piece about to be streamed.</param>
    /// <param name="device">The device of that piece.</param>
    /// <param name="paramName">The argument name to report.</param>
    public void CheckCompatible(long batchSize, Device device, string paramName)
    {
        if (_disposed) throw new ObjectDisposedException(paramName, "The streaming state was disposed.");
        if (BatchSize != batchSize)
            throw new ArgumentException($"The state was made for batch size {BatchSize}, but the input has batch size {batchSize}.", paramName);
        if (Device.type != device.type || (Device.index >= 0 && device.index >= 0 && Device.index != device.index))
            throw new ArgumentException($"The state is on {Device}, but the input is on {device}; move it with state.To(device).", paramName);
    }

    /// <summary>Disposes the state's tensors and children.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the state's tensors and children.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        if (!disposing) return;
        foreach (var t in _tensors.Values) t.Dispose();
        foreach (var c in _children) c?.Dispose();
    }
}
