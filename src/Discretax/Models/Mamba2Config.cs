using System.Text.Json;
using System.Text.Json.Nodes;

namespace Discretax.Models;

/// <summary>
/// fla's <c>Mamba2Config</c> (<c>fla/models/mamba2/configuration_mamba2.py</c>, <c>model_type</c> <c>mamba2</c>): the
/// common fields of <see cref="FlaConfig"/> and the Mamba2 layer's, with fla's names and defaults. Build a
/// <see cref="Mamba2ForCausalLM"/> from it.
/// <para>With <c>d_inner = expand H</c>, the model has <c>NH = d_inner / head_dim</c> heads of size <c>head_dim</c>,
/// <c>n_groups</c> groups of B and C of size <c>state_size</c> (head h uses group <c>h / (NH / G)</c>) and a
/// convolution of <c>conv_kernel</c> taps over <c>d_inner + 2 G state_size</c> channels
/// (<see cref="SequenceMixers.Mamba2SequenceMixer"/>).</para>
/// </summary>
/// <remarks>
/// <para>Mamba2's blocks have no feed-forward: <see cref="FlaConfig.HiddenRatio"/> and
/// <see cref="FlaConfig.IntermediateSize"/> are null and neither read nor written. <see cref="FlaConfig.HiddenAct"/> is
/// the activation of the convolution and of the ungated output (<c>rmsnorm</c> false): <c>silu</c> (fla's default) or
/// its alias <c>swish</c> (fla's <c>ACT2FN</c> maps both to the same function); any other is refused.
/// <see cref="FlaConfig.PadTokenId"/> (fla's default 0) is written back but unused: fla's Mamba2 embedding has no padding
/// row.</para>
/// <para><c>num_heads</c> is derived, as fla derives it (<see cref="NumHeads"/>); a config.json value (fla's
/// <c>to_dict</c> writes it) must agree with it, as fla's layer requires. <c>fuse_norm</c>, <c>fuse_cross_entropy</c>,
/// <c>fuse_linear_cross_entropy</c>, <c>use_l2warp</c>, <c>use_cache</c> and every other unread field stay in
/// <see cref="FlaConfig.Extra"/>. <c>attn</c> and <c>attnres_block_size</c> are not fields of fla's Mamba2 config (fla
/// ignores them there): kept in <see cref="FlaConfig.Extra"/> too.</para>
/// </remarks>
public sealed class Mamba2Config : FlaConfig
{
    /// <summary>fla's model type.</summary>
    public const string Type = "mamba2";

    /// <summary>A config of fla's defaults (hidden 2048, 48 layers, heads of 64, state size 128, vocabulary 32000); set
    /// fields with an object initializer.</summary>
    public Mamba2Config()
    {
        NumHiddenLayers = 48;
        NormEps = 1e-5;
        PadTokenId = 0;
        HiddenAct = "silu";
        HiddenRatio = null;
        IntermediateSize = null;
    }

    private Mamba2Config(JsonReader r) : base(r, new Mamba2Config())
    {
        HeadDim = r.Int("head_dim", HeadDim);
        StateSize = r.Int("state_size", StateSize);
        Expand = r.Int("expand", Expand);
        ConvKernel = r.Int("conv_kernel", ConvKernel);
        NGroups = r.Int("n_groups", NGroups);
        UseBias = r.Bool("use_bias", UseBias);
        UseConvBias = r.Bool("use_conv_bias", UseConvBias);
        ConvInit = r.DoubleOrNull("conv_init", ConvInit);
        AInitRange = r.Pair("A_init_range", AInitRange);
        DHasHdim = r.Bool("D_has_hdim", DHasHdim);
        ResidualInFp32 = r.Bool("residual_in_fp32", ResidualInFp32);
        DtMin = r.Double("dt_min", DtMin);
        DtMax = r.Double("dt_max", DtMax);
        DtInitFloor = r.Double("dt_init_floor", DtInitFloor);
        DtLimit = r.Pair("dt_limit", DtLimit);
        RescalePrenormResidual = r.Bool("rescale_prenorm_residual", RescalePrenormResidual);
        RmsNorm = r.Bool("rmsnorm", RmsNorm);
        NormBeforeGate = r.Bool("norm_before_gate", NormBeforeGate);
        ChunkSize = r.Int("chunk_size", ChunkSize);
        if (r.IntOrNull("num_heads", null) is int heads && heads != 0 && HeadDim > 0
            && (long)heads * HeadDim != (long)Expand * HiddenSize)
            throw new ArgumentException(
                $"Expected config field 'num_heads' to equal expand * hidden_size / head_dim = {Expand} * {HiddenSize} / {HeadDim} (or to be 0 or null); got {heads}.",
                "config");
        Extra = r.Rest();
    }

    /// <inheritdoc />
    public override string ModelType => Type;

    /// <inheritdoc />
    public override string Architecture => nameof(Mamba2ForCausalLM);

    /// <inheritdoc />
    private protected override bool HasFeedForward => false;

    /// <summary>The head size P (<c>head_dim</c>, default 64); must divide <c>expand * hidden_size</c>.</summary>
    public int HeadDim { get; init; } = 64;

    /// <summary>The state size N of B and C (<c>state_size</c>, default 128).</summary>
    public int StateSize { get; init; } = 128;

    /// <summary>The inner size over H (<c>expand</c>, default 2): <c>d_inner = expand * hidden_size</c>.</summary>
    public int Expand { get; init; } = 2;

    /// <summary>The convolution's kernel size (<c>conv_kernel</c>, default 4).</summary>
    public int ConvKernel { get; init; } = 4;

    /// <summary>The groups G of B and C (<c>n_groups</c>, default 1); must divide <see cref="NumHeads"/>.</summary>
    public int NGroups { get; init; } = 1;

    /// <summary>Biases in <c>in_proj</c> and <c>out_proj</c> (<c>use_bias</c>, default false).</summary>
    public bool UseBias { get; init; }

    /// <summary>A bias in the convolution (<c>use_conv_bias</c>, default true).</summary>
    public bool UseConvBias { get; init; } = true;

    /// <summary>The convolution weights' initialization U(-c, c) (<c>conv_init</c>, default null: normal(0,
    /// <c>initializer_range</c>) as the other linear maps).</summary>
    public double? ConvInit { get; init; }

    /// <summary>The range of the initial <c>A = exp(A_log)</c> (<c>A_init_range</c>, default (1, 16)).</summary>
    public (double Min, double Max) AInitRange { get; init; } = (1, 16);

    /// <summary>One D per channel instead of one per head (<c>D_has_hdim</c>, default false).</summary>
    public bool DHasHdim { get; init; }

    /// <summary>The blocks' residual sums in float32 (<c>residual_in_fp32</c>, default true).</summary>
    public bool ResidualInFp32 { get; init; } = true;

    /// <summary>The smallest initial dt (<c>dt_min</c>, default 0.001).</summary>
    public double DtMin { get; init; } = 0.001;

    /// <summary>The largest initial dt (<c>dt_max</c>, default 0.1).</summary>
    public double DtMax { get; init; } = 0.1;

    /// <summary>The floor of the initial dt (<c>dt_init_floor</c>, default 1e-4; fla requires it positive).</summary>
    public double DtInitFloor { get; init; } = 1e-4;

    /// <summary>The range dt is clamped to (<c>dt_limit</c>, default (0, infinity): no clamp).</summary>
    public (double Min, double Max) DtLimit { get; init; } = (0, double.PositiveInfinity);

    /// <summary>fla's GPT-2-style initialization of <c>out_proj</c> (<c>rescale_prenorm_residual</c>, default true):
    /// U(-b, b) with <c>b = 1 / sqrt(d_inner num_hidden_layers)</c>, PyTorch's default Linear initialization divided by
    /// <c>sqrt(num_hidden_layers)</c>.</summary>
    public bool RescalePrenormResidual { get; init; } = true;

    /// <summary>The gated RMS norm before <c>out_proj</c> (<c>rmsnorm</c>, default true); without it <c>y * silu(z)</c>.</summary>
    public bool RmsNorm { get; init; } = true;

    /// <summary>The gated norm's order (<c>norm_before_gate</c>, default false: <c>rms(y * silu(z)) * w</c>; true:
    /// <c>rms(y) * w * silu(z)</c>).</summary>
    public bool NormBeforeGate { get; init; }

    /// <summary>The chunk size of the SSD kernel (<c>chunk_size</c>, default 256); the result does not depend on it.</summary>
    public int ChunkSize { get; init; } = 256;

    /// <summary>The number of heads NH = <c>expand * hidden_size / head_dim</c> (<c>num_heads</c>, derived as fla does).</summary>
    public int NumHeads => HeadDim > 0 ? (int)(Expand * HiddenSize / HeadDim) : 0;

    /// <summary>Reads a <c>mamba2</c> config.json object.</summary>
    /// <param name="config">The parsed config.json.</param>
    /// <exception cref="ArgumentException">It is not a <c>mamba2</c> config, or a field has the wrong type or value (a
    /// <c>num_heads</c> that disagrees with the sizes, ...).</exception>
    public static Mamba2Config FromJson(JsonElement config) => new(Open(config, Type, hybridFields: false));

    /// <inheritdoc />
    /// <exception cref="NotSupportedException"><see cref="FlaConfig.HiddenAct"/> is not <c>silu</c> (or <c>swish</c>).</exception>
    public override void Validate()
    {
        base.Validate();
        Positive(HeadDim, "head_dim");
        Positive(StateSize, "state_size");
        Positive(Expand, "expand");
        Positive(ConvKernel, "conv_kernel");
        Positive(NGroups, "n_groups");
        Positive(ChunkSize, "chunk_size");
        long inner = (long)Expand * HiddenSize;
        if (inner % HeadDim != 0)
            throw new ArgumentException($"Expected head_dim ({HeadDim}) to divide expand * hidden_size ({inner}).", "config");
        if (NumHeads % NGroups != 0)
            throw new ArgumentException($"Expected n_groups ({NGroups}) to divide num_heads = expand * hidden_size / head_dim ({NumHeads}).", "config");
        if (!(AInitRange.Min > 0 && AInitRange.Max >= AInitRange.Min && double.IsFinite(AInitRange.Max)))
            throw new ArgumentOutOfRangeException("config", AInitRange, $"Expected A_init_range a finite pair 0 < min <= max; got {AInitRange}.");
        if (!(DtMin > 0 && DtMax >= DtMin && double.IsFinite(DtMax)))
            throw new ArgumentOutOfRangeException("config", (DtMin, DtMax), $"Expected 0 < dt_min <= dt_max, finite; got dt_min {DtMin}, dt_max {DtMax}.");
        PositiveFinite(DtInitFloor, "dt_init_floor");
        if (!(DtLimit.Min >= 0 && DtLimit.Max > DtLimit.Min) || double.IsNaN(DtLimit.Max) || double.IsInfinity(DtLimit.Min))
            throw new ArgumentOutOfRangeException("config", DtLimit, $"Expected dt_limit a pair 0 <= min < max (max may be infinite); got {DtLimit}.");
        if (ConvInit is double c) PositiveFinite(c, "conv_init");
        if (HiddenAct is not ("silu" or "swish"))
            throw new NotSupportedException($"hidden_act '{HiddenAct}' is not supported; fla's Mamba2 is implemented with 'silu' (or its alias 'swish') only.");
    }

    /// <inheritdoc />
    protected override void WriteLayerFields(JsonObject o)
    {
        o["head_dim"] = HeadDim;
        o["state_size"] = StateSize;
        o["expand"] = Expand;
        o["conv_kernel"] = ConvKernel;
        o["n_groups"] = NGroups;
        o["num_heads"] = NumHeads;
        o["use_bias"] = UseBias;
        o["use_conv_bias"] = UseConvBias;
        o["conv_init"] = ConvInit is double c ? Float(c) : null;
        o["A_init_range"] = new JsonArray(Number(AInitRange.Min), Number(AInitRange.Max));   // fla's default (1, 16): ints
        o["D_has_hdim"] = DHasHdim;
        o["residual_in_fp32"] = ResidualInFp32;
        o["dt_min"] = Float(DtMin);
        o["dt_max"] = Float(DtMax);
        o["dt_init_floor"] = Float(DtInitFloor);
        o["dt_limit"] = new JsonArray(Float(DtLimit.Min), Float(DtLimit.Max));               // (0.0, inf) -> [0.0, 1e999]
        o["rescale_prenorm_residual"] = RescalePrenormResidual;
        o["rmsnorm"] = RmsNorm;
        o["norm_before_gate"] = NormBeforeGate;
        o["chunk_size"] = ChunkSize;
    }
}
