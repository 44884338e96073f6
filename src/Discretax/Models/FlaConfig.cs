using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Discretax.Models;

/// <summary>
/// The <c>config.json</c> of a flash-linear-attention language model (a Hugging Face <c>PretrainedConfig</c>): the
/// fields every fla model shares, with fla's names and defaults; <see cref="DeltaNetConfig"/> and
/// <see cref="GatedDeltaNetConfig"/> add their layer's fields. <see cref="FlaForCausalLM.ParseConfig"/> reads one by its
/// <c>model_type</c>; <see cref="ToJson"/> writes it back for fla's <c>from_pretrained</c>.
/// </summary>
/// <remarks>
/// <para>Reading is strict about what changes the model: a field of the wrong JSON type is an
/// <see cref="ArgumentException"/> (parameter <c>config</c>) naming the field, what was expected and what came; a
/// valid fla setting this library does not implement (hybrid attention layers <c>attn</c>, <c>attnres_block_size</c>,
/// <c>hidden_act</c> other than <c>swish</c>) is a <see cref="NotSupportedException"/> naming it. Fields that change
/// fla's kernels but not its math (<c>attn_mode</c>, <c>fuse_norm</c>, <c>fuse_swiglu</c>, <c>fuse_cross_entropy</c>,
/// <c>fuse_linear_cross_entropy</c>, <c>use_cache</c>, <c>max_position_embeddings</c>, ...) and every field not
/// read are kept in <see cref="Extra"/> and written back unchanged (docs/interop.md lists them).</para>
/// </remarks>
public abstract class FlaConfig
{
    private static readonly HashSet<string> Written = new(StringComparer.Ordinal) { "model_type", "architectures", "torch_dtype" };

    /// <summary>fla's <c>model_type</c> (<c>delta_net</c>, <c>gated_deltanet</c>).</summary>
    public abstract string ModelType { get; }

    /// <summary>The causal LM class fla registers for <see cref="ModelType"/> (config.json's <c>architectures</c>).</summary>
    public abstract string Architecture { get; }

    /// <summary>The feature size H (<c>hidden_size</c>, default 2048).</summary>
    public long HiddenSize { get; init; } = 2048;

    /// <summary>The number of blocks (<c>num_hidden_layers</c>; 24 for DeltaNet, 21 for Gated DeltaNet).</summary>
    public int NumHiddenLayers { get; init; } = 24;

    /// <summary>The feed-forward's nominal width over H (<c>hidden_ratio</c>, default 4; null: 4), used without
    /// <see cref="IntermediateSize"/>: <c>int(H ratio 2/3)</c> rounded up to a multiple of 256.</summary>
    public double? HiddenRatio { get; init; } = 4;

    /// <summary>The feed-forward's width (<c>intermediate_size</c>), or null for the hidden-ratio rule.</summary>
    public long? IntermediateSize { get; init; }

    /// <summary>The feed-forward's activation (<c>hidden_act</c>): only <c>swish</c> (fla's default).</summary>
    public string HiddenAct { get; init; } = "swish";

    /// <summary>The epsilon of every RMSNorm of the model, including the mixers' output norms (<c>norm_eps</c>, default 1e-6).</summary>
    public double NormEps { get; init; } = 1e-6;

    /// <summary>The number of token ids V (<c>vocab_size</c>, default 32000).</summary>
    public long VocabSize { get; init; } = 32000;

    /// <summary>Whether <c>lm_head</c> uses the embedding's weight (<c>tie_word_embeddings</c>, default false).</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>The standard deviation of fla's normal initialization (<c>initializer_range</c>, default 0.02).</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>The padding id (<c>pad_token_id</c>, default null): fla's embedding gives it no gradient (<c>padding_idx</c>).</summary>
    public long? PadTokenId { get; init; }

    /// <summary>The beginning-of-sequence id (<c>bos_token_id</c>, default 1); written back, not used by the model.</summary>
    public long? BosTokenId { get; init; } = 1;

    /// <summary>The end-of-sequence id (<c>eos_token_id</c>, default 2); a natural stop token for generation.</summary>
    public long? EosTokenId { get; init; } = 2;

    /// <summary>Every other field of the config.json read, by name, written back by <see cref="ToJson"/> (empty for a
    /// config made in code).</summary>
    public IReadOnlyDictionary<string, JsonElement> Extra { get; init; } = new Dictionary<string, JsonElement>();

    /// <summary>
    /// The config as fla's <c>save_pretrained</c> writes it: <see cref="Extra"/>, then every field of this config,
    /// <c>model_type</c>, <c>architectures</c> and, when given, <c>torch_dtype</c>.
    /// </summary>
    /// <param name="torchDType">The <c>torch_dtype</c> entry (<c>float32</c>, <c>bfloat16</c>, ...), or null to leave it out.</param>
    public JsonObject ToJson(string? torchDType = null)
    {
        var o = new JsonObject();
        foreach (var (name, value) in Extra)
            if (!Written.Contains(name)) o[name] = JsonNode.Parse(value.GetRawText());
        o["model_type"] = ModelType;
        o["architectures"] = new JsonArray(Architecture);
        if (torchDType is not null) o["torch_dtype"] = torchDType;
        o["hidden_size"] = HiddenSize;
        o["num_hidden_layers"] = NumHiddenLayers;
        o["hidden_ratio"] = Number(HiddenRatio);
        o["intermediate_size"] = IntermediateSize;
        o["hidden_act"] = HiddenAct;
        o["norm_eps"] = Float(NormEps);
        o["vocab_size"] = VocabSize;
        o["tie_word_embeddings"] = TieWordEmbeddings;
        o["initializer_range"] = Float(InitializerRange);
        o["pad_token_id"] = PadTokenId;
        o["bos_token_id"] = BosTokenId;
        o["eos_token_id"] = EosTokenId;
        WriteLayerFields(o);
        return o;
    }

    /// <summary>Writes the layer's own fields (for <see cref="ToJson"/>).</summary>
    /// <param name="o">The object to add them to.</param>
    protected abstract void WriteLayerFields(JsonObject o);

    /// <summary>Validates the values a model needs (sizes at least 1, positive epsilons, the activation), naming the
    /// property; called by the models' constructors.</summary>
    /// <exception cref="ArgumentException">A value is out of range (the message names the field).</exception>
    /// <exception cref="NotSupportedException"><see cref="HiddenAct"/> is not <c>swish</c>.</exception>
    public virtual void Validate()
    {
        Positive(HiddenSize, "hidden_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(VocabSize, "vocab_size");
        if (HiddenRatio is double r) PositiveFinite(r, "hidden_ratio");
        if (IntermediateSize is long i) Positive(i, "intermediate_size");
        PositiveFinite(NormEps, "norm_eps");
        if (!(InitializerRange >= 0 && double.IsFinite(InitializerRange)))
            throw new ArgumentOutOfRangeException("config", InitializerRange, $"Expected initializer_range >= 0 and finite; got {InitializerRange}.");
        if (PadTokenId is long p && (p < 0 || p >= VocabSize))
            throw new ArgumentOutOfRangeException("config", p, $"Expected pad_token_id in [0, vocab_size = {VocabSize}) or null; got {p}.");
        if (HiddenAct != "swish")
            throw new NotSupportedException($"hidden_act '{HiddenAct}' is not supported; fla's GatedMLP is implemented with 'swish' only (fla's 'powlu' is not).");
    }

    /// <summary>A config of fla's defaults (for code; set fields with an object initializer).</summary>
    protected FlaConfig() { }

    /// <summary>Reads the common fields of <paramref name="r"/>'s config, falling back to <paramref name="defaults"/>.</summary>
    private protected FlaConfig(JsonReader r, FlaConfig defaults)
    {
        HiddenSize = r.Long("hidden_size", defaults.HiddenSize);
        NumHiddenLayers = r.Int("num_hidden_layers", defaults.NumHiddenLayers);
        HiddenRatio = r.DoubleOrNull("hidden_ratio", defaults.HiddenRatio);
        IntermediateSize = r.LongOrNull("intermediate_size", defaults.IntermediateSize);
        HiddenAct = r.String("hidden_act", defaults.HiddenAct) ?? defaults.HiddenAct;
        NormEps = r.Double("norm_eps", defaults.NormEps);
        VocabSize = r.Long("vocab_size", defaults.VocabSize);
        TieWordEmbeddings = r.Bool("tie_word_embeddings", defaults.TieWordEmbeddings);
        InitializerRange = r.Double("initializer_range", defaults.InitializerRange);
        PadTokenId = r.LongOrNull("pad_token_id", defaults.PadTokenId);
        BosTokenId = r.LongOrNull("bos_token_id", defaults.BosTokenId);
        EosTokenId = r.LongOrNull("eos_token_id", defaults.EosTokenId);
    }

    /// <summary>Opens a config.json object for reading: checks that it is an object of <paramref name="modelType"/>
    /// and refuses what no fla model here implements (hybrid attention layers, attention residuals).</summary>
    internal static JsonReader Open(JsonElement config, string modelType)
    {
        if (config.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"Expected config.json to be a JSON object; got {config.ValueKind}.", nameof(config));
        var reader = new JsonReader(config);
        string? type = reader.String("model_type", null);
        if (type != modelType)
            throw new ArgumentException($"Expected model_type '{modelType}'; got {(type is null ? "none" : $"'{type}'")}.", nameof(config));
        if (reader.Has("attn"))
            throw new NotSupportedException("The config has hybrid attention layers ('attn' is not null); fla's softmax-attention layers are not implemented here.");
        if (reader.Has("attnres_block_size"))
            throw new NotSupportedException("The config uses attention residuals ('attnres_block_size' is not null), which are not implemented here.");
        return reader;
    }

    /// <summary>A field fla types as <c>int</c> but that may hold a float (<c>hidden_ratio</c>): an integral value as an
    /// integer (<c>4</c>), else as <see cref="Float"/>.</summary>
    private protected static JsonNode? Number(double? value) =>
        value is not double d ? null
        : d == Math.Floor(d) && Math.Abs(d) < 1e15 ? JsonValue.Create((long)d)
        : Float(d);

    /// <summary>A float field as Python's <c>json</c> writes it: <c>1.0</c>, <c>0.02</c>, <c>1e-06</c>.</summary>
    private protected static JsonNode Float(double d) =>
        JsonNode.Parse(d == Math.Floor(d) && Math.Abs(d) < 1e15
            ? ((long)d).ToString(CultureInfo.InvariantCulture) + ".0"
            : d.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e'))!;

    private protected static void Positive(long value, string field)
    {
        if (value < 1) throw new ArgumentOutOfRangeException("config", value, $"Expected {field} of at least 1; got {value}.");
    }

    private protected static void PositiveFinite(double value, string field)
    {
        if (!(value > 0 && double.IsFinite(value)))
            throw new ArgumentOutOfRangeException("config", value, $"Expected {field} positive and finite; got {value}.");
    }

    /// <summary>Typed, validating access to the fields of a config.json object; remembers which fields were read.</summary>
    internal sealed class JsonReader(JsonElement config)
    {
        private readonly HashSet<string> _read = new(StringComparer.Ordinal) { "model_type", "attn", "attnres_block_size" };

        /// <summary>Whether the field is present and not null.</summary>
        public bool Has(string name) => config.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

        private JsonElement? Get(string name)
        {
            _read.Add(name);
            return config.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;
        }

        private static ArgumentException Wrong(string name, string expected, JsonElement v) =>
            new($"Expected config field '{name}' to be {expected}; got {v.GetRawText()}.", "config");

        public long Long(string name, long fallback) => LongOrNull(name, fallback) ?? fallback;

        public long? LongOrNull(string name, long? fallback)
        {
            if (Get(name) is not JsonElement v) return config.TryGetProperty(name, out _) ? null : fallback;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n)) return n;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < 1L << 53) return (long)d;
            throw Wrong(name, "an integer", v);
        }

        public int Int(string name, int fallback)
        {
            long n = Long(name, fallback);
            if (n < int.MinValue || n > int.MaxValue) throw new ArgumentException($"Expected config field '{name}' to fit in 32 bits; got {n}.", "config");
            return (int)n;
        }

        public int? IntOrNull(string name, int? fallback)
        {
            long? n = LongOrNull(name, fallback);
            if (n is long v && (v < int.MinValue || v > int.MaxValue)) throw new ArgumentException($"Expected config field '{name}' to fit in 32 bits; got {v}.", "config");
            return (int?)n;
        }

        public double Double(string name, double fallback) => DoubleOrNull(name, fallback) ?? fallback;

        public double? DoubleOrNull(string name, double? fallback)
        {
            if (Get(name) is not JsonElement v) return config.TryGetProperty(name, out _) ? null : fallback;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d)) return d;
            throw Wrong(name, "a number", v);
        }

        public bool Bool(string name, bool fallback)
        {
            if (Get(name) is not JsonElement v) return fallback;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Wrong(name, "true or false", v),
            };
        }

        public string? String(string name, string? fallback)
        {
            if (Get(name) is not JsonElement v) return fallback;
            return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(name, "a string", v);
        }

        /// <summary>The fields not read so far (and not written by <see cref="ToJson"/>), for <see cref="Extra"/>.</summary>
        public Dictionary<string, JsonElement> Rest()
        {
            var rest = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var p in config.EnumerateObject())
                if (!_read.Contains(p.Name) && !Written.Contains(p.Name)) rest[p.Name] = p.Value.Clone();
            return rest;
        }
    }
}
