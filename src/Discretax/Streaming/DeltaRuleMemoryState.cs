using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The shape shared by the delta-rule mixers' states (<see cref="DeltaNetState"/>, <see cref="GatedDeltaNetState"/>):
/// the matrix memory <c>S [B, heads, Dk, Dv]</c> after the last step and, with short convolutions, the caches of the
/// q, k and v convolutions. Each mixer checks for its own state type, so one mixer's state is refused by the other.
/// </summary>
public abstract class DeltaRuleMemoryState : StreamingState
{
    private readonly string _layout;

    /// <summary>Creates the state; it owns every tensor and child given.</summary>
    /// <param name="s">The memory <c>S</c>, rank 4, batch first.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    /// <param name="qConv">The q convolution's state (with short convolutions), else null.</param>
    /// <param name="kConv">The k convolution's state, else null.</param>
    /// <param name="vConv">The v convolution's state, else null.</param>
    /// <param name="layout">The layout of <paramref name="s"/> for messages, e.g. <c>[B, NH, Dk, Dv]</c>.</param>
    private protected DeltaRuleMemoryState(Tensor s, ScalarType dtype, ShortConvolutionState? qConv, ShortConvolutionState? kConv,
        ShortConvolutionState? vConv, string layout)
        : base(StateChecks.Batch(s, 4, "S " + layout, nameof(s)), s.device, dtype)
    {
        if ((qConv is null) != (kConv is null) || (qConv is null) != (vConv is null))
            throw new ArgumentException("Expected either all three convolution states (q, k, v) or none.", nameof(qConv));
        if (qConv is not null)
        {
            StateChecks.Child(qConv, BatchSize, Device, DType, nameof(qConv));
            StateChecks.Child(kConv!, BatchSize, Device, DType, nameof(kConv));
            StateChecks.Child(vConv!, BatchSize, Device, DType, nameof(vConv));
        }
        _layout = layout;
        S = s;
        QConv = qConv;
        KConv = kConv;
        VConv = vConv;
    }

    /// <summary>The matrix memory <c>S</c>.</summary>
    public Tensor S { get; }

    /// <summary>The q convolution's state, or null without short convolutions.</summary>
    public ShortConvolutionState? QConv { get; }

    /// <summary>The k convolution's state, or null.</summary>
    public ShortConvolutionState? KConv { get; }

    /// <summary>The v convolution's state, or null.</summary>
    public ShortConvolutionState? VConv { get; }

    /// <inheritdoc />
    public override IReadOnlyList<StreamingState> Children =>
        QConv is null ? Array.Empty<StreamingState>() : new StreamingState[] { QConv, KConv!, VConv! };

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("S", S);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) =>
        With(map(S), (ShortConvolutionState?)QConv?.Map(map, device), (ShortConvolutionState?)KConv?.Map(map, device),
            (ShortConvolutionState?)VConv?.Map(map, device));

    /// <summary>A state of this type (and dtype) holding the given tensors.</summary>
    private protected abstract DeltaRuleMemoryState With(Tensor s, ShortConvolutionState? qConv, ShortConvolutionState? kConv,
        ShortConvolutionState? vConv);

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the state fits a mixer of these sizes.</summary>
    internal void Validate(long heads, long keyDim, long valueDim, int? convSize, long qkChannels, long vChannels, string module)
    {
        ExpectShape("S", new[] { BatchSize, heads, keyDim, valueDim }, _layout, module);
        string type = GetType().Name;
        if ((convSize is null) != (QConv is null))
            throw new ArgumentException(convSize is null
                ? $"{module} has no short convolutions, but the {type} carries convolution states (a state of another mixer)."
                : $"{module} has short convolutions, but the {type} carries no convolution states (a state of another mixer).", "state");
        if (convSize is int k)
        {
            QConv!.Validate(k, qkChannels, module);
            KConv!.Validate(k, qkChannels, module);
            VConv!.Validate(k, vChannels, module);
        }
    }
}
