using Discretax.Blocks;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// A causal language model over any sequence model of the library: token ids <c>[B, L]</c> to next-token logits
/// <c>[B, L, V]</c>,
/// <code>
/// h      = embeddings(tokens)          // nn.Embedding V x H, init N(0, 0.02^2)
/// h      = model(h)                    // any SequenceModule H -> H (LRU, DeltaNet, MLSTM, a block, ...)
/// h      = norm(h)                     // a NormKind (RMS by default) or none
/// logits = h W^T                       // lm_head: Linear H -> V without bias, W [V, H]; or W = embeddings.weight (tied)
/// logits = s tanh(logits / s)          // only with a logit soft cap s (xLSTM-7B: 30; Gemma-2)
/// </code>
/// logits[b, t] scores the token at <c>t + 1</c> given <c>tokens[b, :t+1]</c> (the model is causal). Right-padded
/// batches take <c>lengths</c> (docs/variable-length.md), and <see cref="Generate"/> samples continuations by
/// streaming: the prompt once, then O(1) work per new token.
/// <para><c>state_dict</c>: <c>embeddings.weight</c> <c>[V, H]</c>, <c>model.*</c> (the model's own keys),
/// <c>norm.*</c> (absent without a norm or for a norm without parameters) and, untied, <c>lm_head.weight</c>
/// <c>[V, H]</c>. Tied, there is no <c>lm_head</c> module and no <c>lm_head.weight</c> key: the head multiplies by
/// <c>embeddings.weight</c> itself (one parameter, one storage, updated once per optimizer step), so a tied
/// checkpoint loads into a tied model only.</para>
/// <para>The logits are in the embedding's dtype (convert the whole model: <c>lm.to(ScalarType.Float64)</c>); the
/// model applies the library's dtype rule inside.</para>
/// <para>Subclasses: <see cref="FlaForCausalLM"/> (fla's <see cref="DeltaNetForCausalLM"/>,
/// <see cref="GatedDeltaNetForCausalLM"/> and <see cref="Mamba2ForCausalLM"/>) keep the embedding inside the model, as
/// fla's keys have it (<c>model.embeddings.weight</c>; Mamba2's <c>backbone.embeddings.weight</c>), and their final
/// norm too (<c>model.norm</c>, <c>backbone.norm_f</c>); this class's behaviour is the same.</para>
/// <para><b>Use a model with per-position norms.</b> Batch norm (the default of the discretax-style presets
/// <c>DeltaNet</c>, <c>LRU</c>, <c>S4D</c>, <c>S5</c>, <c>LinOSS</c>) normalizes a training batch with statistics over
/// all its steps, so in training mode a step's output depends on later tokens: a language model trained that way
/// learns from the future and generates poorly in eval mode. Build such a model with
/// <c>SequenceModel.Standard(..., norm: NormKind.Layer)</c> (or <c>NormKind.Rms</c>); <c>MLSTM</c> and
/// <c>TransformerDeltaNet</c> use per-position norms already.</para>
/// </summary>
public class CausalLM : nn.Module<Tensor, Tensor>
{
    /// <summary>The token embedding <c>[V, H]</c>.</summary>
    public readonly Embedding embeddings;

    /// <summary>The sequence model <c>[B, L, H] -> [B, L, H]</c>.</summary>
    public readonly SequenceModule model;

    /// <summary>The final norm, or null.</summary>
    public readonly nn.Module<Tensor, Tensor>? norm;

    /// <summary>The output projection <c>H -> V</c> without bias, or null when tied to <see cref="embeddings"/>.</summary>
    public readonly Linear? lm_head;

    private readonly NormKind? _normKind;

    /// <summary>Whether <see cref="embeddings"/> is registered inside <see cref="model"/> (not under this module).</summary>
    private readonly bool _embeddingsInModel;

    /// <summary>The name <see cref="model"/> is registered under (<c>model</c>; fla's Mamba2: <c>backbone</c>).</summary>
    private readonly string _modelName = "model";

    private bool _registered;

    /// <summary>Creates the language model.</summary>
    /// <param name="vocabSize">The number of token ids V (ids in <c>[0, V)</c>; <c>ByteTokenizer.VocabSize</c> for bytes).</param>
    /// <param name="model">The sequence model; its <see cref="SequenceModule.InFeatures"/> is the hidden size H.</param>
    /// <param name="norm">The norm before the head (<see cref="NormKind.Rms"/> by default), or null for none.</param>
    /// <param name="tieWeights">Whether the head multiplies by the embedding's weight instead of its own.</param>
    /// <param name="logitSoftCap">If set (positive, finite), the logits become <c>cap * tanh(logits / cap)</c>, for
    /// <see cref="forward(Tensor)"/>, the losses and the sampling alike; null (default) leaves them as they are.</param>
    public CausalLM(long vocabSize, SequenceModule model, NormKind? norm = NormKind.Rms, bool tieWeights = false,
        double? logitSoftCap = null)
        : base(nameof(CausalLM))
    {
        Check.AtLeast(vocabSize, 1);
        ArgumentNullException.ThrowIfNull(model);
        if (norm is NormKind kind) Check.Defined(kind, nameof(norm));
        if (logitSoftCap is double cap) Check.PositiveFinite(cap, nameof(logitSoftCap));
        LogitSoftCap = logitSoftCap;
        VocabSize = vocabSize;
        HiddenSize = model.InFeatures;
        TiedWeights = tieWeights;
        _normKind = norm;
        embeddings = nn.Embedding(vocabSize, HiddenSize);
        this.model = model;
        this.norm = norm is NormKind k ? Norms.Create(k, HiddenSize) : null;
        lm_head = tieWeights ? null : nn.Linear(HiddenSize, vocabSize, hasBias: false);
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            nn.init.normal_(embeddings.weight!, 0.0, 0.02);
            if (lm_head is not null) nn.init.normal_(lm_head.weight!, 0.0, 0.02);
        }
        RegisterComponents();
    }

    /// <summary>
    /// Creates a language model whose embedding belongs to <paramref name="model"/> (registered there, so the keys are
    /// the model's, e.g. <c>model.embeddings.weight</c>) and whose final norm, if any, is part of the model: this module
    /// registers only <paramref name="model"/> (under <paramref name="modelName"/>) and, untied, <c>lm_head</c>. The
    /// computation is the public constructor's with no norm here.
    /// </summary>
    /// <param name="name">The module name.</param>
    /// <param name="model">The sequence model, holding <paramref name="embeddings"/> among its registered modules.</param>
    /// <param name="embeddings">The token embedding <c>[V, H]</c> (H the model's feature size).</param>
    /// <param name="tieWeights">Whether the head multiplies by the embedding's weight instead of its own.</param>
    /// <param name="modelName">The <c>state_dict</c> name of <paramref name="model"/> (fla: <c>model</c>; fla's Mamba2:
    /// <c>backbone</c>); the field stays <see cref="model"/>.</param>
    private protected CausalLM(string name, SequenceModule model, Embedding embeddings, bool tieWeights, string modelName = "model") : base(name)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelName);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(embeddings);
        using (var w = embeddings.weight!)
        {
            if (w.shape[1] != model.InFeatures)
                throw new ArgumentException($"The embedding has {w.shape[1]} features; the model takes {model.InFeatures}.", nameof(embeddings));
            VocabSize = w.shape[0];
        }
        HiddenSize = model.InFeatures;
        TiedWeights = tieWeights;
        _normKind = null;
        _embeddingsInModel = true;
        _modelName = modelName;
        this.embeddings = embeddings;
        this.model = model;
        norm = null;
        lm_head = tieWeights ? null : nn.Linear(HiddenSize, VocabSize, hasBias: false);
        if (lm_head is not null)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            nn.init.normal_(lm_head.weight!, 0.0, 0.02);
        }
        RegisterComponents();
    }

    /// <inheritdoc />
    /// <remarks>With the embedding inside the model, only <c>model</c> (or the name the subclass gives it) and
    /// <c>lm_head</c> are registered here.</remarks>
    protected override void RegisterComponents()
    {
        if (!_embeddingsInModel)
        {
            base.RegisterComponents();
            return;
        }
        if (_registered) return;
        _registered = true;
        register_module(_modelName, model);
        if (lm_head is not null) register_module("lm_head", lm_head);
    }

    /// <summary>The number of token ids V.</summary>
    public long VocabSize { get; }

    /// <summary>The hidden size H (the model's feature size).</summary>
    public long HiddenSize { get; }

    /// <summary>Whether the head uses the embedding's weight.</summary>
    public bool TiedWeights { get; }

    /// <summary>The norm before the head, or null.</summary>
    public NormKind? FinalNorm => _normKind;

    /// <summary>The logit soft cap, or null for none.</summary>
    public double? LogitSoftCap { get; }

    /// <summary>The head's weight <c>[V, H]</c>: <c>lm_head.weight</c>, or <c>embeddings.weight</c> when tied (a new
    /// handle on the parameter, as TorchSharp's <c>weight</c> properties give).</summary>
    public Parameter OutputWeight => (lm_head is null ? embeddings.weight : lm_head.weight)!;

    /// <summary>The logits of every step.</summary>
    /// <param name="tokens">Integer ids <c>[B, L]</c> (or unbatched <c>[L]</c>) in <c>[0, V)</c>, on the model's device.</param>
    /// <returns><c>[B, L, V]</c> (or <c>[L, V]</c>) in the embedding's dtype.</returns>
    public override Tensor forward(Tensor tokens) => forward(tokens, null);

    /// <summary>
    /// The logits of a right-padded batch: sequence b is <c>tokens[b, :lengths[b]]</c>; its logits equal those of the
    /// sequence alone, and the logits at padded steps are zero. Padded steps may hold any id (a pad id of -1 or
    /// <c>ByteTokenizer.EndOfText</c>): they are replaced by 0 before the lookup and never reach a valid step.
    /// </summary>
    /// <param name="tokens">Integer ids <c>[B, L]</c> (or <c>[L]</c>), valid steps in <c>[0, V)</c>.</param>
    /// <param name="lengths">The lengths, integer <c>[B]</c> (<c>[1]</c> unbatched), <c>1 &lt;= lengths[b] &lt;= L</c>, or null.</param>
    public Tensor forward(Tensor tokens, Tensor? lengths)
    {
        using var scope = NewDisposeScope();
        var (ids, valid, unbatched) = PrepareTokens(tokens, lengths, nameof(tokens));
        var logits = Logits(ids, valid);
        if (unbatched) logits = logits.squeeze(0);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The next-token cross-entropy of a (right-padded) batch, averaged over every predicted position of every
    /// sequence:
    /// <code>
    /// loss = - sum_b sum_{t = 0}^{len_b - 2} log softmax(logits[b, t])[tokens[b, t + 1]]  /  sum_b (len_b - 1)
    /// </code>
    /// (<c>len_b = L</c> without lengths), so padded steps neither predict nor are predicted. The log-softmax runs in
    /// float32 at least (float64 for a float64 model). Runs the model in its current mode (training: with dropout).
    /// </summary>
    /// <param name="tokens">Integer ids <c>[B, L]</c> (or <c>[L]</c>), valid steps in <c>[0, V)</c>.</param>
    /// <param name="lengths">The lengths, or null.</param>
    /// <returns>A scalar, differentiable, in float32 (float64 for a float64 model).</returns>
    /// <exception cref="ArgumentException">No sequence has two tokens (nothing to predict).</exception>
    public Tensor Loss(Tensor tokens, Tensor? lengths = null)
    {
        using var scope = NewDisposeScope();
        var (ids, valid, _) = PrepareTokens(tokens, lengths, nameof(tokens));
        long length = ids.shape[1];
        if (length < 2)
            throw new ArgumentException($"Expected sequences of at least 2 tokens to predict a next token; got shape {Check.Shape(tokens)}.", nameof(tokens));
        var logits = Logits(ids, valid);
        var wide = Precision.StateDType(logits.dtype);
        var logProbs = logits.narrow(1, 0, length - 1).to_type(wide).log_softmax(-1);            // [B, L-1, V]
        var targets = ids.narrow(1, 1, length - 1).unsqueeze(-1);                                   // [B, L-1, 1]
        var picked = logProbs.gather(-1, targets).squeeze(-1);                      // [B, L-1]
        if (valid is null) return picked.mean().neg().MoveToOuterDisposeScope();
        var predicted = valid.narrow(1, 1, length - 1);                                             // t + 1 < len_b
        long count = predicted.sum().item<long>();
        if (count == 0)
            throw new ArgumentException("Expected at least one sequence of at least 2 tokens; every length is 1.", nameof(lengths));
        var total = where(predicted, picked, zeros(1, dtype: picked.dtype, device: picked.device)).sum();
        return total.div(count).neg().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The next-token cross-entropy of packed documents: <paramref name="tokens"/> <c>[T]</c> (or <c>[1, T]</c>) holds N
    /// documents back to back, document n at steps <c>cuSeqlens[n] .. cuSeqlens[n + 1] - 1</c>; the model runs them
    /// packed (its state starts afresh at every boundary, <see cref="SequenceModule.ForwardPacked"/>), and a step predicts
    /// the next token of its own document only:
    /// <code>
    /// loss = - sum_n sum_{t = start_n}^{end_n - 2} log softmax(logits[t])[tokens[t + 1]]  /  sum_n (len_n - 1)
    /// </code>
    /// Equal to <see cref="Loss"/> of the N documents as a right-padded batch, without computing any padding.
    /// </summary>
    /// <param name="tokens">Integer ids <c>[T]</c> or <c>[1, T]</c> in <c>[0, V)</c>.</param>
    /// <param name="cuSeqlens">The boundaries, int64 <c>[N + 1]</c>: 0, strictly increasing, ending at T.</param>
    /// <returns>The scalar loss (float32, float64 for a float64 model) and the number of predicted tokens.</returns>
    public (Tensor Loss, long Predicted) LossPacked(Tensor tokens, Tensor cuSeqlens)
    {
        using var scope = NewDisposeScope();
        var (ids, _, _) = PrepareTokens(tokens, null, nameof(tokens));
        if (ids.shape[0] != 1)
            throw new ArgumentException($"Expected packed tokens in one row, [T] or [1, T]; got shape {Check.Shape(tokens)}.", nameof(tokens));
        long length = ids.shape[1];
        var logits = Head(model.ForwardPacked(embeddings.forward(ids), cuSeqlens), null);         // [1, T, V]; validates cuSeqlens
        var starts = zeros(length + 1, dtype: ScalarType.Bool, device: ids.device);
        starts.index_fill_(0, cuSeqlens, true);                                                  // boundaries (and T)
        var predicted = starts.narrow(0, 1, length - 1).logical_not();                           // t + 1 inside t's document
        long count = length < 2 ? 0 : predicted.sum().item<long>();
        if (count == 0)
            throw new ArgumentException("Expected at least one document of at least 2 tokens to predict a next token.", nameof(cuSeqlens));
        var wide = Precision.StateDType(logits.dtype);
        var logProbs = logits[0].narrow(0, 0, length - 1).to_type(wide).log_softmax(-1);         // [T-1, V]
        var picked = logProbs.gather(-1, ids[0].narrow(0, 1, length - 1).unsqueeze(-1)).squeeze(-1);
        var total = where(predicted, picked, zeros(1, dtype: picked.dtype, device: picked.device)).sum();
        return (total.div(count).neg().MoveToOuterDisposeScope(), count);
    }

    /// <summary>
    /// Samples a continuation of each prompt; returns the new tokens per prompt (not the prompt).
    /// <para>The prompts go through the model as one right-padded batch, <c>model.Stream(x, null, lengths)</c>, which
    /// returns each sequence's state after its last valid token; the first new token of prompt b is drawn from its
    /// logits at <c>lengths[b] - 1</c>. Every further token streams one step <c>[B, 1]</c> with the carried state, so
    /// the prompt is never run again and each new token costs O(1) in the generated length.</para>
    /// <para>Each step turns the logits z (in float32 at least) into a token as HuggingFace's sampling does, in this
    /// order: <paramref name="temperature"/> &lt;= 0 is greedy, <c>argmax z</c> (top-k and top-p do not apply);
    /// else <c>z = z / temperature</c>; then top-k keeps the k largest (ties with the k-th kept); then top-p keeps the
    /// smallest set of most likely tokens whose probability (after top-k) sums to at least p, and always the most
    /// likely one; the others get <c>-inf</c>, and the token is drawn from <c>softmax(z)</c> with a
    /// <c>torch.Generator</c> seeded with <paramref name="seed"/> (never the global generator): the same seed, prompts
    /// and weights give the same tokens.</para>
    /// <para>A sequence that produces <paramref name="stopToken"/> stops: the stop token is the last one returned for
    /// it. Runs in eval mode without gradients and restores the training flag afterwards.</para>
    /// </summary>
    /// <param name="prompts">The prompts (at least one, each at least one id in <c>[0, V)</c>).</param>
    /// <param name="maxNewTokens">The most new tokens per prompt (0: empty continuations).</param>
    /// <param name="temperature">The softmax temperature; <c>&lt;= 0</c> for greedy decoding; not NaN or infinite.</param>
    /// <param name="topK">Keep only the k most likely tokens (at least 1), or null.</param>
    /// <param name="topP">Keep the nucleus of probability p, in <c>(0, 1]</c>, or null.</param>
    /// <param name="seed">The sampling generator's seed.</param>
    /// <param name="stopToken">A token id in <c>[0, V)</c> that ends a sequence (e.g. <c>ByteTokenizer.EndOfText</c>), or null.</param>
    public long[][] Generate(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature = 1.0, int? topK = null,
        double? topP = null, long seed = 0, long? stopToken = null)
    {
        ValidateGeneration(prompts, maxNewTokens, temperature, topK, topP, stopToken);
        int batch = prompts.Count;
        var results = Enumerable.Range(0, batch).Select(_ => new List<long>()).ToArray();
        if (maxNewTokens == 0) return results.Select(r => r.ToArray()).ToArray();

        Device device;
        using (var weight = embeddings.weight!) device = weight.device;
        bool wasTraining = training;
        eval();
        StreamingState? state = null;
        try
        {
            using var noGrad = no_grad();
            using var generator = new Generator(unchecked((ulong)seed), device);
            var done = new bool[batch];
            long[] next;
            using (var scope = NewDisposeScope())
            {
                int length = prompts.Max(p => p.Length);
                var flat = new long[batch * length];
                for (int b = 0; b < batch; b++) Array.Copy(prompts[b], 0, flat, b * length, prompts[b].Length);
                var ids = tensor(flat, new long[] { batch, length }, ScalarType.Int64, device);
                var lengths = tensor(prompts.Select(p => (long)p.Length).ToArray(), new long[] { batch }, ScalarType.Int64, device);
                var (hidden, s) = model.Stream(embeddings.forward(ids), null, lengths);
                state = s;
                state.MoveToOuterDisposeScope();
                var last = SequenceLengths.AtLast(hidden, lengths);                         // [B, H]
                next = TokenSampling.Next(Head(last, null), temperature, topK, topP, generator);
            }
            for (int step = 0; ; step++)
            {
                for (int b = 0; b < batch; b++)
                {
                    if (done[b]) continue;
                    results[b].Add(next[b]);
                    if (next[b] == stopToken) done[b] = true;
                }
                if (step == maxNewTokens - 1 || done.All(d => d)) break;
                using var scope = NewDisposeScope();
                var ids = tensor(next, new long[] { batch, 1 }, ScalarType.Int64, device);
                var (hidden, s) = model.Stream(embeddings.forward(ids), state, null);
                s.MoveToOuterDisposeScope();
                state.Dispose();
                state = s;
                next = TokenSampling.Next(Head(hidden.squeeze(1), null), temperature, topK, topP, generator);
            }
        }
        finally
        {
            state?.Dispose();
            train(wasTraining);
        }
        return results.Select(r => r.ToArray()).ToArray();
    }

    private Tensor Logits(Tensor ids, Tensor? valid)
    {
        var h = embeddings.forward(ids);
        h = valid is null ? model.forward(h) : model.forward(h, valid.sum(1));
        var logits = Head(h, valid);
        return valid is null ? logits : where(valid.unsqueeze(-1), logits, zeros(1, dtype: logits.dtype, device: logits.device));
    }

    private Tensor Head(Tensor h, Tensor? valid)
    {
        if (norm is not null && _normKind is NormKind kind) h = kind.Apply(norm, h, valid);
        var logits = lm_head is not null ? lm_head.forward(h) : nn.functional.linear(h, embeddings.weight!);
        return LogitSoftCap is double cap ? cap * (logits / cap).tanh() : logits;
    }

    /// <summary>Validates tokens (and lengths) and returns the batched ids with padded steps set to 0, the valid mask
    /// (null without padding) and whether the input was unbatched.</summary>
    private (Tensor Ids, Tensor? Valid, bool Unbatched) PrepareTokens(Tensor tokens, Tensor? lengths, string paramName)
    {
        ArgumentNullException.ThrowIfNull(tokens, paramName);
        if (tokens.dim() != 1 && tokens.dim() != 2)
            throw new ArgumentException($"Expected token ids [B, L] or [L]; got shape {Check.Shape(tokens)}.", paramName);
        if (tokens.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
            throw new ArgumentException($"Expected integer token ids; got {tokens.dtype}.", paramName);
        bool unbatched = tokens.dim() == 1;
        var ids = (unbatched ? tokens.unsqueeze(0) : tokens).to_type(ScalarType.Int64);
        if (ids.shape[1] < 1)
            throw new ArgumentException($"Expected a sequence of at least 1 token; got shape {Check.Shape(tokens)}.", paramName);
        if (ids.shape[0] < 1)
            throw new ArgumentException($"Expected a batch of at least 1 sequence; got shape {Check.Shape(tokens)}.", paramName);
        Check.SameDevice(embeddings.weight!, ids, "the embedding", paramName);
        Tensor? valid = null;
        if (lengths is not null)
        {
            var (l, shortest) = SequenceLengths.ValidateWithMin(lengths, ids.shape[0], ids.shape[1], ids.device, nameof(lengths));
            if (shortest != ids.shape[1])
            {
                valid = SequenceLengths.Mask(l, ids.shape[1]);
                ids = where(valid, ids, zeros(1, dtype: ScalarType.Int64, device: ids.device));
            }
        }
        long min = ids.min().item<long>(), max = ids.max().item<long>();
        if (min < 0 || max >= VocabSize)
            throw new ArgumentOutOfRangeException(paramName, $"Expected token ids in [0, {VocabSize}); got values from {min} to {max}.");
        return (ids, valid, unbatched);
    }

    private void ValidateGeneration(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature, int? topK,
        double? topP, long? stopToken)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) throw new ArgumentException("Expected at least one prompt.", nameof(prompts));
        for (int b = 0; b < prompts.Count; b++)
        {
            var p = prompts[b] ?? throw new ArgumentException($"Prompt {b} is null.", nameof(prompts));
            if (p.Length == 0) throw new ArgumentException($"Prompt {b} is empty; a prompt needs at least one token.", nameof(prompts));
            foreach (var id in p)
                if (id < 0 || id >= VocabSize)
                    throw new ArgumentOutOfRangeException(nameof(prompts), id, $"Prompt {b} holds id {id}; expected ids in [0, {VocabSize}).");
        }
        Check.AtLeast(maxNewTokens, 0);
        if (!double.IsFinite(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, $"Expected a finite temperature (<= 0 for greedy); got {temperature}.");
        if (topK is int k) Check.AtLeast(k, 1, nameof(topK));
        if (topP is double p1 && !(p1 > 0 && p1 <= 1))
            throw new ArgumentOutOfRangeException(nameof(topP), p1, $"Expected top-p in (0, 1]; got {p1}.");
        if (stopToken is long s && (s < 0 || s >= VocabSize))
            throw new ArgumentOutOfRangeException(nameof(stopToken), s, $"Expected a stop token in [0, {VocabSize}); got {s}.");
    }
}
