using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of an mLSTM layer (<see cref="SequenceMixers.MLSTMSequenceMixer"/>,
/// <see cref="SequenceMixers.MLSTMV1SequenceMixer"/>) after some step t: the cell's
/// stabilized matrix memory <c>C [B, NH, Dk, Dv]</c>, stabilized normalizer <c>n [B, NH, Dk]</c> and log-space
/// stabilizer <c>m [B, NH]</c> (Beck et al. 2024, https://arxiv.org/abs/2405.04517; the true memory is
/// <c>C exp(m)</c>), and, for the layer with a causal convolution (<see cref="SequenceMixers.MLSTMSequenceMixer"/>),
/// that convolution's state (null for <see cref="SequenceMixers.MLSTMV1SequenceMixer"/>).
/// </summary>
/// <remarks>
/// C# property names are capitalized: <see cref="N"/> is the paper's normalizer <c>n</c>, <see cref="M"/> its
/// stabilizer <c>m</c>; <see cref="StreamingState.Tensors"/> names them <c>"C"</c>, <c>"n"</c>, <c>"m"</c>. The
/// cell's tensors are float32 for float32 and lower-precision layers, float64 for float64 layers.
/// </remarks>
public sealed class MLSTMState : StreamingState
{
    /// <summary>Creates the state; it owns every tensor and child given.</summary>
    /// <param name="c">The stabilized memory <c>C [B, NH, Dk, Dv]</c>.</param>
    /// <param name="n">The stabilized normalizer <c>n [B, NH, Dk]</c>.</param>
    /// <param name="m">The stabilizer <c>m [B, NH]</c>.</param>
    /// <param name="dtype">The compute dtype of the layer that made it.</param>
    /// <param name="conv">The causal convolution's state, for the layer that has one; else null.</param>
    public MLSTMState(Tensor c, Tensor n, Tensor m, ScalarType dtype, ShortConvolutionState? conv = null)
        : base(StateChecks.Batch(c, 4, "C [B, NH, Dk, Dv]"), c.device, dtype)
    {
        Check.RealFloating(c);
        Check.RealFloating(n);
        Check.RealFloating(m);
        StateChecks.Matches(n, BatchSize, Device, "n [B, NH, Dk]");
        StateChecks.Matches(m, BatchSize, Device, "m [B, NH]");
        if (n.dim() != 3 || n.shape[1] != c.shape[1] || n.shape[2] != c.shape[2])
            throw new ArgumentException($"Expected n [B, NH, Dk] = [{c.shape[0]}, {c.shape[1]}, {c.shape[2]}] to match C; got shape [{string.Join(", ", n.shape)}].", nameof(n));
        if (m.dim() != 2 || m.shape[1] != c.shape[1])
            throw new ArgumentException($"Expected m [B, NH] = [{c.shape[0]}, {c.shape[1]}] to match C; got shape [{string.Join(", ", m.shape)}].", nameof(m));
        if (conv is not null) StateChecks.Child(conv, BatchSize, Device, DType);
        C = c;
        N = n;
        M = m;
        Conv = conv;
    }

    /// <summary>The stabilized matrix memory <c>C [B, NH, Dk, Dv]</c>.</summary>
    public Tensor C { get; }

    /// <summary>The stabilized normalizer <c>n [B, NH, Dk]</c>.</summary>
    public Tensor N { get; }

    /// <summary>The stabilizer <c>m [B, NH]</c> (log scale).</summary>
    public Tensor M { get; }

    /// <summary>The causal convolution's state, or null for a layer without one.</summary>
    public ShortConvolutionState? Conv { get; }

    /// <summary>The number of heads NH.</summary>
    public long NumHeads => C.shape[1];

    /// <summary>The key (and query) dimension Dk per head.</summary>
    public long KeyDim => C.shape[2];

    /// <summary>The value dimension Dv per head.</summary>
    public long ValueDim => C.shape[3];

    /// <inheritdoc />
    public override IReadOnlyList<StreamingState> Children => Conv is null ? Array.Empty<StreamingState>() : new StreamingState[] { Conv };

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("C", C);
        yield return new("n", N);
        yield return new("m", M);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) =>
        new MLSTMState(map(C), map(N), map(M), DType, (ShortConvolutionState?)Conv?.Map(map, device));

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the state fits a layer of these sizes.</summary>
    /// <param name="numHeads">The layer's heads.</param>
    /// <param name="keyDim">Dk per head.</param>
    /// <param name="valueDim">Dv per head.</param>
    /// <param name="convKernelSize">The layer's convolution kernel size, or null for a layer without one.</param>
    /// <param name="convChannels">The convolution's channels.</param>
    /// <param name="module">The layer's name, for the message.</param>
    internal void Validate(long numHeads, long keyDim, long valueDim, int? convKernelSize, long convChannels, string module)
    {
        ExpectShape("C", new[] { BatchSize, numHeads, keyDim, valueDim }, "[B, NH, Dk, Dv]", module);
        if ((convKernelSize is null) != (Conv is null))
            throw new ArgumentException(convKernelSize is null
                ? $"{module} has no convolution, but the MLSTMState carries a convolution state (a state of another layer)."
                : $"{module} has a convolution, but the MLSTMState carries none (a state of another layer).", "state");
        if (convKernelSize is int k) Conv!.Validate(k, convChannels, module);
    }
}
