using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>The activations of <see cref="MLPChannelMixer"/> (discretax's names).</summary>
public enum Activation
{
    /// <summary><c>max(0, x)</c>.</summary>
    ReLU,

    /// <summary>The Gaussian error linear unit, <c>x * Phi(x)</c> (exact erf form; PyTorch's default).</summary>
    GELU,

    /// <summary>
    /// GELU's tanh approximation, <c>0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))</c>: <c>jax.nn.gelu</c>'s default
    /// (<c>approximate=True</c>), hence discretax's; within about 5e-4 of <see cref="GELU"/>.
    /// </summary>
    GELUTanh,

    /// <summary>Swish, <c>x * sigmoid(x)</c>; the same function as <see cref="SiLU"/>.</summary>
    Swish,

    /// <summary>SiLU, <c>x * sigmoid(x)</c>.</summary>
    SiLU,

    /// <summary><c>tanh(x)</c>.</summary>
    Tanh,
}

/// <summary>Applies an <see cref="Activation"/>.</summary>
internal static class Activations
{
    /// <summary><paramref name="activation"/> of <paramref name="x"/>.</summary>
    public static Tensor Apply(this Activation activation, Tensor x) => activation switch
    {
        Activation.ReLU => nn.functional.relu(x),
        Activation.GELU => nn.functional.gelu(x),
        Activation.GELUTanh => x.gelu(TorchSharp.Modules.GELU.Approximate.tanh),
        Activation.Swish or Activation.SiLU => nn.functional.silu(x),
        Activation.Tanh => x.tanh(),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "Unknown activation."),
    };
}
