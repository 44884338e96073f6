using System.Text.Json;
using System.Text.Json.Nodes;

namespace Discretax.Models;

/// <summary>
/// fla's <c>GatedDeltaNetConfig</c> (<c>fla/models/gated_deltanet/configuration_gated_deltanet.py</c>,
/// <c>model_type</c> <c>gated_deltanet</c>): the common fields of <see cref="FlaConfig"/> and the layer's, with fla's
/// defaults. Build a <see cref="GatedDeltaNetForCausalLM"/> from it.
/// </summary>
/// <remarks>fla's model passes no <c>conv_bias</c> to its layers (they have none); a <c>conv_bias</c> field stays
/// unread in <see cref="FlaConfig.Extra"/>, as fla ignores it.</remarks>
public sealed class GatedDeltaNetConfig : FlaConfig
{
    /// <summary>fla's model type.</summary>
    public const string Type = "gated_deltanet";

    /// <summary>A config of fla's defaults (hidden 2048, 21 layers, 6 heads of 256, vocabulary 32000); set fields with
    /// an object initializer.</summary>
    public GatedDeltaNetConfig()
    {
        NumHiddenLayers = 21;
    }

    private GatedDeltaNetConfig(JsonReader r) : base(r, new GatedDeltaNetConfig())
    {
        NumHeads = r.Int("num_heads", NumHeads);
        HeadDim = r.Int("head_dim", HeadDim);
        NumVHeads = r.IntOrNull("num_v_heads", NumVHeads);
        ExpandV = r.Double("expand_v", ExpandV);
        UseGate = r.Bool("use_gate", UseGate);
        UseShortConv = r.Bool("use_short_conv", UseShortConv);
        ConvSize = r.Int("conv_size", ConvSize);
        AllowNegEigval = r.Bool("allow_neg_eigval", AllowNegEigval);
        Extra = r.Rest();
    }

    /// <inheritdoc />
    public override string ModelType => Type;

    /// <inheritdoc />
    public override string Architecture => nameof(GatedDeltaNetForCausalLM);

    /// <summary>The query/key heads per layer (<c>num_heads</c>, default 6).</summary>
    public int NumHeads { get; init; } = 6;

    /// <summary>The key size per head (<c>head_dim</c>, default 256).</summary>
    public int HeadDim { get; init; } = 256;

    /// <summary>The value heads, a multiple of <see cref="NumHeads"/> (<c>num_v_heads</c>; null: <see cref="NumHeads"/>).</summary>
    public int? NumVHeads { get; init; }

    /// <summary>The value size per head over <see cref="HeadDim"/> (<c>expand_v</c>, default 2).</summary>
    public double ExpandV { get; init; } = 2;

    /// <summary>The gated output norm with <c>g_proj</c> (<c>use_gate</c>, default true).</summary>
    public bool UseGate { get; init; } = true;

    /// <summary>Short convolutions on q, k, v (<c>use_short_conv</c>, default true).</summary>
    public bool UseShortConv { get; init; } = true;

    /// <summary>Their kernel size (<c>conv_size</c>, default 4).</summary>
    public int ConvSize { get; init; } = 4;

    /// <summary>beta in (0, 2) (<c>allow_neg_eigval</c>, default false).</summary>
    public bool AllowNegEigval { get; init; }

    /// <summary>Reads a <c>gated_deltanet</c> config.json object.</summary>
    /// <param name="config">The parsed config.json.</param>
    /// <exception cref="ArgumentException">It is not a <c>gated_deltanet</c> config, or a field has the wrong type or value.</exception>
    /// <exception cref="NotSupportedException">It asks for something not implemented here (hybrid attention layers, ...).</exception>
    public static GatedDeltaNetConfig FromJson(JsonElement config) => new(Open(config, Type));

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Positive(NumHeads, "num_heads");
        Positive(HeadDim, "head_dim");
        if (NumVHeads is int hv) Positive(hv, "num_v_heads");
        PositiveFinite(ExpandV, "expand_v");
        if (UseShortConv) Positive(ConvSize, "conv_size");
    }

    /// <inheritdoc />
    protected override void WriteLayerFields(JsonObject o)
    {
        o["num_heads"] = NumHeads;
        o["head_dim"] = HeadDim;
        o["num_v_heads"] = NumVHeads;
        o["expand_v"] = Float(ExpandV);
        o["use_gate"] = UseGate;
        o["use_short_conv"] = UseShortConv;
        o["conv_size"] = ConvSize;
        o["allow_neg_eigval"] = AllowNegEigval;
    }
}
