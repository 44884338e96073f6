using Discretax.SequenceMixers;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.ChannelMixers;

/// <summary>
/// The gated feed-forward of the xLSTM models: xlstm-jax's <c>GatedFeedForward</c>
/// (<c>components/feedforward.py</c>, <c>ff_type = "ffn_gated"</c>, GELU by default) and the xLSTM-7B
/// <c>FeedForward</c> (<c>xlstm/xlstm_large/model.py</c>, SiLU), with their parameter names:
/// <code>
/// y = proj_down(act(proj_up_gate(x)) * proj_up(x))          P = upProjDim features in the middle, no biases by default
/// </code>
/// With <c>fused</c> (xLSTM-7B's <c>weight_mode = "fused"</c>) the two up-projections are one matrix
/// <c>proj_up_gate_z [2P, H]</c>, the gate rows first: <c>[gate | z] = proj_up_gate_z(x)</c>.
/// The activation is <see cref="Activation.GELU"/> (with <c>approximateGelu</c>, the tanh form
/// <c>0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))</c> of <c>jax.nn.gelu</c>'s default; else the erf form),
/// <see cref="Activation.SiLU"/>/<see cref="Activation.Swish"/> (xLSTM-7B, xlstm-jax's <c>"swish"</c>),
/// <see cref="Activation.ReLU"/> or <see cref="Activation.Tanh"/>.
/// <para>Init (xlstm-jax): the up-projections from the small init <c>std = sqrt(2 / (5 H))</c>, <c>proj_down</c> from
/// <c>outputInitFn</c> with <c>dim = H</c> (Wang: <c>std = 2 / numBlocks / sqrt(H)</c>), both from
/// <c>initDistribution</c>; biases zero. Dropout, where a reference has it inside the feed-forward, is the enclosing
/// block's (<see cref="Blocks.MLSTMBlock"/>'s <c>dropRate</c>).</para>
/// </summary>
public sealed class GatedFeedForward : ChannelMixer
{
    /// <summary>The gate's up-projection <c>H -> P</c> (null when fused).</summary>
    public Linear? proj_up_gate;

    /// <summary>The value's up-projection <c>H -> P</c> (null when fused).</summary>
    public Linear? proj_up;

    /// <summary>The fused up-projection <c>H -> 2P</c>, gate rows first (only when fused).</summary>
    public Linear? proj_up_gate_z;

    /// <summary>The down-projection <c>P -> H</c>.</summary>
    public Linear proj_down;

    /// <summary>Creates the feed-forward.</summary>
    /// <param name="inFeatures">The input and output size H.</param>
    /// <param name="upProjDim">The middle size P (see <see cref="UpProjDim"/> for xlstm-jax's rounding).</param>
    /// <param name="activation">The gate's activation.</param>
    /// <param name="approximateGelu">With <see cref="Activation.GELU"/>: the tanh approximation (true, jax's default) or
    /// the erf form.</param>
    /// <param name="bias">Whether the projections have biases.</param>
    /// <param name="fused">One fused up-projection <c>proj_up_gate_z</c> instead of <c>proj_up_gate</c> and <c>proj_up</c>.</param>
    /// <param name="initDistribution">The distribution of the weights.</param>
    /// <param name="outputInitFn">The init of <c>proj_down</c>.</param>
    /// <param name="numBlocks">The model's block count (the Wang inits).</param>
    public GatedFeedForward(long inFeatures, long upProjDim, Activation activation = Activation.GELU, bool approximateGelu = true,
        bool bias = false, bool fused = false, MLSTMInitDistribution initDistribution = MLSTMInitDistribution.Normal,
        MLSTMOutputInit outputInitFn = MLSTMOutputInit.Wang, int numBlocks = 1)
        : base(nameof(GatedFeedForward), inFeatures, inFeatures)
    {
        Check.AtLeast(upProjDim, 1);
        Check.Defined(activation);
        Check.Defined(initDistribution);
        Check.Defined(outputInitFn);
        Check.AtLeast(numBlocks, 1);
        UpProjDimension = upProjDim;
        GateActivation = activation;
        ApproximateGelu = approximateGelu;
        Fused = fused;
        double small = MLSTMCell.SmallStd(inFeatures);
        if (fused) proj_up_gate_z = nn.Linear(inFeatures, 2 * upProjDim, hasBias: bias);
        else
        {
            proj_up_gate = nn.Linear(inFeatures, upProjDim, hasBias: bias);
            proj_up = nn.Linear(inFeatures, upProjDim, hasBias: bias);
        }
        proj_down = nn.Linear(upProjDim, inFeatures, hasBias: bias);
        using (no_grad())
        {
            foreach (var up in new[] { proj_up_gate, proj_up, proj_up_gate_z })
            {
                if (up is null) continue;
                MLSTMCell.Draw(up.weight!, small, initDistribution);
                up.bias?.zero_();
            }
            MLSTMCell.DrawOutput(proj_down.weight!, inFeatures, numBlocks, outputInitFn, initDistribution);
            proj_down.bias?.zero_();
        }
        RegisterComponents();
    }

    /// <summary>The middle size P.</summary>
    public long UpProjDimension { get; }

    /// <summary>The gate's activation.</summary>
    public Activation GateActivation { get; }

    /// <summary>Whether GELU is the tanh approximation.</summary>
    public bool ApproximateGelu { get; }

    /// <summary>Whether the up-projections are fused (<c>proj_up_gate_z</c>).</summary>
    public bool Fused { get; }

    /// <summary>
    /// The middle size of xLSTM's up-projections (NX-AI xlstm's and xlstm-jax's <c>UpProjConfigMixin</c>, rounding up):
    /// <c>multipleOf * ceil(projFactor * H / multipleOf)</c>; xlstm-jax's feed-forward has <c>projFactor = 1.3</c>.
    /// </summary>
    /// <param name="embeddingDim">H.</param>
    /// <param name="projFactor">The factor (positive, finite).</param>
    /// <param name="multipleOf">The multiple (at least 1; 64 in the references).</param>
    public static long UpProjDim(long embeddingDim, double projFactor, int multipleOf = 64)
    {
        Check.AtLeast(embeddingDim, 1);
        Check.PositiveFinite(projFactor);
        Check.AtLeast(multipleOf, 1);
        return (long)Math.Ceiling(projFactor * embeddingDim / multipleOf) * multipleOf;
    }

    /// <inheritdoc />
    protected override Tensor Mix(Tensor x)
    {
        Tensor gate, z;
        if (proj_up_gate_z is not null)
        {
            var gz = proj_up_gate_z.forward(x);
            gate = gz.narrow(-1, 0, UpProjDimension);
            z = gz.narrow(-1, UpProjDimension, UpProjDimension);
        }
        else
        {
            gate = proj_up_gate!.forward(x);
            z = proj_up!.forward(x);
        }
        var act = GateActivation switch
        {
            Activation.GELU => ApproximateGelu ? nn.functional.gelu(gate, GELU.Approximate.tanh) : nn.functional.gelu(gate),
            Activation.ReLU => nn.functional.relu(gate),
            Activation.Swish or Activation.SiLU => nn.functional.silu(gate),
            _ => gate.tanh(),
        };
        return proj_down.forward(act * z);
    }
}
