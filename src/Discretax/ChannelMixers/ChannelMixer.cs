using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// Base of the channel mixers: modules that mix features at each time step independently,
/// <c>[..., inFeatures] -> [..., outFeatures]</c>. They need no state to stream.
/// </summary>
public abstract class ChannelMixer : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the mixer.</summary>
    /// <param name="name">The module's name.</param>
    /// <param name="inFeatures">Input feature size.</param>
    /// <param name="outFeatures">Output feature size.</param>
    protected ChannelMixer(string name, long inFeatures, long outFeatures) : base(name)
    {
        Check.AtLeast(inFeatures, 1);
        Check.AtLeast(outFeatures, 1);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
    }

    /// <summary>Input feature size.</summary>
    public long InFeatures { get; }

    /// <summary>Output feature size.</summary>
    public long OutFeatures { get; }

    /// <summary>Applies the mixer at every position.</summary>
    /// <param name="x">Input <c>[..., inFeatures]</c>.</param>
    /// <returns><c>[..., outFeatures]</c>.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.Features(x, InFeatures);
        using var scope = NewDisposeScope();
        var y = Mix(x);
        if (ReferenceEquals(y, x)) y = x.alias();
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The per-position computation on a validated input; runs inside a dispose scope.</summary>
    /// <param name="x">Input <c>[..., inFeatures]</c>.</param>
    protected abstract Tensor Mix(Tensor x);
}
