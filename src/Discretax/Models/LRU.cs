using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The LRU model, as discretax's <c>LRU</c>: <c>numBlocks</c> <see cref="StandardBlock"/>s, each an
/// <see cref="LRUSequenceMixer"/> and a <see cref="GLU"/>. <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c>.
/// </summary>
public sealed class LRU : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks.</param>
    /// <param name="stateDim">Complex states per mixer.</param>
    /// <param name="rMin">Smallest eigenvalue modulus at init.</param>
    /// <param name="rMax">Largest eigenvalue modulus at init.</param>
    /// <param name="maxPhase">Largest eigenvalue phase at init.</param>
    /// <param name="dropRate">Dropout probability of the blocks.</param>
    /// <param name="prenorm">Normalize before the mixers.</param>
    /// <param name="useBias">Biases in the GLU channel mixers.</param>
    /// <param name="norm">The blocks' norm: batch norm as PyTorch computes it by default; <see cref="NormKind.EquinoxBatch"/> is
    /// discretax's exactly; <see cref="NormKind.Layer"/> or <see cref="NormKind.Rms"/> for causal language models.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public LRU(long hiddenDim, int numBlocks = 4, long stateDim = 64, double rMin = 0.0, double rMax = 1.0,
        double maxPhase = 2 * Math.PI, double dropRate = 0.1, bool prenorm = true, bool useBias = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(LRU), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new LRUSequenceMixer(h, stateDim, rMin, rMax, maxPhase), h => new GLU(h, useBias: useBias), dropRate, prenorm, norm, activation))
    {
    }
}
