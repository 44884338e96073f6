using System.Text.Json;
using System.Text.Json.Nodes;
using Discretax.SequenceMixers;

namespace Discretax.Models;

/// <summary>
/// fla's <c>DeltaNetConfig</c> (<c>fla/models/delta_net/configuration_delta_net.py</c>, <c>model_type</c>
/// <c>delta_net</c>): the common fields of <see cref="FlaConfig"/> and the layer's, with fla's defaults. Build a
/// <see cref="DeltaNetForCausalLM"/> from it.
/// </summary>
/// <remarks>fla's <c>use_output_norm</c> is passed to the layer, which ignores it (its <c>o_norm</c> is always
/// applied); so is it here: it stays in <see cref="FlaConfig.Extra"/>. <c>conv_bias</c> is not a config field of fla's
/// DeltaNet model (its layers have none) and is kept in <see cref="FlaConfig.Extra"/> unread likewise.</remarks>
public sealed class DeltaNetConfig : FlaConfig
{
    /// <summary>fla's model type.</summary>
    public const string Type = "delta_net";

    /// <summary>A config of fla's defaults (hidden 2048, 24 layers, 16 heads, vocabulary 32000); set fields with an
    /// object initializer.</summary>
    public DeltaNetConfig() { }

    private DeltaNetConfig(JsonReader r) : base(r, new DeltaNetConfig())
    {
        NumHeads = r.Int("num_heads", NumHeads);
        ExpandK = r.Double("expand_k", ExpandK);
        ExpandV = r.Double("expand_v", ExpandV);
        UseBeta = r.Bool("use_beta", UseBeta);
        UseGate = r.Bool("use_gate", UseGate);
        UseShortConv = r.Bool("use_short_conv", UseShortConv);
        ConvSize = r.Int("conv_size", ConvSize);
        AllowNegEigval = r.Bool("allow_neg_eigval", AllowNegEigval);
        QKActivation = r.String("qk_activation", "silu") switch
        {
            "silu" => FlaQKActivation.Silu,
            "relu" => FlaQKActivation.Relu,
            "elu" => FlaQKActivation.Elu,
            "identity" => FlaQKActivation.Identity,
            var other => throw new ArgumentException($"Expected config field 'qk_activation' to be one of fla's 'silu', 'relu', 'elu', 'identity'; got '{other}'.", "config"),
        };
        QKNorm = r.String("qk_norm", "l2") switch
        {
            "l2" => FlaQKNorm.L2,
            "sum" => FlaQKNorm.Sum,
            var other => throw new ArgumentException($"Expected config field 'qk_norm' to be one of fla's 'l2', 'sum'; got '{other}'.", "config"),
        };
        Extra = r.Rest();
    }

    /// <inheritdoc />
    public override string ModelType => Type;

    /// <inheritdoc />
    public override string Architecture => nameof(DeltaNetForCausalLM);

    /// <summary>The heads per layer (<c>num_heads</c>, default 16).</summary>
    public int NumHeads { get; init; } = 16;

    /// <summary>The key size over H (<c>expand_k</c>, default 1).</summary>
    public double ExpandK { get; init; } = 1;

    /// <summary>The value size over H (<c>expand_v</c>, default 1).</summary>
    public double ExpandV { get; init; } = 1;

    /// <summary>A learned beta per head (<c>use_beta</c>, default true).</summary>
    public bool UseBeta { get; init; } = true;

    /// <summary>The gated output norm with <c>g_proj</c> (<c>use_gate</c>, default false).</summary>
    public bool UseGate { get; init; }

    /// <summary>Short convolutions on q, k, v (<c>use_short_conv</c>, default true).</summary>
    public bool UseShortConv { get; init; } = true;

    /// <summary>Their kernel size (<c>conv_size</c>, default 4).</summary>
    public int ConvSize { get; init; } = 4;

    /// <summary>beta in (0, 2) (<c>allow_neg_eigval</c>, default false).</summary>
    public bool AllowNegEigval { get; init; }

    /// <summary>The feature map of q and k (<c>qk_activation</c>, default <c>silu</c>).</summary>
    public FlaQKActivation QKActivation { get; init; } = FlaQKActivation.Silu;

    /// <summary>The normalization of q and k (<c>qk_norm</c>, default <c>l2</c>).</summary>
    public FlaQKNorm QKNorm { get; init; } = FlaQKNorm.L2;

    /// <summary>Reads a <c>delta_net</c> config.json object.</summary>
    /// <param name="config">The parsed config.json.</param>
    /// <exception cref="ArgumentException">It is not a <c>delta_net</c> config, or a field has the wrong type or value.</exception>
    /// <exception cref="NotSupportedException">It asks for something not implemented here (hybrid attention layers, ...).</exception>
    public static DeltaNetConfig FromJson(JsonElement config) => new(Open(config, Type));

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Positive(NumHeads, "num_heads");
        PositiveFinite(ExpandK, "expand_k");
        PositiveFinite(ExpandV, "expand_v");
        if (UseShortConv) Positive(ConvSize, "conv_size");
    }

    /// <inheritdoc />
    protected override void WriteLayerFields(JsonObject o)
    {
        o["num_heads"] = NumHeads;
        o["expand_k"] = Float(ExpandK);
        o["expand_v"] = Float(ExpandV);
        o["use_beta"] = UseBeta;
        o["use_gate"] = UseGate;
        o["use_short_conv"] = UseShortConv;
        o["conv_size"] = ConvSize;
        o["allow_neg_eigval"] = AllowNegEigval;
        o["qk_activation"] = QKActivation.ToString().ToLowerInvariant();
        o["qk_norm"] = QKNorm.ToString().ToLowerInvariant();
    }
}
