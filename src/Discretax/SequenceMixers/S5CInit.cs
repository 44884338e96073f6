namespace Discretax.SequenceMixers;

/// <summary>
/// How <see cref="S5SequenceMixer"/> initializes its output matrix <c>C~ [H, P]</c> (lindermanlab/S5's
/// <c>C_init</c>). "Truncated normal" is JAX's: a standard normal truncated to [-2, 2], rescaled to the stated
/// standard deviation. <c>N</c> is the state size <c>stateDim</c> and <c>V</c> the block-diagonal eigenvector
/// matrix of the HiPPO-LegS initialization, <c>[N, P]</c>.
/// </summary>
public enum S5CInit
{
    /// <summary>
    /// JAX's <c>lecun_normal</c> on the shape <c>[H, N, 2]</c> (fan-in <c>N H</c>): real and imaginary parts of
    /// <c>C [H, N]</c> truncated normal with standard deviation <c>1/sqrt(N H)</c>, then <c>C~ = C V</c>. The default.
    /// </summary>
    LecunNormal = 0,

    /// <summary>
    /// lindermanlab's <c>trunc_standard_normal</c>: <c>lecun_normal</c> per output row on <c>[1, N, 2]</c> (fan-in
    /// <c>N</c>): real and imaginary parts truncated normal with standard deviation <c>1/sqrt(N)</c>, then <c>C~ = C V</c>.
    /// </summary>
    TruncStandardNormal = 1,

    /// <summary>
    /// <c>C~ [H, P]</c> sampled directly, real and imaginary parts <c>N(0, 1/2)</c> (a standard complex normal),
    /// without the eigenvectors.
    /// </summary>
    ComplexNormal = 2,
}
