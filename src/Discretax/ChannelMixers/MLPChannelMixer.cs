using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// A linear map followed by an activation, as discretax's <c>MLPChannelMixer</c>:
/// <c>y = act(linear(x))</c>; defaults GELU and no bias, as there, except that the default GELU here is the exact one
/// and discretax's (<c>jax.nn.gelu</c>) is the tanh approximation: pass <see cref="Activation.GELUTanh"/> for discretax's
/// exactly (docs/results.md, "discretax's block exactly").
/// </summary>
public sealed class MLPChannelMixer : ChannelMixer
{
    /// <summary>The linear map <c>inFeatures -> outFeatures</c>.</summary>
    public Linear linear;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">Input feature size.</param>
    /// <param name="outFeatures">Output feature size (default: <paramref name="inFeatures"/>).</param>
    /// <param name="nonLinearity">The activation applied after the linear map.</param>
    /// <param name="useBias">Whether the linear map has a bias.</param>
    public MLPChannelMixer(long inFeatures, long? outFeatures = null, Activation nonLinearity = Activation.GELU, bool useBias = false)
        : base(nameof(MLPChannelMixer), inFeatures, outFeatures ?? inFeatures)
    {
        Check.Defined(nonLinearity);
        NonLinearity = nonLinearity;
        linear = nn.Linear(inFeatures, OutFeatures, hasBias: useBias);
        RegisterComponents();
    }

    /// <summary>The activation.</summary>
    public Activation NonLinearity { get; }

    /// <inheritdoc />
    protected override Tensor Mix(Tensor x)
    {
        return NonLinearity.Apply(linear.forward(x));
    }
}
