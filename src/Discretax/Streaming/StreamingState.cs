using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The recurrent state a streaming module carries from one piece of a sequence to the next
/// (docs/architecture.md, "Streaming"). Each module family has its own state type with named tensors
/// (<see cref="LRUState"/>, <see cref="DeltaNetState"/>, <see cref="BlockState"/>, <see cref="SequenceModelState"/>, ...)
/// and one validation method; this base holds what they share. A state knows its batch size, device and dtype,
/// moves with <see cref="To(Device)"/>, detaches with <see cref="Detach"/>, and owns its tensors: disposing it
/// disposes them and its children.
/// </summary>
public abstract class StreamingState : IDisposable
{
    private bool _disposed;

    /// <summary>Creates the state.</summary>
    /// <param name="batchSize">The batch size the state belongs to (at least 1).</param>
    /// <param name="device">The device its tensors live on.</param>
    /// <param name="dtype">The compute dtype of the module that made it (its tensors may be wider, e.g. float32
    /// recurrent states of a bfloat16 module).</param>
    protected StreamingState(long batchSize, Device device, ScalarType dtype)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size of a state must be at least 1.");
        ArgumentNullException.ThrowIfNull(device);
        BatchSize = batchSize;
        Device = device;
        DType = dtype;
    }

    /// <summary>The batch size B of the sequences this state continues.</summary>
    public long BatchSize { get; }

    /// <summary>The device of the state's tensors.</summary>
    public Device Device { get; }

    /// <summary>The compute dtype of the module that made the state.</summary>
    public ScalarType DType { get; }

    /// <summary>Whether the state was disposed.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>The tensors this state holds itself (not its children's), by name.</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => NamedTensors().ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>The child states (for example a block's mixer state, or one per block of a model).</summary>
    public virtual IReadOnlyList<StreamingState> Children => Array.Empty<StreamingState>();

    /// <summary>The tensor named <paramref name="name"/> among <see cref="Tensors"/>.</summary>
    /// <param name="name">The tensor's name.</param>
    public Tensor this[string name]
    {
        get
        {
            foreach (var (key, t) in NamedTensors())
                if (key == name) return t;
            throw new KeyNotFoundException($"A {GetType().Name} has no tensor named '{name}'; it has: {string.Join(", ", NamedTensors().Select(kv => kv.Key))}.");
        }
    }

    /// <summary>The tensors this state holds itself, with their names, batch first.</summary>
    protected abstract IEnumerable<KeyValuePair<string, Tensor>> NamedTensors();

    /// <summary>A new state of the same type whose tensors (children's too) are <paramref name="map"/> of these.</summary>
    /// <param name="map">Applied to every tensor; returns a new tensor.</param>
    /// <param name="device">The new state's device.</param>
    protected internal abstract StreamingState Map(Func<Tensor, Tensor> map, Device device);

    /// <summary>Returns a copy of this state on <paramref name="device"/>; this state is left as it is.</summary>
    /// <param name="device">The target device.</param>
    public StreamingState To(Device device)
    {
        ThrowIfDisposed();
        return Map(t => t.to(device), device);
    }

    /// <summary>Returns a copy whose tensors are detached from the autograd graph (for truncated BPTT).</summary>
    public StreamingState Detach()
    {
        ThrowIfDisposed();
        return Map(t => t.detach(), Device);
    }

    /// <summary>Moves every tensor of this state (and of its children) out of the current dispose scope.</summary>
    public StreamingState MoveToOuterDisposeScope()
    {
        foreach (var (_, t) in NamedTensors()) t.MoveToOuterDisposeScope();
        foreach (var c in Children) c.MoveToOuterDisposeScope();
        return this;
    }

    /// <summary>The number of tensors of this state and its children.</summary>
    public int TensorCount => NamedTensors().Count() + Children.Sum(c => c.TensorCount);

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming <paramref name="paramName"/> unless this state continues a
    /// batch of <paramref name="batchSize"/> sequences on <paramref name="device"/> computed in <paramref name="dtype"/>.
    /// </summary>
    /// <param name="batchSize">The batch size of the piece about to be streamed.</param>
    /// <param name="device">The device of that piece.</param>
    /// <param name="dtype">The compute dtype of the module about to continue the state.</param>
    /// <param name="paramName">The argument name to report.</param>
    public void CheckCompatible(long batchSize, Device device, ScalarType dtype, string paramName)
    {
        if (_disposed) throw new ObjectDisposedException(paramName, $"The {GetType().Name} was disposed.");
        if (BatchSize != batchSize)
            throw new ArgumentException($"The {GetType().Name} was made for batch size {BatchSize}, but the input has batch size {batchSize}.", paramName);
        if (!Check.SameDevice(Device, device))
            throw new ArgumentException($"The {GetType().Name} is on {Device}, but the input is on {device}; move it with state.To(device).", paramName);
        if (DType != dtype)
            throw new ArgumentException($"The {GetType().Name} was made by a module computing in {DType}, but this module computes in {dtype}.", paramName);
    }

    /// <summary>
    /// <paramref name="state"/> as a <typeparamref name="TState"/>, or an <see cref="ArgumentException"/> naming
    /// <c>state</c> that says which module expected what.
    /// </summary>
    /// <param name="state">The state given to the module.</param>
    /// <param name="module">The module's name, for the message.</param>
    public static TState Expect<TState>(StreamingState state, string module) where TState : StreamingState
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state is TState typed) return typed;
        throw new ArgumentException($"{module} continues from a {typeof(TState).Name}; got a {state.GetType().Name}: {state.Describe()}.", "state");
    }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming <c>state</c> unless tensor <paramref name="name"/> of this
    /// state has <paramref name="shape"/> (the batch size first).
    /// </summary>
    /// <param name="name">The tensor's name.</param>
    /// <param name="shape">The expected shape.</param>
    /// <param name="meaning">What the dimensions are, e.g. <c>"[B, N]"</c>.</param>
    /// <param name="module">The module's name, for the message.</param>
    protected void ExpectShape(string name, long[] shape, string meaning, string module)
    {
        var t = this[name];
        if (!t.shape.SequenceEqual(shape))
            throw new ArgumentException($"{module} expects a {GetType().Name} with {name} {meaning} = {Check.Shape(shape)}; got {name} of shape {Check.Shape(t)} (a state of a module with other sizes).", "state");
    }

    /// <summary>A one-line description: type, batch, dtype, and each tensor's shape.</summary>
    public string Describe() =>
        $"{GetType().Name}(B = {BatchSize}, {DType}" +
        string.Concat(NamedTensors().Select(kv => $", {kv.Key} {Check.Shape(kv.Value)}")) +
        (Children.Count == 0 ? "" : $", {Children.Count} children") + ")";

    private void ThrowIfDisposed()
    {
        if (_disposed) throw new ObjectDisposedException(GetType().Name);
    }

    /// <summary>Disposes the state's tensors and children.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the state's tensors and children.</summary>
    /// <param name="disposing">Whether called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        if (!disposing) return;
        foreach (var (_, t) in NamedTensors()) t.Dispose();
        foreach (var c in Children) c.Dispose();
    }
}
