using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Kernels;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The S5 model, as discretax's <c>S5</c>: <c>numBlocks</c> <see cref="StandardBlock"/>s, each an
/// <see cref="S5SequenceMixer"/> and a <see cref="GLU"/> (Smith, Warrington, Linderman 2023,
/// https://arxiv.org/abs/2208.04933). <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c>.
/// </summary>
public sealed class S5 : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks.</param>
    /// <param name="stateDim">State size N of each mixer (see <see cref="S5SequenceMixer"/>).</param>
    /// <param name="ssmBlocks">HiPPO blocks of each mixer's initialization.</param>
    /// <param name="cInit">How each mixer's C is initialized.</param>
    /// <param name="conjSym">Conjugate symmetry in the mixers.</param>
    /// <param name="clipEigs">Clip the eigenvalues' real parts in the mixers.</param>
    /// <param name="discretization">The mixers' discretization.</param>
    /// <param name="dtMin">Smallest initial step size.</param>
    /// <param name="dtMax">Largest initial step size.</param>
    /// <param name="stepRescale">Factor on every step size.</param>
    /// <param name="dropRate">Dropout probability of the blocks.</param>
    /// <param name="prenorm">Normalize before the mixers.</param>
    /// <param name="useBias">Biases in the GLU channel mixers.</param>
    /// <param name="norm">The blocks' norm: batch norm as PyTorch computes it by default; <see cref="NormKind.EquinoxBatch"/> is
    /// discretax's exactly; <see cref="NormKind.Layer"/> or <see cref="NormKind.Rms"/> for causal language models.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public S5(long hiddenDim, int numBlocks = 4, long stateDim = 64, int ssmBlocks = 1, S5CInit cInit = S5CInit.LecunNormal,
        bool conjSym = true, bool clipEigs = true, Discretization discretization = Discretization.Zoh, double dtMin = 0.001,
        double dtMax = 1.0, double stepRescale = 1.0, double dropRate = 0.1, bool prenorm = true, bool useBias = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(S5), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new S5SequenceMixer(h, stateDim, ssmBlocks, cInit, conjSym, clipEigs, discretization, dtMin, dtMax, stepRescale),
            h => new GLU(h, useBias: useBias), dropRate, prenorm, norm, activation))
    {
    }
}
