using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// Base of the channel mixers: modules that mix features at each time step independently,
/// <c>[..., inFeatures] -> [..., outFeatures]</c>. They need no state to stream.
/// <para>
/// <see cref="forward"/> validates the input (rank at least 1, real floating point, the feature size, no empty
/// dimension: an <see cref="ArgumentException"/> naming <c>x</c> otherwise) and applies the library's dtype rule around <see cref="Mix"/>
/// (docs/architecture.md, "Dtypes"): the mixer computes in the dtype of its parameters, an input of another
/// floating dtype is cast to it and the output cast back. It never returns its input object.
/// </para>
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
    /// <returns><c>[..., outFeatures]</c> in <paramref name="x"/>'s dtype.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.PerPosition(x, InFeatures);
        return Precision.Compute(this, x, Mix);
    }

    /// <summary>The per-position computation on a validated input; runs inside a dispose scope. It may return
    /// its input (the base then returns an alias).</summary>
    /// <param name="x">Input <c>[..., inFeatures]</c> in the mixer's compute dtype.</param>
    protected abstract Tensor Mix(Tensor x);
}
