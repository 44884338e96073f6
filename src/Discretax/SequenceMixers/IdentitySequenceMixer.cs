using Discretax.Streaming;
using Discretax.Utilities;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>The sequence mixer that mixes nothing: <c>y = x</c> (a new tensor handle). Its streaming state is empty.</summary>
public sealed class IdentitySequenceMixer : SequenceMixer
{
    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    public IdentitySequenceMixer(long inFeatures) : base(nameof(IdentitySequenceMixer), Check.Dim(inFeatures))
    {
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        (x.alias(), returnState ? new EmptyState(x.shape[0], x.device, x.dtype) : null);

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) => StreamingState.Expect<EmptyState>(state, nameof(IdentitySequenceMixer));
}
