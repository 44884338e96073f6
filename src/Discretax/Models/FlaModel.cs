using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// The decoder of a flash-linear-attention language model (fla's <c>DeltaNetModel</c>, <c>GatedDeltaNetModel</c>,
/// <c>Mamba2Model</c>, ...), the <c>model</c> (Mamba2: <c>backbone</c>) of a <see cref="FlaForCausalLM"/>, with fla's
/// names: <c>embeddings</c> (the token embedding <c>[V, H]</c>), <c>layers</c> (the blocks: <see cref="Blocks.FlaBlock"/>s,
/// <see cref="Blocks.Mamba2Block"/>s) and <c>norm</c> (the final RMSNorm; registered as <c>norm_f</c> in Mamba2's tree,
/// see the constructor's <c>normName</c>).
/// <para>As a <see cref="SequenceModule"/> it maps hidden states: <c>forward(h) = norm(layers(h))</c>,
/// <c>[B, L, H] -> [B, L, H]</c>, streaming a <see cref="SequenceModelState"/> (one state per layer). It holds the
/// embedding, as fla's decoder does (so the keys read <c>model.embeddings.weight</c>), but does not apply it: the causal
/// LM looks the tokens up and passes the embedded sequence.</para>
/// </summary>
public sealed class FlaModel : SequenceModule
{
    /// <summary>The token embedding <c>[V, H]</c> (applied by the causal LM, not by <see cref="SequenceModule.forward(Tensor)"/>).</summary>
    public Embedding embeddings;

    /// <summary>The blocks, applied in order.</summary>
    public ModuleList<SequenceModule> layers;

    /// <summary>The final RMSNorm over H (its <c>state_dict</c> name is the constructor's <c>normName</c>).</summary>
    public RMSNorm norm;

    /// <summary>Creates the decoder.</summary>
    /// <param name="vocabSize">The number of token ids V.</param>
    /// <param name="hiddenSize">The feature size H of the embedding and every layer.</param>
    /// <param name="layers">The blocks (at least one), each <c>H -> H</c>.</param>
    /// <param name="normEps">The final norm's epsilon (fla's <c>norm_eps</c>).</param>
    /// <param name="paddingIdx">fla's <c>pad_token_id</c>: the embedding row that gets no gradient, or null.</param>
    /// <param name="normName">The <c>state_dict</c> name of the final norm: <c>norm</c> (fla's DeltaNet, Gated DeltaNet) or
    /// <c>norm_f</c> (fla's Mamba2); a name without dots.</param>
    public FlaModel(long vocabSize, long hiddenSize, IEnumerable<SequenceModule> layers, double normEps = 1e-6, long? paddingIdx = null,
        string normName = "norm")
        : base(nameof(FlaModel), Check.Dim(hiddenSize))
    {
        if (string.IsNullOrEmpty(normName) || normName.Contains('.') || normName is "embeddings" or "layers")
            throw new ArgumentException($"Expected a module name without dots other than 'embeddings' and 'layers'; got '{normName}'.", nameof(normName));
        Check.AtLeast(vocabSize, 1);
        ArgumentNullException.ThrowIfNull(layers);
        Check.PositiveFinite(normEps);
        if (paddingIdx is long p && (p < 0 || p >= vocabSize))
            throw new ArgumentOutOfRangeException(nameof(paddingIdx), p, $"Expected a padding id in [0, {vocabSize}) or null; got {p}.");
        var list = layers.ToList();
        if (list.Count == 0) throw new ArgumentException("A model needs at least one layer.", nameof(layers));
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is null) throw new ArgumentException($"Layer {i} is null.", nameof(layers));
            if (list[i].InFeatures != hiddenSize)
                throw new ArgumentException($"Layer {i} takes {list[i].InFeatures} features; the model has {hiddenSize}.", nameof(layers));
        }
        VocabSize = vocabSize;
        embeddings = nn.Embedding(vocabSize, hiddenSize, padding_idx: paddingIdx);
        this.layers = new ModuleList<SequenceModule>(list.ToArray());
        norm = new RMSNorm(hiddenSize, normEps);
        _normName = normName;
        RegisterComponents();
    }

    private readonly string _normName = "norm";

    private bool _registered;

    /// <inheritdoc />
    /// <remarks>Registers <c>embeddings</c>, <c>layers</c> and the final norm under its <c>normName</c>, in that order
    /// (fla's); once.</remarks>
    protected override void RegisterComponents()
    {
        if (_registered) return;
        _registered = true;
        register_module("embeddings", embeddings);
        register_module("layers", layers);
        register_module(_normName, norm);
    }

    /// <summary>The number of token ids V.</summary>
    public long VocabSize { get; }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="SequenceModelState"/>, one state per layer.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var previous = (SequenceModelState?)state;
        var h = x;
        var next = returnState ? new StreamingState[layers.Count] : null;
        for (int i = 0; i < layers.Count; i++)
        {
            var (y, s) = RunChild(layers[i], h, previous?.Blocks[i], returnState, lengths);
            h = y;
            if (next is not null) next[i] = s!;
        }
        return (norm.forward(h), next is null ? null : new SequenceModelState(next));
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        var previous = (SequenceModelState?)state;
        var h = x;
        var next = returnState ? new StreamingState[layers.Count] : null;
        for (int i = 0; i < layers.Count; i++)
        {
            var (y, s) = RunChildPacked(layers[i], h, cuSeqlens, previous?.Blocks[i], returnState);
            h = y;
            if (next is not null) next[i] = s!;
        }
        return (norm.forward(h), next is null ? null : new SequenceModelState(next));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state)
    {
        var s = StreamingState.Expect<SequenceModelState>(state, nameof(FlaModel));
        s.Validate(layers.Count, nameof(FlaModel));
        for (int i = 0; i < layers.Count; i++) CheckChildState(layers[i], s.Blocks[i]);
    }
}
