using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a <see cref="SequenceMixers.GatedDeltaNetSequenceMixer"/>: the gated delta-rule memory
/// <c>S [B, HV, Dk, Dv]</c> (one per value head) after the last step and, with short convolutions, the caches of the
/// q, k and v convolutions.
/// </summary>
public sealed class GatedDeltaNetState : DeltaRuleMemoryState
{
    /// <summary>Creates the state; it owns every tensor and child given.</summary>
    /// <param name="s">The memory <c>S [B, HV, Dk, Dv]</c>, real floating point.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    /// <param name="qConv">The q convolution's state (with short convolutions), else null.</param>
    /// <param name="kConv">The k convolution's state, else null.</param>
    /// <param name="vConv">The v convolution's state, else null.</param>
    public GatedDeltaNetState(Tensor s, ScalarType dtype, ShortConvolutionState? qConv = null, ShortConvolutionState? kConv = null,
        ShortConvolutionState? vConv = null)
        : base(s, dtype, qConv, kConv, vConv, "[B, HV, Dk, Dv]")
    {
        Check.RealFloating(s);
    }

    private protected override DeltaRuleMemoryState With(Tensor s, ShortConvolutionState? qConv, ShortConvolutionState? kConv,
        ShortConvolutionState? vConv) => new GatedDeltaNetState(s, DType, qConv, kConv, vConv);
}
