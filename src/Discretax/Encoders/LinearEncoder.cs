using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Encoders;

/// <summary>
/// A linear map applied at every time step, <c>[B, L, inFeatures] -> [B, L, outFeatures]</c> (or unbatched
/// <c>[L, inFeatures]</c>), as discretax's <c>LinearEncoder</c> (no bias by default).
/// </summary>
public sealed class LinearEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>The linear map.</summary>
    public Linear linear;

    /// <summary>Creates the encoder.</summary>
    /// <param name="inFeatures">Input features per step.</param>
    /// <param name="outFeatures">Output features per step (the model's hidden size).</param>
    /// <param name="useBias">Whether the map has a bias.</param>
    public LinearEncoder(long inFeatures, long outFeatures, bool useBias = false) : base(nameof(LinearEncoder))
    {
        Check.AtLeast(inFeatures, 1);
        Check.AtLeast(outFeatures, 1);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        linear = nn.Linear(inFeatures, outFeatures, hasBias: useBias);
        RegisterComponents();
    }

    /// <summary>Input features per step.</summary>
    public long InFeatures { get; }

    /// <summary>Output features per step.</summary>
    public long OutFeatures { get; }

    /// <summary>Encodes every step, in the dtype of the map (docs/architecture.md, "Dtypes").</summary>
    /// <param name="x">Input <c>[B, L, inFeatures]</c> or <c>[L, inFeatures]</c>, real floating point, B and L at least 1.</param>
    /// <returns><c>[B, L, outFeatures]</c> or <c>[L, outFeatures]</c> in <paramref name="x"/>'s dtype.</returns>
    public override Tensor forward(Tensor x) => Precision.ComputeSequence(this, x, InFeatures, linear.forward);
}
