using Discretax.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TextGenerator.Models;

/// <summary>
/// The TorchSharp baselines: <c>embedding (V x H) -> nn.LSTM or nn.GRU (H -> H, <c>layers</c> layers, batch first)
/// -> linear head (H -> V)</c>, with the same loss and sampling as <see cref="Discretax.Models.CausalLM"/>
/// (generation runs the prompt once, then steps the RNN's (h, c) state one token at a time).
/// </summary>
internal sealed class RnnLanguageModel : nn.Module<Tensor, Tensor>, ILanguageModel
{
    private readonly Embedding embeddings;
    private readonly LSTM? lstm;
    private readonly GRU? gru;
    private readonly Linear lm_head;

    /// <summary>Creates the model.</summary>
    /// <param name="kind"><c>lstm</c> or <c>gru</c>.</param>
    /// <param name="hidden">The embedding and hidden size.</param>
    /// <param name="layers">The RNN's layers.</param>
    public RnnLanguageModel(string kind, long hidden, int layers) : base(nameof(RnnLanguageModel))
    {
        embeddings = nn.Embedding(ByteTokenizer.VocabSize, hidden);
        if (kind == "lstm") lstm = nn.LSTM(hidden, hidden, layers, batchFirst: true);
        else if (kind == "gru") gru = nn.GRU(hidden, hidden, layers, batchFirst: true);
        else throw new ArgumentException($"Unknown RNN '{kind}'; expected lstm or gru.", nameof(kind));
        lm_head = nn.Linear(hidden, ByteTokenizer.VocabSize);
        RegisterComponents();
    }

    public nn.Module Module => this;

    /// <summary>The logits <c>[B, L, V]</c> of token ids <c>[B, L]</c>.</summary>
    public override Tensor forward(Tensor tokens) => Step(tokens, null).Logits;

    private (Tensor Logits, (Tensor H, Tensor? C) State) Step(Tensor tokens, (Tensor H, Tensor? C)? state)
    {
        var x = embeddings.forward(tokens);
        if (lstm is not null)
        {
            var (y, h, c) = lstm.forward(x, state is { } s ? (s.H, s.C!) : null);
            return (lm_head.forward(y), (h, c));
        }
        var (yg, hg) = gru!.forward(x, state?.H);
        return (lm_head.forward(yg), (hg, null));
    }

    /// <summary>The windows as they are (TorchSharp's RNNs take no <c>cu_seqlens</c>: the state runs on across an
    /// end-of-text inside a window).</summary>
    public (Tensor Loss, long Predicted) Loss(Tensor tokens, Tensor? lengths)
    {
        using var scope = NewDisposeScope();
        long length = tokens.shape[1];
        var logits = forward(tokens);                                                   // causal: padding after a sequence never reaches it
        var logProbs = logits.narrow(1, 0, length - 1).log_softmax(-1);
        var picked = logProbs.gather(-1, tokens.narrow(1, 1, length - 1).unsqueeze(-1)).squeeze(-1);   // [B, L-1]
        if (lengths is null) return (picked.mean().neg().MoveToOuterDisposeScope(), picked.numel());
        var predicted = arange(1, length, device: tokens.device).unsqueeze(0).lt(lengths.unsqueeze(1));  // t + 1 < len_b
        var total = where(predicted, picked, zeros(1, device: picked.device)).sum();
        long count = predicted.sum().item<long>();
        return (total.div(count).neg().MoveToOuterDisposeScope(), count);
    }

    public long[][] Generate(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature, int? topK, long seed, long? stopToken)
    {
        Device device;
        using (var w = embeddings.weight!) device = w.device;
        bool wasTraining = training;
        eval();
        try
        {
            using var noGrad = no_grad();
            using var generator = new Generator(unchecked((ulong)seed), device);
            var results = new long[prompts.Count][];
            for (int b = 0; b < prompts.Count; b++)
            {
                using var scope = NewDisposeScope();
                var output = new List<long>();
                var (logits, state) = Step(tensor(prompts[b], new long[] { 1, prompts[b].Length }, ScalarType.Int64, device), null);
                var last = logits[0, -1];
                while (output.Count < maxNewTokens)
                {
                    long next = Sampling.Next(last, temperature, topK, generator);
                    output.Add(next);
                    if (next == stopToken) break;
                    (logits, state) = Step(tensor(new[] { next }, new long[] { 1, 1 }, ScalarType.Int64, device), state);
                    last = logits[0, -1];
                }
                results[b] = output.ToArray();
            }
            return results;
        }
        finally
        {
            train(wasTraining);
        }
    }
}

/// <summary>Temperature and top-k sampling of one token, as <c>CausalLM.Generate</c> does it.</summary>
internal static class Sampling
{
    /// <summary>A token from logits <c>[V]</c>: greedy for a temperature of at most 0, else softmax(z / T) over the top k.</summary>
    public static long Next(Tensor logits, double temperature, int? topK, Generator generator)
    {
        using var scope = NewDisposeScope();
        var z = logits.to_type(ScalarType.Float32);
        if (temperature <= 0) return z.argmax().item<long>();
        z = z.div(temperature);
        if (topK is int k && k < z.shape[0])
        {
            var kth = z.topk(k).values[-1];
            z = where(z.lt(kth), full_like(z, double.NegativeInfinity), z);
        }
        return multinomial(z.softmax(-1), 1, generator: generator).item<long>();
    }
}
