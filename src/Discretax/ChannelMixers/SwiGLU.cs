using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// SwiGLU feed-forward channel mixer (Shazeer 2020, arXiv 2002.05202): <c>y = w2(silu(w1(x)) * w3(x))</c>,
/// no biases. The intermediate width defaults to <c>int(H * hiddenRatio * 2/3)</c> rounded up to a multiple
/// of 256, as in the PyTorch DeltaNet package and LLaMA-style feed-forwards.
/// </summary>
public sealed class SwiGLU : ChannelMixer
{
    /// <summary>The gate projection <c>H -> intermediateDim</c>.</summary>
    public Linear w1;

    /// <summary>The output projection <c>intermediateDim -> outFeatures</c>.</summary>
    public Linear w2;

    /// <summary>The value projection <c>H -> intermediateDim</c>.</summary>
    public Linear w3;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">Input feature size H.</param>
    /// <param name="hiddenRatio">The ratio of the nominal hidden width to H (used when <paramref name="intermediateDim"/> is null).</param>
    /// <param name="intermediateDim">The intermediate width; default <c>ceil(int(H * hiddenRatio * 2/3) / 256) * 256</c>.</param>
    /// <param name="outFeatures">Output feature size (default H).</param>
    public SwiGLU(long inFeatures, double hiddenRatio = 4, long? intermediateDim = null, long? outFeatures = null)
        : base(nameof(SwiGLU), inFeatures, outFeatures ?? inFeatures)
    {
        Check.PositiveFinite(hiddenRatio);
        if (intermediateDim is < 1) throw new ArgumentOutOfRangeException(nameof(intermediateDim), intermediateDim, $"Expected an intermediate width of at least 1; got {intermediateDim}.");
        IntermediateDim = intermediateDim ?? DefaultIntermediateDim(inFeatures, hiddenRatio);
        w1 = nn.Linear(inFeatures, IntermediateDim, hasBias: false);
        w2 = nn.Linear(IntermediateDim, OutFeatures, hasBias: false);
        w3 = nn.Linear(inFeatures, IntermediateDim, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The intermediate width.</summary>
    public long IntermediateDim { get; }

    /// <summary>The default intermediate width: <c>int(H * hiddenRatio * 2/3)</c> rounded up to a multiple of 256.</summary>
    /// <param name="inFeatures">H.</param>
    /// <param name="hiddenRatio">The hidden ratio (positive and finite).</param>
    public static long DefaultIntermediateDim(long inFeatures, double hiddenRatio)
    {
        Check.AtLeast(inFeatures, 1);
        Check.PositiveFinite(hiddenRatio);
        double nominal = inFeatures * hiddenRatio * 2.0 / 3.0;
        if (!(nominal < 1L << 52))
            throw new ArgumentOutOfRangeException(nameof(hiddenRatio), hiddenRatio, $"Expected a hidden ratio giving a width below 2^52; got {hiddenRatio} (width {nominal}).");
        long raw = Math.Max(1, (long)nominal);
        return (raw + 255) / 256 * 256;
    }

    /// <inheritdoc />
    protected override Tensor Mix(Tensor x) => w2.forward(nn.functional.silu(w1.forward(x)) * w3.forward(x));
}
