namespace Discretax.SequenceMixers;

/// <summary>
/// Initialization of the diagonal state matrix A of an <see cref="S4DSequenceMixer"/> (Gu et al. 2022, §4,
/// https://arxiv.org/abs/2206.11893). Both set <c>Re A_n = -1/2</c> (<c>log_A_real = log 0.5</c>) for the
/// <c>N/2</c> conjugate-pair modes <c>n = 0 .. N/2-1</c>; they differ in the imaginary parts (the frequencies).
/// </summary>
public enum S4DInit
{
    /// <summary>S4D-Lin (the default, as linax): <c>A_imag[n] = pi n</c>, evenly spaced frequencies.</summary>
    Lin = 0,

    /// <summary>S4D-Inv: <c>A_imag[n] = (N/pi) (N/(2n+1) - 1)</c>, the inverse law of HiPPO-LegS's eigenvalues.</summary>
    Inv = 1,
}
