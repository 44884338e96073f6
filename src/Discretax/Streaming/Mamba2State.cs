using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// The state of a <see cref="SequenceMixers.Mamba2SequenceMixer"/>: the SSM state <c>H [B, NH, P, N]</c> (Mamba2's
/// <c>ssm_state</c>, heads x head dim x state size) after the last step, and the state of the causal convolution over
/// <c>x, B, C</c> (Mamba2's <c>conv_state</c>; its last <c>d_conv - 1</c> inputs).
/// </summary>
public sealed class Mamba2State : StreamingState
{
    /// <summary>Creates the state; it owns every tensor and child given.</summary>
    /// <param name="h">The SSM state <c>H [B, NH, P, N]</c>.</param>
    /// <param name="dtype">The compute dtype of the mixer that made it.</param>
    /// <param name="conv">The convolution's state.</param>
    public Mamba2State(Tensor h, ScalarType dtype, ShortConvolutionState conv)
        : base(StateChecks.Batch(h, 4, "H [B, NH, P, N]"), h.device, dtype)
    {
        Check.RealFloating(h);
        ArgumentNullException.ThrowIfNull(conv);
        StateChecks.Child(conv, BatchSize, Device, DType);
        H = h;
        Conv = conv;
    }

    /// <summary>The SSM state <c>H [B, NH, P, N]</c>.</summary>
    public Tensor H { get; }

    /// <summary>The convolution's state (its last <c>d_conv - 1</c> inputs).</summary>
    public ShortConvolutionState Conv { get; }

    /// <inheritdoc />
    public override IReadOnlyList<StreamingState> Children => new StreamingState[] { Conv };

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, Tensor>> NamedTensors()
    {
        yield return new("H", H);
    }

    /// <inheritdoc />
    protected internal override StreamingState Map(Func<Tensor, Tensor> map, Device device) =>
        new Mamba2State(map(H), DType, (ShortConvolutionState)Conv.Map(map, device));

    /// <summary>Throws <see cref="ArgumentException"/> (<c>state</c>) unless the state fits a mixer of these sizes.</summary>
    internal void Validate(long numHeads, long headDim, long stateSize, int convSize, long convChannels, string module)
    {
        ExpectShape("H", new[] { BatchSize, numHeads, headDim, stateSize }, "[B, NH, P, N]", module);
        Conv.Validate(convSize, convChannels, module);
    }
}
