using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The Gated DeltaNet model in discretax's shape: <c>numBlocks</c> <see cref="StandardBlock"/>s, each a
/// <see cref="GatedDeltaNetSequenceMixer"/> (fla's layer: short convolutions, output gate, per-head decay and beta) and
/// a <see cref="GLU"/> without bias, with the blocks' norm, GELU and dropout in the standard layout.
/// <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c>; compose with an encoder and a head like <see cref="DeltaNet"/>.
/// </summary>
/// <remarks>
/// Defaults for small hidden sizes (fla's layer defaults, head size 256 and 6 heads, are sized for hidden 2048):
/// 2 query/key heads of <c>hiddenDim / 2</c> (32 at hidden 64), values expanded 2x (<c>expandV</c>, 64 per head at
/// hidden 64), so the q and k projections are <c>H x H</c> and v, g and o <c>H x 2H</c>: about 8 H^2 parameters per
/// mixer, close to fla's budget of 6 H^2. The block norm is batch norm as in discretax's other models (not causal in
/// training mode; use <see cref="NormKind.Layer"/> or <see cref="NormKind.Rms"/> for language models).
/// </remarks>
public sealed class GatedDeltaNet : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks.</param>
    /// <param name="numHeads">Query/key heads per mixer.</param>
    /// <param name="headDim">Key size per head; default <c>hiddenDim / numHeads</c> (which must divide).</param>
    /// <param name="numVHeads">Value heads per mixer, a multiple of <paramref name="numHeads"/>; default <paramref name="numHeads"/>.</param>
    /// <param name="expandV">Value size per head as a multiple of the key size.</param>
    /// <param name="useGate">The output gate of the mixers.</param>
    /// <param name="useShortConv">The short convolutions of the mixers.</param>
    /// <param name="chunkSize">The chunk size of the gated delta-rule kernel.</param>
    /// <param name="dropRate">Dropout probability of the blocks.</param>
    /// <param name="prenorm">Normalize before the mixers.</param>
    /// <param name="norm">The blocks' norm.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public GatedDeltaNet(long hiddenDim, int numBlocks = 4, int numHeads = 2, int? headDim = null, int? numVHeads = null,
        double expandV = 2, bool useGate = true, bool useShortConv = true, int chunkSize = 64, double dropRate = 0.1,
        bool prenorm = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(GatedDeltaNet), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new GatedDeltaNetSequenceMixer(h, numHeads, headDim ?? HeadDim(h, numHeads), numVHeads, expandV, useGate,
                useShortConv, chunkSize: chunkSize),
            h => new GLU(h, useBias: false), dropRate, prenorm, norm, activation))
    {
    }

    private static int HeadDim(long hiddenDim, int numHeads)
    {
        Check.AtLeast(numHeads, 1);
        if (hiddenDim % numHeads != 0)
            throw new ArgumentException($"hiddenDim ({hiddenDim}) must be divisible by numHeads ({numHeads}) when headDim is not given.", nameof(numHeads));
        return (int)(hiddenDim / numHeads);
    }
}
