using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>The channel mixer that leaves its input as it is (returned as a new tensor handle, so that
/// <c>Sequential</c> may dispose it independently).</summary>
public sealed class IdentityChannelMixer : ChannelMixer
{
    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size.</param>
    /// <param name="outFeatures">Must equal <paramref name="inFeatures"/> when given (an identity cannot change the width).</param>
    public IdentityChannelMixer(long inFeatures, long? outFeatures = null)
        : base(nameof(IdentityChannelMixer), inFeatures, outFeatures ?? inFeatures)
    {
        if (OutFeatures != inFeatures)
            throw new ArgumentException($"An identity mixer keeps the width: expected outFeatures = {inFeatures}; got {outFeatures}.", nameof(outFeatures));
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override Tensor Mix(Tensor x) => x.alias();
}
