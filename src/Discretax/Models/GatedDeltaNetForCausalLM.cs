using Discretax.SequenceMixers;

namespace Discretax.Models;

/// <summary>
/// fla's <c>GatedDeltaNetForCausalLM</c> (<c>fla/models/gated_deltanet/modeling_gated_deltanet.py</c>): a
/// <see cref="FlaForCausalLM"/> whose layers' mixers are <see cref="GatedDeltaNetSequenceMixer"/>s (fla's
/// <c>GatedDeltaNet</c> layer) built from a <see cref="GatedDeltaNetConfig"/>, with the config's <c>norm_eps</c> for
/// their output norms. Keys <c>model.layers.{i}.attn.{q,k,v,a,b,g,o}_proj.weight</c>, <c>model.layers.{i}.attn.A_log</c>,
/// <c>model.layers.{i}.attn.dt_bias</c>, <c>model.layers.{i}.attn.{q,k,v}_conv1d.weight</c>,
/// <c>model.layers.{i}.attn.o_norm.weight</c>, and the model's (see <see cref="FlaForCausalLM"/>).
/// </summary>
public sealed class GatedDeltaNetForCausalLM : FlaForCausalLM
{
    /// <summary>Creates the model, initialized as fla initializes it.</summary>
    /// <param name="config">The config (see <see cref="GatedDeltaNetConfig"/>; fla's defaults make a 21-layer model of
    /// hidden size 2048: set the sizes you want).</param>
    /// <param name="chunkSize">The chunk size of the gated delta-rule kernel (the result does not depend on it).</param>
    /// <exception cref="ArgumentException">A config value is out of range or the layer refuses it (value heads that are
    /// not a multiple of the heads, <c>head_dim * expand_v</c> not whole, ...).</exception>
    public GatedDeltaNetForCausalLM(GatedDeltaNetConfig config, int chunkSize = 64)
        : base(nameof(GatedDeltaNetForCausalLM), config, _ => Mixer(config, chunkSize))
    {
    }

    private static GatedDeltaNetSequenceMixer Mixer(GatedDeltaNetConfig c, int chunkSize) =>
        new(c.HiddenSize, c.NumHeads, c.HeadDim, c.NumVHeads, c.ExpandV, c.UseGate, c.UseShortConv, c.ConvSize,
            convBias: false, c.AllowNegEigval, c.NormEps, chunkSize);
}
