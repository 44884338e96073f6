namespace Discretax.Kernels;

/// <summary>
/// How a continuous diagonal state-space system <c>x'(t) = A x(t) + B u(t)</c> is turned into the discrete
/// recurrence <c>x_t = dA x_{t-1} + dB u_t</c> with step <c>dt</c> (see <see cref="SsmKernels.Discretize"/>).
/// </summary>
public enum Discretization
{
    /// <summary>
    /// Zero-order hold (the S4D default): the input is held constant over each step, so
    /// <c>dA = exp(dt A)</c> and <c>dB = (exp(dt A) - 1) / A</c> (with <c>B = 1</c>). Exact for piecewise-constant inputs.
    /// </summary>
    Zoh = 0,

    /// <summary>
    /// Bilinear (Tustin) transform: <c>dA = (1 + dt A / 2) / (1 - dt A / 2)</c> and <c>dB = dt / (1 - dt A / 2)</c>.
    /// Maps the open left half-plane onto the open unit disk, so a stable system stays stable for every <c>dt</c>.
    /// </summary>
    Bilinear = 1,
}
