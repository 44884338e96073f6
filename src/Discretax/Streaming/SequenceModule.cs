using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Streaming;

/// <summary>
/// Base of every module that maps a sequence to a sequence (mixers, blocks, models): it validates the
/// input, accepts batch-first <c>[B, L, H]</c> and unbatched <c>[L, H]</c>, runs the batched computation
/// inside a dispose scope, and implements the streaming contract of <see cref="IStreamingModule"/>.
/// </summary>
public abstract class SequenceModule : nn.Module<Tensor, Tensor>, IStreamingModule
{
    /// <summary>Creates the module.</summary>
    /// <param name="name">The module's name.</param>
    /// <param name="inFeatures">The feature size H of its input.</param>
    protected SequenceModule(string name, long inFeatures) : base(name)
    {
        Check.AtLeast(inFeatures, 1);
        InFeatures = inFeatures;
    }

    /// <summary>The feature size H of the input.</summary>
    public long InFeatures { get; }

    /// <summary>Maps <c>[B, L, H]</c> (or unbatched <c>[L, H]</c>) to the output sequence.</summary>
    /// <param name="x">Input sequence, <c>[B, L, H]</c> or <c>[L, H]</c>.</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (batched, unbatched) = PrepareInput(x, nameof(x));
        var y = ForwardBatched(batched);
        if (ReferenceEquals(y, x) || ReferenceEquals(y, batched)) y = batched.alias();
        if (unbatched) y = y.squeeze(0);
        return y.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public (Tensor Output, StreamingState State) Stream(Tensor x, StreamingState? state = null)
    {
        using var scope = NewDisposeScope();
        var (batched, unbatched) = PrepareInput(x, nameof(x));
        state?.CheckCompatible(batched.shape[0], batched.device, nameof(state));
        var (y, next) = StreamBatched(batched, state);
        if (ReferenceEquals(y, x) || ReferenceEquals(y, batched)) y = batched.alias();
        if (ReferenceEquals(next, state))
            throw new InvalidOperationException($"{GetType().Name}.StreamBatched returned its input state; it must return a new one.");
        if (unbatched) y = y.squeeze(0);
        next.MoveToOuterDisposeScope();
        return (y.MoveToOuterDisposeScope(), next);
    }

    /// <summary>Validates the input and returns it batched; override for other layouts.</summary>
    /// <param name="x">The input as the caller gave it.</param>
    /// <param name="paramName">The argument name to report.</param>
    protected virtual (Tensor Batched, bool Unbatched) PrepareInput(Tensor x, string paramName) =>
        Check.Sequence(x, InFeatures, paramName);

    /// <summary>The computation on a validated batch <c>[B, L, H]</c>; runs inside a dispose scope.</summary>
    /// <param name="x">Input <c>[B, L, H]</c>.</param>
    protected abstract Tensor ForwardBatched(Tensor x);

    /// <summary>
    /// The streaming computation on a validated batch <c>[B, L, H]</c>; runs inside a dispose scope.
    /// Must return a new state and leave <paramref name="state"/> unchanged.
    /// </summary>
    /// <param name="x">Input piece <c>[B, L, H]</c>.</param>
    /// <param name="state">The state after the previous piece (already checked against the batch and device), or null.</param>
    protected abstract (Tensor Output, StreamingState State) StreamBatched(Tensor x, StreamingState? state);
}
