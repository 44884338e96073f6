namespace Discretax.SequenceMixers;

/// <summary>
/// How <see cref="LinOSSSequenceMixer"/> discretizes its oscillators <c>z' = -A y - G z + B u</c>, <c>y' = z</c> with
/// step <c>dt</c> (Rusch and Rus 2025, https://arxiv.org/abs/2410.03943; Boyer, Rusch and Rus 2025,
/// https://arxiv.org/abs/2505.12171). Both give a 2x2 map per channel on the state <c>(z, y)</c>.
/// </summary>
public enum LinOSSDiscretization
{
    /// <summary>
    /// Implicit-explicit (symplectic Euler, the default): <c>z_t = z_{t-1} + dt (-A y_{t-1} - G z_t + B u_t)</c>,
    /// <c>y_t = y_{t-1} + dt z_t</c>. Undamped (<c>G = 0</c>) the map has determinant 1: it conserves phase-space
    /// volume, and oscillations neither grow nor decay.
    /// </summary>
    IMEX = 0,

    /// <summary>
    /// Implicit (backward Euler): <c>z_t = z_{t-1} + dt (-A y_t - G z_t + B u_t)</c>, <c>y_t = y_{t-1} + dt z_t</c>;
    /// dissipative: the map's determinant is <c>1 / (1 + dt G + dt^2 A)</c>.
    /// </summary>
    IM = 1,
}
