using Discretax.Streaming;
using Discretax.Models;
using Discretax.Text;

namespace TextGenerator.Models;

/// <summary>The models <c>--model</c> can name, each built at a hidden size and a number of blocks (layers for the RNNs), without dropout.</summary>
internal static class ModelCatalog
{
    /// <summary>The names, the default first.</summary>
    public static readonly string[] Names = { "lru", "deltanet", "s4d", "s5", "linoss", "mlstm", "lstm", "gru" };

    /// <summary>One line per model for <c>--help</c>.</summary>
    public const string Description =
        "lru (default), deltanet, s4d, s5, linoss, mlstm (Discretax models in a CausalLM), "
        + "lstm, gru (TorchSharp nn.LSTM / nn.GRU baselines: embedding, RNN with --blocks layers, linear head)";

    /// <summary>Builds the named model.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="hidden">The hidden size.</param>
    /// <param name="blocks">The blocks (layers).</param>
    public static ILanguageModel Create(string name, int hidden, int blocks)
    {
        SequenceModule? model = name switch
        {
            "lru" => new LRU(hidden, blocks, dropRate: 0),
            "deltanet" => new DeltaNet(hidden, blocks, dropRate: 0, useShortConv: true),
            "s4d" => new S4D(hidden, blocks, dropRate: 0),
            "s5" => new S5(hidden, blocks, dropRate: 0),
            "linoss" => new LinOSS(hidden, blocks, dropRate: 0),
            "mlstm" => new MLSTM(hidden, blocks, dropRate: 0),
            "lstm" or "gru" => null,
            _ => throw new ArgumentException($"Unknown model '{name}'; expected one of: {string.Join(", ", Names)}.", nameof(name)),
        };
        return model is null ? new RnnLanguageModel(name, hidden, blocks) : new CausalLanguageModel(new CausalLM(ByteTokenizer.VocabSize, model));
    }
}
