using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The DeltaNet model, as discretax's <c>DeltaNet</c>: <c>numBlocks</c> <see cref="StandardBlock"/>s, each a
/// <see cref="DeltaNetSequenceMixer"/> and a <see cref="GLU"/> without bias, with batch norm, GELU and dropout
/// in the standard layout. <c>[B, L, hiddenDim] -> [B, L, hiddenDim]</c>; compose with an encoder and a head.
/// </summary>
public sealed class DeltaNet : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H.</param>
    /// <param name="numBlocks">The number of blocks.</param>
    /// <param name="numHeads">Heads per mixer.</param>
    /// <param name="headDim">Per-head size; default <c>hiddenDim / numHeads</c>.</param>
    /// <param name="chunkSize">The chunk size of the delta-rule kernel.</param>
    /// <param name="dropRate">Dropout probability of the blocks.</param>
    /// <param name="prenorm">Normalize before the mixers.</param>
    /// <param name="useShortConv">fla's short causal convolutions (kernel 4, SiLU) on q, k and v in every mixer
    /// (<see cref="DeltaNetSequenceMixer"/>'s <c>useShortConv</c>); off in discretax's model.</param>
    /// <param name="useOutputNorm">fla's per-head RMS norm of every mixer's output before its projection.</param>
    /// <param name="useOutputGate">fla's output gate (with <paramref name="useOutputNorm"/>: a gated RMS norm).</param>
    /// <param name="norm">The blocks' norm: batch norm as PyTorch computes it by default; <see cref="NormKind.EquinoxBatch"/> is
    /// discretax's exactly; <see cref="NormKind.Layer"/> or <see cref="NormKind.Rms"/> for causal language models.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public DeltaNet(long hiddenDim, int numBlocks = 4, int numHeads = 4, int? headDim = null, int chunkSize = 32,
        double dropRate = 0.1, bool prenorm = true, bool useShortConv = false, bool useOutputNorm = false,
        bool useOutputGate = false, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(DeltaNet), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new DeltaNetSequenceMixer(h, numHeads, headDim, chunkSize, useShortConv: useShortConv,
                useOutputNorm: useOutputNorm, useOutputGate: useOutputGate),
            h => new GLU(h, useBias: false), dropRate, prenorm, norm, activation))
    {
    }
}
