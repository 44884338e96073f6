using Discretax.SequenceMixers;

namespace Discretax.Models;

/// <summary>
/// fla's <c>DeltaNetForCausalLM</c> (<c>fla/models/delta_net/modeling_delta_net.py</c>): a <see cref="FlaForCausalLM"/>
/// whose layers' mixers are <see cref="FlaDeltaNetSequenceMixer"/>s (fla's <c>DeltaNet</c> layer) built from a
/// <see cref="DeltaNetConfig"/>, with the config's <c>norm_eps</c> for their output norms as fla passes it. Keys
/// <c>model.layers.{i}.attn.{q,k,v,b,g,o}_proj.weight</c>, <c>model.layers.{i}.attn.{q,k,v}_conv1d.weight</c>,
/// <c>model.layers.{i}.attn.o_norm.weight</c>, and the model's (see <see cref="FlaForCausalLM"/>).
/// </summary>
public sealed class DeltaNetForCausalLM : FlaForCausalLM
{
    /// <summary>Creates the model, initialized as fla initializes it.</summary>
    /// <param name="config">The config (see <see cref="DeltaNetConfig"/>; fla's defaults make a 24-layer model of
    /// hidden size 2048: set the sizes you want).</param>
    /// <param name="chunkSize">The chunk size of the delta-rule kernel (the result does not depend on it).</param>
    /// <exception cref="ArgumentException">A config value is out of range or the layer refuses it (heads that do not
    /// divide the key or value size, ...).</exception>
    public DeltaNetForCausalLM(DeltaNetConfig config, int chunkSize = 32)
        : base(nameof(DeltaNetForCausalLM), config, _ => Mixer(config, chunkSize))
    {
    }

    private static FlaDeltaNetSequenceMixer Mixer(DeltaNetConfig c, int chunkSize) =>
        new(c.HiddenSize, c.NumHeads, c.ExpandK, c.ExpandV, c.UseBeta, c.UseGate, c.UseShortConv, c.ConvSize,
            convBias: false, c.AllowNegEigval, c.QKActivation, c.QKNorm, c.NormEps, chunkSize);
}
