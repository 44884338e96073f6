using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Utilities;

namespace Discretax.Models;

/// <summary>
/// The S4D model (Gu, Gupta, Goel, Ré 2022, https://arxiv.org/abs/2206.11893): a stack of
/// <see cref="StandardBlock"/>s, each an <see cref="S4DSequenceMixer"/> (default options: S4D-Lin, ZOH, no D, no
/// output stage) followed by GELU, dropout, a <see cref="GLU"/> channel mixer, dropout and the residual, with batch
/// norm before (<c>prenorm</c>) or after the block. Shapes: <c>[B, L, H] -> [B, L, H]</c> (or unbatched
/// <c>[L, H]</c>). Streaming carries one <c>x [B, H, N/2]</c> complex state per block.
/// </summary>
/// <remarks>
/// <c>state_dict</c> names: <c>blocks.{i}.sequence_mixer.{log_dt, log_A_real, A_imag, C}</c> and
/// <c>blocks.{i}.channel_mixer.{w1, w2}.{weight, bias}</c> (see <see cref="S4DSequenceMixer"/> for the shapes).
/// discretax has no S4D model; this is its standard block shape with the S4D mixer.
/// </remarks>
public sealed class S4D : SequenceModel
{
    /// <summary>Creates the model.</summary>
    /// <param name="hiddenDim">The feature size H of every block.</param>
    /// <param name="numBlocks">The number of blocks, at least 1.</param>
    /// <param name="stateDim">The real state size N of each mixer (even, at least 2).</param>
    /// <param name="dtMin">The smallest initial step size of the mixers.</param>
    /// <param name="dtMax">The largest initial step size of the mixers.</param>
    /// <param name="dropRate">The blocks' dropout probability, in [0, 1).</param>
    /// <param name="prenorm">Normalize before the mixers (true) or after the residual (false).</param>
    /// <param name="useBias">Whether the GLU channel mixers' linear maps have biases.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size, step bound or rate is out of range.</exception>
    /// <param name="norm">The blocks' norm: batch norm as PyTorch computes it by default; <see cref="NormKind.EquinoxBatch"/> is
    /// discretax's exactly; <see cref="NormKind.Layer"/> or <see cref="NormKind.Rms"/> for causal language models.</param>
    /// <param name="activation">The blocks' activation after the mixer: exact GELU by default; discretax's is
    /// <see cref="Activation.GELUTanh"/>.</param>
    public S4D(long hiddenDim, int numBlocks = 4, long stateDim = 64, double dtMin = 0.001, double dtMax = 0.1,
        double dropRate = 0.1, bool prenorm = true, bool useBias = true, NormKind norm = NormKind.Batch, Activation activation = Activation.GELU)
        : base(nameof(S4D), Check.Dim(hiddenDim), Standard(hiddenDim, numBlocks,
            h => new S4DSequenceMixer(h, stateDim, dtMin: dtMin, dtMax: dtMax), h => new GLU(h, useBias: useBias), dropRate, prenorm, norm, activation))
    {
        StateDim = stateDim;
    }

    /// <summary>The real state size N of each mixer.</summary>
    public long StateDim { get; }
}
