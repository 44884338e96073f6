using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// RMS normalization with a SiLU output gate, in the two orders the references use, over groups of the last
/// dimension:
/// <code>
/// normBeforeGate = true  (fla's FusedRMSNormGated, Gated DeltaNet's and DeltaNet's o_norm):
///     y = rms(x) * weight * silu(gate)
/// normBeforeGate = false (mamba_ssm's RMSNormGated(norm_before_gate=False), Mamba2's norm):
///     y = rms(x * silu(gate)) * weight
/// rms(u) = u / sqrt(mean_group(u^2) + eps)
/// </code>
/// where the mean runs over consecutive groups of <c>groupSize</c> features of the last dimension (the whole
/// dimension by default; Mamba2 normalizes per group of <c>d_inner / ngroups</c>). The parameter is <c>weight
/// [dim]</c>, initialized to 1, the name both references give it. The statistics are float32 at least (also for
/// float16/bfloat16); the norm computes in the dtype of its weight and returns the input's dtype.
/// </summary>
public sealed class GatedRMSNorm : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The per-feature gain <c>[dim]</c>.</summary>
    public Parameter weight;

    /// <summary>Creates the norm.</summary>
    /// <param name="dim">The size of the normalized (last) dimension.</param>
    /// <param name="eps">Added to the mean square; must be positive.</param>
    /// <param name="normBeforeGate">Normalize, then gate (fla); else gate, then normalize (Mamba2).</param>
    /// <param name="groupSize">The size of the groups normalized separately; must divide <paramref name="dim"/>; default the whole dimension.</param>
    public GatedRMSNorm(long dim, double eps = 1e-5, bool normBeforeGate = true, long? groupSize = null) : base(nameof(GatedRMSNorm))
    {
        Check.AtLeast(dim, 1);
        Check.PositiveFinite(eps);
        long group = groupSize ?? dim;
        if (group < 1 || dim % group != 0)
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, $"Expected a group size that divides dim ({dim}); got {groupSize}.");
        Dim = dim;
        Eps = eps;
        NormBeforeGate = normBeforeGate;
        GroupSize = group;
        weight = nn.Parameter(ones(dim));
        RegisterComponents();
    }

    /// <summary>The size of the normalized dimension.</summary>
    public long Dim { get; }

    /// <summary>The epsilon added to the mean square.</summary>
    public double Eps { get; }

    /// <summary>Whether the norm comes before the gate.</summary>
    public bool NormBeforeGate { get; }

    /// <summary>The size of the groups normalized separately.</summary>
    public long GroupSize { get; }

    /// <summary>Normalizes and gates.</summary>
    /// <param name="x">Input <c>[..., dim]</c>, real floating point.</param>
    /// <param name="gate">Gate <c>[..., dim]</c>, the shape of <paramref name="x"/>.</param>
    /// <returns>Output <c>[..., dim]</c> in the dtype of <paramref name="x"/>.</returns>
    public override Tensor forward(Tensor x, Tensor gate)
    {
        Check.PerPosition(x, Dim);
        ArgumentNullException.ThrowIfNull(gate);
        if (!gate.shape.SequenceEqual(x.shape))
            throw new ArgumentException($"Expected gate with the shape of x {Check.Shape(x)}; got shape {Check.Shape(gate)}.", nameof(gate));
        Check.RealFloating(gate);
        return Precision.Compute(this, x, xc =>
        {
            var u = RMSNorm.Widen(xc);
            var g = nn.functional.silu(Precision.As(gate, u.dtype));
            if (!NormBeforeGate) u = u * g;
            var y = Normalize(u) * weight.to(u.dtype);
            if (NormBeforeGate) y = y * g;
            return y.to(xc.dtype);
        });
    }

    private Tensor Normalize(Tensor u)
    {
        if (GroupSize == Dim) return RMSNorm.Normalize(u, Eps);
        var shape = u.shape;
        var grouped = u.reshape(shape.Take(shape.Length - 1).Append(Dim / GroupSize).Append(GroupSize).ToArray());
        return RMSNorm.Normalize(grouped, Eps).reshape(shape);
    }
}
