using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Blocks;

/// <summary>
/// The block of flash-linear-attention's Mamba2 language model (<c>Mamba2Block</c> in
/// <c>fla/models/mamba2/modeling_mamba2.py</c>), with fla's names: one pre-norm residual around the sequence mixer,
/// no feed-forward.
/// <code>
/// y = x + mixer(norm(x))       norm: RMSNorm over H with eps normEps; mixer: the sequence mixer (fla's Mamba2 layer)
/// </code>
/// With <c>residualInFp32</c> (fla's <c>residual_in_fp32</c>, default true) the sum is taken in float32 at least
/// (<c>Precision.StateDType</c>: float32 for bfloat16/float16, float64 for float64) and cast back to the compute dtype;
/// in float32 both settings give the same values. No dropout, no activation. <c>[B, L, H] -> [B, L, H]</c>; streams the
/// mixer's state in a <see cref="BlockState"/>.
/// </summary>
/// <remarks>fla creates <c>norm</c> in float32 whatever the model's dtype and casts the block's output to that
/// norm's dtype, so in a bfloat16 fla model the hidden states between blocks stay float32; here a module has one
/// compute dtype (docs/architecture.md, "Dtypes"), so a bfloat16 model rounds them to bfloat16 after each block.</remarks>
public sealed class Mamba2Block : SequenceModule
{
    /// <summary>The RMSNorm before the mixer (gain <c>norm.weight [H]</c>).</summary>
    public RMSNorm norm;

    /// <summary>The sequence mixer (fla's <c>mixer</c>, usually a <see cref="SequenceMixers.Mamba2SequenceMixer"/>).</summary>
    public SequenceModule mixer;

    /// <summary>Creates the block.</summary>
    /// <param name="hiddenSize">The feature size H.</param>
    /// <param name="mixer">The sequence mixer <c>H -> H</c>.</param>
    /// <param name="normEps">The norm's epsilon (fla's <c>norm_eps</c>, 1e-5 by default in fla's Mamba2 config).</param>
    /// <param name="residualInFp32">Whether the residual sum is taken in float32 at least (fla's <c>residual_in_fp32</c>).</param>
    public Mamba2Block(long hiddenSize, SequenceModule mixer, double normEps = 1e-5, bool residualInFp32 = true)
        : base(nameof(Mamba2Block), Check.Dim(hiddenSize))
    {
        ArgumentNullException.ThrowIfNull(mixer);
        if (mixer.InFeatures != hiddenSize)
            throw new ArgumentException($"The sequence mixer takes {mixer.InFeatures} features; the block has {hiddenSize}.", nameof(mixer));
        Check.PositiveFinite(normEps);
        ResidualInFp32 = residualInFp32;
        norm = new RMSNorm(hiddenSize, normEps);
        this.mixer = mixer;
        RegisterComponents();
    }

    /// <summary>Whether the residual sum is taken in float32 at least.</summary>
    public bool ResidualInFp32 { get; }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="BlockState"/> holding the mixer's state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var (a, s) = RunChild(mixer, norm.forward(x), ((BlockState?)state)?.Mixer, returnState, lengths);
        return (Residual(x, a), s is null ? null : new BlockState(s));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var (a, s) = RunChildPacked(mixer, norm.forward(x), cuSeqlens, ((BlockState?)state)?.Mixer, returnState);
        return (Residual(x, a), s is null ? null : new BlockState(s));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        CheckChildState(mixer, StreamingState.Expect<BlockState>(state, nameof(Mamba2Block)).Mixer);

    private Tensor Residual(Tensor x, Tensor a)
    {
        if (!ResidualInFp32) return x + a;
        var wide = Precision.StateDType(x.dtype);
        return Precision.As(Precision.As(x, wide) + Precision.As(a, wide), x.dtype);
    }
}
