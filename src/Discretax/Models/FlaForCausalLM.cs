using System.Text.Json;
using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Streaming;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// A flash-linear-attention causal language model (fla's <c>*ForCausalLM</c>, <c>fla/models/*/modeling_*.py</c>): a
/// <see cref="CausalLM"/> (logits, <see cref="CausalLM.Loss"/>, <see cref="CausalLM.Generate"/> by streaming) laid out
/// and named as fla lays it out, built from the model's fla config.
/// <code>
/// h      = model.embeddings(tokens)                        nn.Embedding V x H (padding_idx = pad_token_id)
/// h      = h + attn(attn_norm(h));  h = h + mlp(mlp_norm(h))   per layer: model.layers.i (a FlaBlock), RMSNorm eps norm_eps,
///                                                              mlp fla's GatedMLP (swish)
/// h      = model.norm(h)                                   RMSNorm eps norm_eps
/// logits = lm_head(h)                                      Linear H -> V, no bias; tied: model.embeddings.weight
/// </code>
/// <para>Keys, exactly as fla's <c>state_dict()</c>: <c>model.embeddings.weight</c>,
/// <c>model.layers.{i}.attn_norm.weight</c>, <c>model.layers.{i}.attn.*</c> (the layer's names),
/// <c>model.layers.{i}.mlp_norm.weight</c>, <c>model.layers.{i}.mlp.{gate,up,down}_proj.weight</c>,
/// <c>model.norm.weight</c>, <c>lm_head.weight</c> (absent when tied, as in the files fla's <c>save_pretrained</c>
/// writes). <c>Interop.FlaCheckpoint</c> loads a fla directory into the right subclass and saves one back.</para>
/// <para>Initialization as fla's <c>_init_weights</c>: every <c>nn.Linear</c> and every short convolution (fla's
/// <c>ShortConvolution</c> is an <c>nn.Conv1d</c>) normal(0, <c>initializer_range</c>) with zero biases, the embedding
/// normal(0, <c>initializer_range</c>) (the padding row included, as fla's init overwrites it), norm gains 1, and the
/// layers' own parameters (Gated DeltaNet's <c>A_log</c>, <c>dt_bias</c>) as the layers initialize them.</para>
/// <para>A subclass is one layer kind: it supplies its config type and its mixer (see <see cref="DeltaNetForCausalLM"/>),
/// or, for a model of another tree, its decoder and the decoder's name (<see cref="Mamba2ForCausalLM"/>: a
/// <c>backbone</c> of <see cref="Mamba2Block"/>s and a final <c>norm_f</c>, no feed-forward);
/// <see cref="ParseConfig"/> and <see cref="FromConfig(FlaConfig)"/> pick the subclass by the config's <c>model_type</c> from
/// <see cref="SupportedModelTypes"/>.</para>
/// </summary>
public abstract class FlaForCausalLM : CausalLM
{
    private static readonly Dictionary<string, (Func<JsonElement, FlaConfig> Parse, Func<FlaConfig, FlaForCausalLM> Create)> Registry =
        new(StringComparer.Ordinal)
        {
            [DeltaNetConfig.Type] = (DeltaNetConfig.FromJson, c => new DeltaNetForCausalLM((DeltaNetConfig)c)),
            [GatedDeltaNetConfig.Type] = (GatedDeltaNetConfig.FromJson, c => new GatedDeltaNetForCausalLM((GatedDeltaNetConfig)c)),
            [Mamba2Config.Type] = (Mamba2Config.FromJson, c => new Mamba2ForCausalLM((Mamba2Config)c)),
        };

    /// <summary>Creates the model from its config and its layer kind.</summary>
    /// <param name="name">The module name.</param>
    /// <param name="config">The config (validated here).</param>
    /// <param name="mixer">Makes layer i's sequence mixer (fla's <c>attn</c>) for the config.</param>
    private protected FlaForCausalLM(string name, FlaConfig config, Func<int, SequenceModule> mixer)
        : this(name, config, BuildDecoder(config, mixer), "model")
    {
    }

    /// <summary>Creates the model from its config and a decoder the subclass built (after validating the config).</summary>
    /// <param name="name">The module name.</param>
    /// <param name="config">The config.</param>
    /// <param name="decoder">The decoder: embeddings, layers, final norm.</param>
    /// <param name="decoderName">The decoder's <c>state_dict</c> name (fla's <c>model</c>; Mamba2's <c>backbone</c>).</param>
    private protected FlaForCausalLM(string name, FlaConfig config, FlaModel decoder, string decoderName)
        : base(name, decoder, decoder.embeddings, config.TieWordEmbeddings, decoderName)
    {
        Config = config;
        DecoderName = decoderName;
        InitializeWeights(this, config.InitializerRange);
    }

    /// <summary>The config the model was built from (a <see cref="DeltaNetConfig"/>, a <see cref="GatedDeltaNetConfig"/>, ...:
    /// cast it for the layer's fields; subclasses do not hide this property with a typed one, because TorchSharp's
    /// <c>Module.to</c> maps the public properties by name and fails on a hidden one).</summary>
    public FlaConfig Config { get; }

    /// <summary>The decoder (<see cref="CausalLM.model"/> as its type): embeddings, layers and final norm.</summary>
    public FlaModel Decoder => (FlaModel)model;

    /// <summary>The decoder's <c>state_dict</c> name, the prefix of every key but <c>lm_head.weight</c>: <c>model</c>
    /// (DeltaNet, Gated DeltaNet), <c>backbone</c> (Mamba2), as fla names it.</summary>
    public string DecoderName { get; }

    /// <summary>The <c>model_type</c> values <see cref="ParseConfig"/> and <see cref="FromConfig(FlaConfig)"/> know.</summary>
    public static IReadOnlyCollection<string> SupportedModelTypes => Registry.Keys;

    /// <summary>Reads a fla config.json object into the config class of its <c>model_type</c>.</summary>
    /// <param name="config">The parsed config.json.</param>
    /// <exception cref="ArgumentException">A field has the wrong type or value (the message names it), or there is no
    /// <c>model_type</c>.</exception>
    /// <exception cref="NotSupportedException">The <c>model_type</c> is not one of <see cref="SupportedModelTypes"/>, or the
    /// config asks for something not implemented here (hybrid attention layers, ...).</exception>
    public static FlaConfig ParseConfig(JsonElement config)
    {
        if (config.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"Expected config.json to be a JSON object; got {config.ValueKind}.", nameof(config));
        if (!config.TryGetProperty("model_type", out var t) || t.ValueKind != JsonValueKind.String)
            throw new ArgumentException("Expected config.json to name its model_type (a string).", nameof(config));
        string type = t.GetString()!;
        if (!Registry.TryGetValue(type, out var entry))
            throw new NotSupportedException($"fla's model_type '{type}' is not supported; supported: {string.Join(", ", Registry.Keys)}.");
        return entry.Parse(config);
    }

    /// <summary>Builds the model of a fla config.json object (freshly initialized): <see cref="ParseConfig"/>, then the
    /// subclass of its <c>model_type</c>.</summary>
    /// <param name="config">The parsed config.json.</param>
    /// <exception cref="ArgumentException">As <see cref="ParseConfig"/>, or a value the layer refuses.</exception>
    /// <exception cref="NotSupportedException">As <see cref="ParseConfig"/>.</exception>
    public static FlaForCausalLM FromConfig(JsonElement config) => FromConfig(ParseConfig(config));

    /// <summary>Builds the model of a config (freshly initialized), the subclass of its <see cref="FlaConfig.ModelType"/>.</summary>
    /// <param name="config">The config.</param>
    /// <exception cref="ArgumentException">A value the model or its layer refuses.</exception>
    /// <exception cref="NotSupportedException">Its model type is not one of <see cref="SupportedModelTypes"/>.</exception>
    public static FlaForCausalLM FromConfig(FlaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!Registry.TryGetValue(config.ModelType, out var entry))
            throw new NotSupportedException($"fla's model_type '{config.ModelType}' is not supported; supported: {string.Join(", ", Registry.Keys)}.");
        return entry.Create(config);
    }

    private static FlaModel BuildDecoder(FlaConfig config, Func<int, SequenceModule> mixer)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var layers = new List<SequenceModule>(config.NumHiddenLayers);
        for (int i = 0; i < config.NumHiddenLayers; i++)
            layers.Add(new FlaBlock(config.HiddenSize, mixer(i), new GatedMLP(config.HiddenSize, config.HiddenRatio, config.IntermediateSize), config.NormEps));
        return new FlaModel(config.VocabSize, config.HiddenSize, layers, config.NormEps, config.PadTokenId);
    }

    /// <summary>fla's <c>_init_weights</c> with <c>prenorm_residual_strategy=None</c> (the default): linear layers and
    /// convolutions normal(0, std) with zero biases, embeddings normal(0, std); the rest keeps its own initialization.</summary>
    internal static void InitializeWeights(nn.Module module, double std)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (_, m) in module.named_modules())
        {
            switch (m)
            {
                case Linear linear:
                    nn.init.normal_(linear.weight!, 0.0, std);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
                case ShortConvolution conv:
                    nn.init.normal_(conv.weight, 0.0, std);
                    if (conv.bias is not null) nn.init.zeros_(conv.bias);
                    break;
                case Embedding embedding:
                    nn.init.normal_(embedding.weight!, 0.0, std);
                    break;
            }
        }
    }
}
