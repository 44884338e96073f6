using static TorchSharp.torch;

namespace TextGenerator.Models;

/// <summary>What the trainer needs of a language model: the module (parameters, save/load, modes), the loss of a
/// right-padded batch and sampling. <see cref="Discretax.Models.CausalLM"/> for the library's models, <see cref="RnnLanguageModel"/>
/// for the TorchSharp LSTM/GRU baselines.</summary>
internal interface ILanguageModel : IDisposable
{
    /// <summary>The module holding every parameter.</summary>
    nn.Module Module { get; }

    /// <summary>The mean next-token cross-entropy in nats over every predicted position (see <c>CausalLM.Loss</c>).</summary>
    Tensor Loss(Tensor tokens, Tensor? lengths);

    /// <summary>Samples continuations (see <c>CausalLM.Generate</c>).</summary>
    long[][] Generate(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature, int? topK, long seed, long? stopToken);
}

/// <summary>A library <see cref="Discretax.Models.CausalLM"/> as an <see cref="ILanguageModel"/>.</summary>
internal sealed class CausalLanguageModel(Discretax.Models.CausalLM lm) : ILanguageModel
{
    public nn.Module Module => lm;

    public Tensor Loss(Tensor tokens, Tensor? lengths) => lm.Loss(tokens, lengths);

    public long[][] Generate(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature, int? topK, long seed, long? stopToken) =>
        lm.Generate(prompts, maxNewTokens, temperature, topK, null, seed, stopToken);

    public void Dispose() => lm.Dispose();
}
