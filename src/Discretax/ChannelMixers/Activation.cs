namespace Discretax.ChannelMixers;

/// <summary>The activations of <see cref="MLPChannelMixer"/> (discretax's names).</summary>
public enum Activation
{
    /// <summary><c>max(0, x)</c>.</summary>
    ReLU,

    /// <summary>The Gaussian error linear unit, <c>x * Phi(x)</c> (exact erf form).</summary>
    GELU,

    /// <summary>Swish, <c>x * sigmoid(x)</c>; the same function as <see cref="SiLU"/>.</summary>
    Swish,

    /// <summary>SiLU, <c>x * sigmoid(x)</c>.</summary>
    SiLU,

    /// <summary><c>tanh(x)</c>.</summary>
    Tanh,
}
