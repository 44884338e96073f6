using Discretax.Text;
using static TorchSharp.torch;

namespace TextGenerator.Models;

/// <summary>What the trainer needs of a language model: the module (parameters, save/load, modes), the loss of a
/// right-padded batch and sampling. <see cref="Discretax.Models.CausalLM"/> for the library's models, <see cref="RnnLanguageModel"/>
/// for the TorchSharp LSTM/GRU baselines.</summary>
internal interface ILanguageModel : IDisposable
{
    /// <summary>The module holding every parameter.</summary>
    nn.Module Module { get; }

    /// <summary>The mean next-token cross-entropy in nats over every predicted position of a right-padded batch of
    /// windows, and the number of predicted positions.</summary>
    (Tensor Loss, long Predicted) Loss(Tensor tokens, Tensor? lengths);

    /// <summary>Samples continuations (see <c>CausalLM.Generate</c>).</summary>
    long[][] Generate(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature, int? topK, long seed, long? stopToken);
}

/// <summary>A library <see cref="Discretax.Models.CausalLM"/> as an <see cref="ILanguageModel"/>.</summary>
internal sealed class CausalLanguageModel(Discretax.Models.CausalLM lm) : ILanguageModel
{
    public nn.Module Module => lm;

    /// <summary>
    /// The windows' documents packed into one row with <c>cuSeqlens</c> boundaries at every window start and after
    /// every end-of-text: the model's state starts afresh with each document, and no step predicts across one
    /// (<c>CausalLM.LossPacked</c>).
    /// </summary>
    public (Tensor Loss, long Predicted) Loss(Tensor tokens, Tensor? lengths)
    {
        using var scope = NewDisposeScope();
        var ids = tokens.cpu().to_type(ScalarType.Int64);
        long rows = ids.shape[0], width = ids.shape[1];
        var valid = lengths?.cpu().data<long>().ToArray() ?? Enumerable.Repeat(width, (int)rows).ToArray();
        var flat = ids.data<long>().ToArray();
        var packed = new List<long>();
        var boundaries = new List<long> { 0 };
        for (int b = 0; b < rows; b++)
        {
            for (long t = 0; t < valid[b]; t++)
            {
                long id = flat[b * width + t];
                packed.Add(id);
                if (id == ByteTokenizer.EndOfText && t < valid[b] - 1) boundaries.Add(packed.Count);
            }
            boundaries.Add(packed.Count);
        }
        var row = tensor(packed.ToArray(), ScalarType.Int64, tokens.device);
        var cu = tensor(boundaries.ToArray(), ScalarType.Int64, tokens.device);
        var (loss, predicted) = lm.LossPacked(row, cu);
        return (loss.MoveToOuterDisposeScope(), predicted);
    }

    public long[][] Generate(IReadOnlyList<long[]> prompts, int maxNewTokens, double temperature, int? topK, long seed, long? stopToken) =>
        lm.Generate(prompts, maxNewTokens, temperature, topK, null, seed, stopToken);

    public void Dispose() => lm.Dispose();
}
