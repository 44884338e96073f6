using Discretax.Streaming;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>The sequence mixer that mixes nothing: <c>y = x</c> (a new tensor handle). Its streaming state is empty.</summary>
public sealed class IdentitySequenceMixer : SequenceMixer
{
    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    public IdentitySequenceMixer(long inFeatures) : base(nameof(IdentitySequenceMixer), inFeatures)
    {
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override Tensor ForwardBatched(Tensor x) => x.alias();

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState State) StreamBatched(Tensor x, StreamingState? state) =>
        (x.alias(), new StreamingState(x.shape[0], x.device, x.dtype));
}
