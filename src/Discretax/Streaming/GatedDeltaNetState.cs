using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a <see cref="SequenceMixers.GatedDeltaNetSequenceMixer"/>: the gated delta-rule memory
/// <c>S [B, HV, Dk, Dv]</c> (one per value head) after the last step and, with short convolutions, the caches of the
/// q, k and v convolutions.
/// </summary>
public sealed class GatedDeltaNetState : StreamingState
{
    /// <summary>Creates the state; it owns every tensor and child given.</summary>
    /// <param name="s">The memory <c>S [B, HV, Dk, Dv]</c>.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    /// <param name="qConv">The q convolution's state (with short convolutions), else null.</param>
    /// <param name="kConv">The k convolution's state, else null.</param>
    /// <param name="vConv">The v convolution's state, else null.</param>
    public GatedDeltaNetState(Tensor s, ScalarType dtype, ShortConvolutionState? qConv = null, ShortConvolutionState? kConv = null,
        ShortConvolutionState? vConv = null)
        : base(StateChecks.Batch(s, 4, "S [B, HV, Dk, Dv]"), s.device, dtype)
    {
        Check.RealFloating(s);
        if ((qConv is null) != (kConv is null) || (qConv is null) != (vConv is null))
            throw new ArgumentException("Expected either all three convolution states (q, k, v) or none.", nameof(qConv));
        if (qConv is not null)
        {
            StateChecks.Child(qConv, BatchSize, Device, DType);
            StateChecks.Child(kConv!, BatchSize, Device, DType);
            StateChecks.Child(vConv!, BatchSize, Device, DType);
        }
        S = s;
        QConv = qConv;
        KConv = kConv;
        VConv = vConv;
    }

    /// <summary>The gated delta-rule memory <c>S [B, HV, Dk, Dv]</c>.</summary>
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
        new GatedDeltaNetState(map(S), DType, (ShortConvolutionState?)QConv?.Map(map, device),
            (ShortConvolutionState?)KConv?.Map(map, device), (ShortConvolutionState?)VConv?.Map(map, device));

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the state fits a mixer of these sizes.</summary>
    internal void Validate(long valueHeads, long keyDim, long valueDim, int? convSize, long qkChannels, long vChannels, string module)
    {
        ExpectShape("S", new[] { BatchSize, valueHeads, keyDim, valueDim }, "[B, HV, Dk, Dv]", module);
        if ((convSize is null) != (QConv is null))
            throw new ArgumentException(convSize is null
                ? $"{module} has no short convolutions, but the GatedDeltaNetState carries convolution states (a state of another mixer)."
                : $"{module} has short convolutions, but the GatedDeltaNetState carries no convolution states (a state of another mixer).", "state");
        if (convSize is int k)
        {
            QConv!.Validate(k, qkChannels, module);
            KConv!.Validate(k, qkChannels, module);
            VConv!.Validate(k, vChannels, module);
        }
    }
}
