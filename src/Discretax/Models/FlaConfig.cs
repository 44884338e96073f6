using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Discretax.Models;

/// <summary>
/// The <c>config.json</c> of a flash-linear-attention language model (a Hugging Face <c>PretrainedConfig</c>): the
/// fields every fla model shares, with fla's names and defaults; <see cref="DeltaNetConfig"/>,
/// <see cref="GatedDeltaNetConfig"/> and <see cref="Mamba2Config"/> add their layer's fields. <see cref="FlaForCausalLM.ParseConfig"/> reads one by its
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
/// <para>The feed-forward fields (<see cref="HiddenRatio"/>, <see cref="IntermediateSize"/>, and <c>hidden_act</c>
/// as the feed-forward's activation) belong to the models whose blocks have fla's <c>GatedMLP</c> (DeltaNet, Gated
/// DeltaNet). A model without one (<see cref="Mamba2Config"/>) neither reads, validates nor writes
/// <c>hidden_ratio</c> and <c>intermediate_size</c> (they are null there; a file that has them keeps them in
/// <see cref="Extra"/>), and gives <c>hidden_act</c> its own meaning and check.</para>
/// <para>Python's <c>json</c> writes an infinite float as the bare literal <c>Infinity</c> (fla's Mamba2
/// <c>dt_limit</c> default <c>(0.0, inf)</c>); <see cref="Interop.HuggingFaceCheckpoint"/> reads it, and
/// <see cref="ToJson"/> writes an infinite value as the standard JSON number <c>1e999</c>, which Python's
/// <c>json</c> reads back as <c>inf</c>.</para>
/// </remarks>
public abstract class FlaConfig
{
    private static readonly HashSet<string> Written = new(StringComparer.Ordinal) { "model_type", "architectures", "torch_dtype" };

    /// <summary>fla's <c>model_type</c> (<c>delta_net</c>, <c>gated_deltanet</c>, <c>mamba2</c>).</summary>
    public abstract string ModelType { get; }

    /// <summary>The causal LM class fla registers for <see cref="ModelType"/> (config.json's <c>architectures</c>).</summary>
    public abstract string Architecture { get; }

    /// <summary>The feature size H (<c>hidden_size</c>, default 2048).</summary>
    public long HiddenSize { get; init; } = 2048;

    /// <summary>The number of blocks (<c>num_hidden_layers</c>; 24 for DeltaNet, 21 for Gated DeltaNet, 48 for Mamba2).</summary>
    public int NumHiddenLayers { get; init; } = 24;

    /// <summary>The feed-forward's nominal width over H (<c>hidden_ratio</c>, default 4; null: 4), used without
    /// <see cref="IntermediateSize"/>: <c>int(H ratio 2/3)</c> rounded up to a multiple of 256. Null in a config of a
    /// model without feed-forward (Mamba2).</summary>
    public double? HiddenRatio { get; init; } = 4;

    /// <summary>The feed-forward's width (<c>intermediate_size</c>), or null for the hidden-ratio rule.</summary>
    public long? IntermediateSize { get; init; }

    /// <summary>The activation (<c>hidden_act</c>): the feed-forward's, only <c>swish</c> (fla's default); Mamba2's
    /// convolution activation, <c>silu</c> (see <see cref="Mamba2Config"/>).</summary>
    public string HiddenAct { get; init; } = "swish";

    /// <summary>The epsilon of every RMSNorm of the model, including the mixers' output norms (<c>norm_eps</c>, default
    /// 1e-6; Mamba2 1e-5).</summary>
    public double NormEps { get; init; } = 1e-6;

    /// <summary>The number of token ids V (<c>vocab_size</c>, default 32000).</summary>
    public long VocabSize { get; init; } = 32000;

    /// <summary>Whether <c>lm_head</c> uses the embedding's weight (<c>tie_word_embeddings</c>, default false).</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>The standard deviation of fla's normal initialization (<c>initializer_range</c>, default 0.02).</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>The padding id (<c>pad_token_id</c>, default null; Mamba2 0): fla's DeltaNet and Gated DeltaNet embeddings
    /// give it no gradient (<c>padding_idx</c>); Mamba2's embedding has no padding row, so there it is only written back.</summary>
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
        if (HasFeedForward)
        {
            o["hidden_ratio"] = Number(HiddenRatio);
            o["intermediate_size"] = IntermediateSize;
        }
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

    /// <summary>Whether the model's blocks have fla's <c>GatedMLP</c>, whose fields (<c>hidden_ratio</c>,
    /// <c>intermediate_size</c>, <c>hidden_act</c> <c>swish</c>) this class reads, validates and writes; false for Mamba2.</summary>
    private protected virtual bool HasFeedForward => true;

    /// <summary>Writes the layer's own fields (for <see cref="ToJson"/>).</summary>
    /// <param name="o">The object to add them to.</param>
    protected abstract void WriteLayerFields(JsonObject o);

    /// <summary>Validates the values a model needs (sizes at least 1, positive epsilons, the activation), naming the
    /// field; called by the models' constructors.</summary>
    /// <exception cref="ArgumentException">A value is out of range (the message names the field).</exception>
    /// <exception cref="NotSupportedException"><see cref="HiddenAct"/> is not <c>swish</c> (a model with a feed-forward).</exception>
    public virtual void Validate()
    {
        Positive(HiddenSize, "hidden_size");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(VocabSize, "vocab_size");
        if (HasFeedForward && HiddenRatio is double r) PositiveFinite(r, "hidden_ratio");
        if (HasFeedForward && IntermediateSize is long i) Positive(i, "intermediate_size");
        PositiveFinite(NormEps, "norm_eps");
        if (!(InitializerRange >= 0 && double.IsFinite(InitializerRange)))
            throw new ArgumentOutOfRangeException("config", InitializerRange, $"Expected initializer_range >= 0 and finite; got {InitializerRange}.");
        if (PadTokenId is long p && (p < 0 || p >= VocabSize))
            throw new ArgumentOutOfRangeException("config", p, $"Expected pad_token_id in [0, vocab_size = {VocabSize}) or null; got {p}.");
        if (HasFeedForward && HiddenAct != "swish")
            throw new NotSupportedException($"hidden_act '{HiddenAct}' is not supported; fla's GatedMLP is implemented with 'swish' only (fla's 'powlu' is not).");
    }

    /// <summary>A config of fla's defaults (for code; set fields with an object initializer).</summary>
    protected FlaConfig() { }

    /// <summary>Reads the common fields of <paramref name="r"/>'s config, falling back to <paramref name="defaults"/>.</summary>
    private protected FlaConfig(JsonReader r, FlaConfig defaults)
    {
        HiddenSize = r.Long("hidden_size", defaults.HiddenSize);
        NumHiddenLayers = r.Int("num_hidden_layers", defaults.NumHiddenLayers);
        if (defaults.HasFeedForward)
        {
            HiddenRatio = r.DoubleOrNull("hidden_ratio", defaults.HiddenRatio);
            IntermediateSize = r.LongOrNull("intermediate_size", defaults.IntermediateSize);
        }
        else
        {
            HiddenRatio = defaults.HiddenRatio;
            IntermediateSize = defaults.IntermediateSize;
        }
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
    /// and, for a model kind whose fla config has them (<paramref name="hybridFields"/>), refuses what no fla model here
    /// implements (hybrid attention layers, attention residuals). Without them (Mamba2's config has neither field, fla
    /// ignores them there) <c>attn</c> and <c>attnres_block_size</c> are kept in <see cref="Extra"/> like any unread field.</summary>
    internal static JsonReader Open(JsonElement config, string modelType, bool hybridFields = true)
    {
        if (config.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"Expected config.json to be a JSON object; got {config.ValueKind}.", nameof(config));
        var reader = new JsonReader(config, hybridFields);
        string? type = reader.String("model_type", null);
        if (type != modelType)
            throw new ArgumentException($"Expected model_type '{modelType}'; got {(type is null ? "none" : $"'{type}'")}.", nameof(config));
        if (!hybridFields) return reader;
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

    /// <summary>A float field as Python's <c>json</c> writes it: <c>1.0</c>, <c>0.02</c>, <c>1e-06</c>; an infinite value
    /// as the JSON number <c>1e999</c> (<c>-1e999</c>), which Python reads as <c>inf</c> (Python itself writes the
    /// non-standard <c>Infinity</c>).</summary>
    private protected static JsonNode Float(double d) =>
        double.IsInfinity(d) ? JsonNode.Parse(d > 0 ? "1e999" : "-1e999")!
        : JsonNode.Parse(d == Math.Floor(d) && Math.Abs(d) < 1e15
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
    internal sealed class JsonReader
    {
        private readonly JsonElement config;
        private readonly HashSet<string> _read = new(StringComparer.Ordinal) { "model_type" };

        /// <summary>A reader of <paramref name="config"/>; <paramref name="hybridFields"/>: <c>attn</c> and
        /// <c>attnres_block_size</c> count as read (they are checked by <see cref="Open"/>, not kept in <c>Extra</c>).</summary>
        public JsonReader(JsonElement config, bool hybridFields = true)
        {
            this.config = config;
            if (hybridFields) _read.UnionWith(new[] { "attn", "attnres_block_size" });
        }

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
            // System.Text.Json refuses numbers beyond double's range (1e999, Python's inf as ToJson writes it): IEEE parsing.
            if (v.ValueKind == JsonValueKind.Number
                && double.TryParse(v.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out double big)) return big;
            throw Wrong(name, "a number", v);
        }

        /// <summary>A pair of numbers, a JSON array of two (Python's tuple <c>(min, max)</c>), or the fallback when absent.</summary>
        public (double Min, double Max) Pair(string name, (double Min, double Max) fallback)
        {
            if (Get(name) is not JsonElement v) return fallback;
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 2)
            {
                var items = v.EnumerateArray().ToArray();
                if (items.All(i => i.ValueKind == JsonValueKind.Number))
                {
                    static double Parse(JsonElement e) => e.TryGetDouble(out double x) ? x : double.Parse(e.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture);
                    return (Parse(items[0]), Parse(items[1]));
                }
            }
            throw Wrong(name, "a pair of numbers [min, max]", v);
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
