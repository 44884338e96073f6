using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using Discretax.Streaming;
using Discretax.Models;
using Discretax.Text;

namespace TextGenerator.Models;

/// <summary>The models <c>--model</c> can name, each built at a hidden size and a number of blocks (layers for the RNNs), without dropout, with layer norm in the blocks (see <see cref="Blocks"/>).</summary>
internal static class ModelCatalog
{
    /// <summary>The names, the default first.</summary>
    public static readonly string[] Names = { "lru", "deltanet", "gated-deltanet", "mamba2", "s4d", "s5", "linoss", "mlstm", "lstm", "gru" };

    /// <summary>One line per model for <c>--help</c>.</summary>
    public const string Description =
        "lru (default), deltanet, gated-deltanet, mamba2, s4d, s5, linoss, mlstm (Discretax models in a CausalLM), "
        + "lstm, gru (TorchSharp nn.LSTM / nn.GRU baselines: embedding, RNN with --blocks layers, linear head)";

    /// <summary>Builds the named model.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="hidden">The hidden size.</param>
    /// <param name="blocks">The blocks (layers).</param>
    public static ILanguageModel Create(string name, int hidden, int blocks)
    {
        SequenceModule? model = name switch
        {
            "lru" => Blocks(hidden, blocks, h => new LRUSequenceMixer(h), h => new GLU(h)),
            "deltanet" => Blocks(hidden, blocks, h => new DeltaNetSequenceMixer(h, useShortConv: true), h => new GLU(h, useBias: false)),
            "gated-deltanet" => new GatedDeltaNet(hidden, blocks, dropRate: 0, norm: NormKind.Layer),
            "mamba2" => new Mamba2(hidden, blocks, dropRate: 0, norm: NormKind.Layer),
            "s4d" => Blocks(hidden, blocks, h => new S4DSequenceMixer(h), h => new GLU(h)),
            "s5" => Blocks(hidden, blocks, h => new S5SequenceMixer(h), h => new GLU(h)),
            "linoss" => Blocks(hidden, blocks, h => new LinOSSSequenceMixer(h), h => new GLU(h)),
            "mlstm" => new MLSTM(hidden, blocks, dropRate: 0),
            "lstm" or "gru" => null,
            _ => throw new ArgumentException($"Unknown model '{name}'; expected one of: {string.Join(", ", Names)}.", nameof(name)),
        };
        return model is null ? new RnnLanguageModel(name, hidden, blocks) : new CausalLanguageModel(new CausalLM(ByteTokenizer.VocabSize, model));
    }

    /// <summary>
    /// The model's standard pre-norm blocks, as its class builds them, but with <see cref="NormKind.Layer"/> instead
    /// of the classes' default <see cref="NormKind.Batch"/>: batch norm in training mode normalizes with statistics
    /// over the whole window, so a step sees the later steps' values and a causal language model learns to read the
    /// future (a low training loss, a high held-out loss in eval mode). Layer norm acts per step.
    /// </summary>
    private static SequenceModel Blocks(int hidden, int blocks, Func<long, SequenceModule> mixer, Func<long, ChannelMixer> channel) =>
        new(hidden, SequenceModel.Standard(hidden, blocks, mixer, channel, dropRate: 0, prenorm: true, norm: NormKind.Layer));
}
