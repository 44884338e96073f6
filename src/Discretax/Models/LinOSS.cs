using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The LinOSS model (Rusch and Rus, ICLR 2025, https://arxiv.org/abs/2410.03943; damped: Boyer, Rusch and Rus 2025,
/// https://arxiv.org/abs/2505.12171), as discretax's <c>LinOSS</c>: <c>numBlocks</c> <see cref="StandardBlock"/>s, each a
/// <see cref="LinOSSSequenceMixer"/> and a <see cref="GLU"/>. <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c>.
/// </summary>
public sealed class LinOSS : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks.</param>
    /// <param name="stateDim">Oscillators per mixer.</param>
    /// <param name="discretization">The mixers' time discretization.</param>
    /// <param name="damping">Learnable damping (D-LinOSS).</param>
    /// <param name="rMin">Smallest eigenvalue modulus at init (damped).</param>
    /// <param name="thetaMax">Largest eigenvalue phase at init (damped).</param>
    /// <param name="dropRate">Dropout probability of the blocks.</param>
    /// <param name="prenorm">Normalize before the mixers.</param>
    /// <param name="useBias">Biases in the GLU channel mixers.</param>
    /// <param name="norm">The blocks' norm: batch norm as PyTorch computes it by default; <see cref="NormKind.EquinoxBatch"/> is
    /// discretax's exactly; <see cref="NormKind.Layer"/> or <see cref="NormKind.Rms"/> for causal language models.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public LinOSS(long hiddenDim, int numBlocks = 4, long stateDim = 64, LinOSSDiscretization discretization = LinOSSDiscretization.IMEX,
        bool damping = true, double rMin = 0.9, double thetaMax = Math.PI, double dropRate = 0.1, bool prenorm = true, bool useBias = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(LinOSS), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new LinOSSSequenceMixer(h, stateDim, discretization, damping, rMin, thetaMax), h => new GLU(h, useBias: useBias),
            dropRate, prenorm, norm, activation))
    {
    }
}
