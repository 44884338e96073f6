using System.Text.Json;
using System.Text.Json.Nodes;
using Discretax.SequenceMixers;

namespace Discretax.Models;

/// <summary>
/// The configuration of the xLSTM-7B architecture (<see cref="XLSTMLarge"/>): NX-AI xlstm's <c>xLSTMLargeConfig</c>
/// (<c>xlstm/xlstm_large/model.py</c>), with its defaults, read from and written to a Hugging Face
/// <c>config.json</c> (<see cref="FromJson"/>, <see cref="ToJson"/>).
/// </summary>
/// <remarks>
/// <para>Sizes: <c>Dqk = int(E qkDimFactor)</c>, <c>Dv = int(E vDimFactor)</c> (<see cref="QKDim"/>, <see cref="VDim"/>),
/// each split into <c>NumHeads</c> heads; the feed-forward's middle size
/// <c>P = int(((E ffnProjFactor + m - 1) // m) m)</c> with <c>m = FfnRoundUpToMultipleOf</c> and Python's float floor
/// division (<see cref="FfnDim"/>; xLSTM-7B: E = 4096, 2.667, m = 64 give 10944).</para>
/// <para>The kernel fields of the reference (<c>chunkwise_kernel</c>, <c>sequence_kernel</c>, <c>step_kernel</c>,
/// <c>mode</c>, <c>return_last_states</c>, <c>autocast_kernel_dtype</c>, <c>inference_state_dtype</c>) choose among
/// implementations of one math and have no counterpart here: the model always runs <see cref="Kernels.MLSTMKernel.Chunked"/>
/// with chunks of <see cref="ChunkSize"/>, states in float32 at least. They and every other field this record does
/// not model (<c>max_inference_chunksize</c>, the token ids, ...) are kept in <see cref="Extra"/> and written back.</para>
/// </remarks>
public sealed record XLSTMLargeConfig
{
    /// <summary>The embedding (model) size E (<c>embedding_dim</c>; transformers: <c>hidden_size</c>).</summary>
    public required long EmbeddingDim { get; init; }

    /// <summary>The mLSTM heads NH (<c>num_heads</c>).</summary>
    public required int NumHeads { get; init; }

    /// <summary>The number of blocks (<c>num_blocks</c>; transformers: <c>num_hidden_layers</c>).</summary>
    public required int NumBlocks { get; init; }

    /// <summary>The vocabulary size V (<c>vocab_size</c>).</summary>
    public required long VocabSize { get; init; }

    /// <summary>Biases in the linear layers and norms (<c>use_bias</c>, default false). Only false is supported (the
    /// norms of this library have no bias); <see cref="XLSTMLarge"/> refuses true.</summary>
    public bool UseBias { get; init; }

    /// <summary>The eps of the RMS norms and the multi-head norm (<c>norm_eps</c>, default 1e-6).</summary>
    public double NormEps { get; init; } = 1e-6;

    /// <summary>Norm statistics in float32 (<c>norm_reduction_force_float32</c>, default true). Kept for the file: this
    /// library always reduces in float32 at least.</summary>
    public bool NormReductionForceFloat32 { get; init; } = true;

    /// <summary>An RMS norm <c>out_norm</c> after the blocks (<c>add_out_norm</c>, default true).</summary>
    public bool AddOutNorm { get; init; } = true;

    /// <summary>The query/key size factor (<c>qk_dim_factor</c>, default 0.5).</summary>
    public double QKDimFactor { get; init; } = 0.5;

    /// <summary>The value size factor (<c>v_dim_factor</c>, default 1.0).</summary>
    public double VDimFactor { get; init; } = 1.0;

    /// <summary>The kernel's chunk length (<c>chunk_size</c>, default 64).</summary>
    public int ChunkSize { get; init; } = 64;

    /// <summary>The kernel's denominator constant (<c>eps</c>, default 1e-6).</summary>
    public double Eps { get; init; } = 1e-6;

    /// <summary>The feed-forward's up-projection factor (<c>ffn_proj_factor</c>, default 2.6667; transformers and the
    /// xLSTM-7B checkpoint: 2.667).</summary>
    public double FfnProjFactor { get; init; } = 2.6667;

    /// <summary>The multiple the feed-forward's middle size is rounded up to (<c>ffn_round_up_to_multiple_of</c>, default 64).</summary>
    public int FfnRoundUpToMultipleOf { get; init; } = 64;

    /// <summary>The gate soft cap <c>cap tanh(a / cap)</c> of the input and forget gate pre-activations
    /// (<c>gate_soft_cap</c>, default 15), or null for none.</summary>
    public double? GateSoftCap { get; init; } = 15.0;

    /// <summary>The soft cap of the output logits (<c>output_logit_soft_cap</c>, default 30), or null for none.</summary>
    public double? OutputLogitSoftCap { get; init; } = 30.0;

    /// <summary>Separate or fused projections (<c>weight_mode</c>, default <see cref="XLSTMWeightMode.Single"/>).</summary>
    public XLSTMWeightMode WeightMode { get; init; } = XLSTMWeightMode.Single;

    /// <summary>Whether <c>lm_head</c> shares the embedding's weight (transformers' <c>tie_word_embeddings</c>, default
    /// false; xlstm_large has no tying).</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>The config.json fields this record does not model, as read (written back by <see cref="ToJson"/>).</summary>
    public IReadOnlyDictionary<string, JsonElement> Extra { get; init; } = new Dictionary<string, JsonElement>();

    /// <summary>The total query/key size <c>int(E qkDimFactor)</c>.</summary>
    public long QKDim => (long)(EmbeddingDim * QKDimFactor);

    /// <summary>The total value size <c>int(E vDimFactor)</c>.</summary>
    public long VDim => (long)(EmbeddingDim * VDimFactor);

    /// <summary>The feed-forward's middle size: xlstm_large's <c>round_up_to_next_multiple_of(E ffnProjFactor, m)</c>.</summary>
    public long FfnDim
    {
        get
        {
            double x = EmbeddingDim * FfnProjFactor, m = FfnRoundUpToMultipleOf;
            return (long)(PythonFloorDiv(x + m - 1, m) * m);
        }
    }

    /// <summary>The names this record reads (both spellings where transformers renamed one).</summary>
    private static readonly string[] Modelled =
    [
        "embedding_dim", "hidden_size", "num_heads", "num_blocks", "num_hidden_layers", "vocab_size", "use_bias",
        "norm_eps", "norm_reduction_force_float32", "add_out_norm", "qk_dim_factor", "v_dim_factor", "chunk_size",
        "eps", "ffn_proj_factor", "ffn_round_up_to_multiple_of", "gate_soft_cap", "output_logit_soft_cap",
        "weight_mode", "tie_word_embeddings",
    ];

    /// <summary>
    /// Reads a <c>config.json</c>: xlstm_large's field names (<c>embedding_dim</c>, <c>num_blocks</c>, ...) or
    /// transformers' <c>xLSTMConfig</c> (<c>hidden_size</c>, <c>num_hidden_layers</c>, which win when both are given,
    /// as transformers' <c>__post_init__</c> has it); absent fields take the reference's defaults.
    /// </summary>
    /// <param name="config">The parsed JSON object.</param>
    /// <exception cref="ArgumentException">A required field is missing, or a field has the wrong JSON type or an
    /// unknown value; the message names the field.</exception>
    public static XLSTMLargeConfig FromJson(JsonElement config)
    {
        if (config.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"Expected a JSON object as config; got {config.ValueKind}.", nameof(config));
        var extra = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in config.EnumerateObject())
            if (!Modelled.Contains(p.Name)) extra[p.Name] = p.Value.Clone();
        long embedding = Long(config, "hidden_size") ?? Long(config, "embedding_dim")
            ?? throw Missing("embedding_dim (or hidden_size)");
        long blocks = Long(config, "num_hidden_layers") ?? Long(config, "num_blocks")
            ?? throw Missing("num_blocks (or num_hidden_layers)");
        string mode = String(config, "weight_mode") ?? "single";
        return new XLSTMLargeConfig
        {
            EmbeddingDim = embedding,
            NumHeads = checked((int)(Long(config, "num_heads") ?? throw Missing("num_heads"))),
            NumBlocks = checked((int)blocks),
            VocabSize = Long(config, "vocab_size") ?? throw Missing("vocab_size"),
            UseBias = Bool(config, "use_bias") ?? false,
            NormEps = Double(config, "norm_eps") ?? 1e-6,
            NormReductionForceFloat32 = Bool(config, "norm_reduction_force_float32") ?? true,
            AddOutNorm = Bool(config, "add_out_norm") ?? true,
            QKDimFactor = Double(config, "qk_dim_factor") ?? 0.5,
            VDimFactor = Double(config, "v_dim_factor") ?? 1.0,
            ChunkSize = checked((int)(Long(config, "chunk_size") ?? 64)),
            Eps = Double(config, "eps") ?? 1e-6,
            FfnProjFactor = Double(config, "ffn_proj_factor") ?? 2.6667,
            FfnRoundUpToMultipleOf = checked((int)(Long(config, "ffn_round_up_to_multiple_of") ?? 64)),
            GateSoftCap = NullableDouble(config, "gate_soft_cap", 15.0),
            OutputLogitSoftCap = NullableDouble(config, "output_logit_soft_cap", 30.0),
            WeightMode = mode switch
            {
                "single" => XLSTMWeightMode.Single,
                "fused" => XLSTMWeightMode.Fused,
                _ => throw new ArgumentException($"Expected weight_mode \"single\" or \"fused\" in config; got \"{mode}\".", nameof(config)),
            },
            TieWordEmbeddings = Bool(config, "tie_word_embeddings") ?? false,
            Extra = extra,
        };
    }

    /// <summary>
    /// The <c>config.json</c> object: <see cref="Extra"/>, then every modelled field under both its xlstm_large name
    /// and transformers' (<c>hidden_size</c>, <c>num_hidden_layers</c>, <c>tie_word_embeddings</c>), and
    /// <c>model_type: "xlstm"</c> and <c>architectures: ["xLSTMForCausalLM"]</c> unless <see cref="Extra"/> has them,
    /// so that transformers' <c>xLSTMConfig</c> reads it.
    /// </summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var (k, v) in Extra) o[k] = JsonNode.Parse(v.GetRawText());
        o["model_type"] ??= "xlstm";
        o["architectures"] ??= new JsonArray("xLSTMForCausalLM");
        o["embedding_dim"] = EmbeddingDim;
        o["hidden_size"] = EmbeddingDim;
        o["num_heads"] = NumHeads;
        o["num_blocks"] = NumBlocks;
        o["num_hidden_layers"] = NumBlocks;
        o["vocab_size"] = VocabSize;
        o["use_bias"] = UseBias;
        o["norm_eps"] = NormEps;
        o["norm_reduction_force_float32"] = NormReductionForceFloat32;
        o["add_out_norm"] = AddOutNorm;
        o["qk_dim_factor"] = QKDimFactor;
        o["v_dim_factor"] = VDimFactor;
        o["chunk_size"] = ChunkSize;
        o["eps"] = Eps;
        o["ffn_proj_factor"] = FfnProjFactor;
        o["ffn_round_up_to_multiple_of"] = FfnRoundUpToMultipleOf;
        o["gate_soft_cap"] = GateSoftCap;
        o["output_logit_soft_cap"] = OutputLogitSoftCap;
        o["weight_mode"] = WeightMode == XLSTMWeightMode.Fused ? "fused" : "single";
        o["tie_word_embeddings"] = TieWordEmbeddings;
        return o;
    }

    /// <summary>Python's <c>a // b</c> for floats (<c>float_floor_div</c>: fmod, then the exact quotient rounded).</summary>
    internal static double PythonFloorDiv(double a, double b)
    {
        double mod = a % b;
        double div = (a - mod) / b;
        if (mod != 0 && (b < 0) != (mod < 0)) div -= 1.0;
        double floor = Math.Floor(div);
        if (div - floor > 0.5) floor += 1.0;
        return floor;
    }

    private static ArgumentException Missing(string field) =>
        new($"The config has no {field}; it is required.", "config");

    private static JsonElement? Get(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static long? Long(JsonElement o, string name)
    {
        if (Get(o, name) is not JsonElement v) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l)) return l;
        throw new ArgumentException($"Expected an integer for {name} in config; got {v.GetRawText()}.", "config");
    }

    private static double? Double(JsonElement o, string name)
    {
        if (Get(o, name) is not JsonElement v) return null;
        if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
        throw new ArgumentException($"Expected a number for {name} in config; got {v.GetRawText()}.", "config");
    }

    private static double? NullableDouble(JsonElement o, string name, double fallback)
    {
        if (!o.TryGetProperty(name, out var v)) return fallback;
        return v.ValueKind == JsonValueKind.Null ? null : Double(o, name);
    }

    private static bool? Bool(JsonElement o, string name)
    {
        if (Get(o, name) is not JsonElement v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ArgumentException($"Expected true or false for {name} in config; got {v.GetRawText()}.", "config"),
        };
    }

    private static string? String(JsonElement o, string name)
    {
        if (Get(o, name) is not JsonElement v) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        throw new ArgumentException($"Expected a string for {name} in config; got {v.GetRawText()}.", "config");
    }
}
