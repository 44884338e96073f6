using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The Mamba2 model in discretax's shape: <c>numBlocks</c> <see cref="StandardBlock"/>s, each a
/// <see cref="Mamba2SequenceMixer"/> and a <see cref="GLU"/> without bias, with the blocks' norm, GELU and dropout in
/// the standard layout. <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c>; compose with an encoder and a head.
/// </summary>
/// <remarks>
/// Defaults for small hidden sizes: inner size <c>2 H</c> (mamba's <c>expand</c> 2) in 4 heads (of 32 at hidden 64;
/// mamba's fixed <c>headdim</c> 64 would leave 2 heads there and none below hidden 32), state size 64
/// (<c>Mamba2Simple</c>'s <c>d_state</c>), one group.
/// mamba_ssm's own language models stack Mamba2 mixers without a channel mixer (<c>d_intermediate = 0</c>); for that
/// layout build <see cref="SequenceModel.Standard"/> with an <see cref="IdentityChannelMixer"/>. The block norm is
/// batch norm as in discretax's other models (not causal in training mode; use <see cref="NormKind.Layer"/> or
/// <see cref="NormKind.Rms"/> for language models).
/// </remarks>
public sealed class Mamba2 : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks.</param>
    /// <param name="stateSize">The SSM state size N of the mixers.</param>
    /// <param name="numHeads">The heads per mixer when <paramref name="headDim"/> is not given: <c>headDim = expand * hiddenDim / numHeads</c>.</param>
    /// <param name="headDim">The head size P; must divide <c>expand * hiddenDim</c>; default from <paramref name="numHeads"/>.</param>
    /// <param name="expand">The mixers' inner size as a multiple of H.</param>
    /// <param name="numGroups">Groups of B and C per mixer.</param>
    /// <param name="convSize">The mixers' convolution kernel size.</param>
    /// <param name="chunkSize">The chunk size of the SSD kernel.</param>
    /// <param name="dropRate">Dropout probability of the blocks.</param>
    /// <param name="prenorm">Normalize before the mixers.</param>
    /// <param name="norm">The blocks' norm.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public Mamba2(long hiddenDim, int numBlocks = 4, int stateSize = 64, int numHeads = 4, int? headDim = null, int expand = 2, int numGroups = 1,
        int convSize = 4, int chunkSize = 64, double dropRate = 0.1, bool prenorm = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(Mamba2), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new Mamba2SequenceMixer(h, stateSize, convSize, expand, headDim ?? HeadDim(h, expand, numHeads), numGroups, chunkSize: chunkSize),
            h => new GLU(h, useBias: false), dropRate, prenorm, norm, activation))
    {
    }

    private static int HeadDim(long hiddenDim, int expand, int numHeads)
    {
        Check.AtLeast(expand, 1);
        Check.AtLeast(numHeads, 1);
        if (expand * hiddenDim % numHeads != 0)
            throw new ArgumentException($"expand * hiddenDim ({expand * hiddenDim}) must be divisible by numHeads ({numHeads}) when headDim is not given.", nameof(numHeads));
        return (int)(expand * hiddenDim / numHeads);
    }
}
