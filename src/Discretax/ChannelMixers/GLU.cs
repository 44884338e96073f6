using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// Gated linear unit channel mixer (Dauphin et al. 2017), as discretax's <c>GLU</c>:
/// <c>y = w1(x) * sigmoid(w2(x))</c> with two linear maps <c>inFeatures -> outFeatures</c>.
/// </summary>
public sealed class GLU : ChannelMixer
{
    /// <summary>The value projection.</summary>
    public Linear w1;

    /// <summary>The gate projection.</summary>
    public Linear w2;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">Input feature size.</param>
    /// <param name="outFeatures">Output feature size (default: <paramref name="inFeatures"/>).</param>
    /// <param name="useBias">Whether the linear maps have biases.</param>
    public GLU(long inFeatures, long? outFeatures = null, bool useBias = true)
        : base(nameof(GLU), inFeatures, outFeatures ?? inFeatures)
    {
        w1 = nn.Linear(inFeatures, OutFeatures, hasBias: useBias);
        w2 = nn.Linear(inFeatures, OutFeatures, hasBias: useBias);
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override Tensor Mix(Tensor x) => w1.forward(x) * nn.functional.sigmoid(w2.forward(x));
}
