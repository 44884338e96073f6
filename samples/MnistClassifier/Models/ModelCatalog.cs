using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Layers;
using Discretax.Models;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

namespace MnistClassifier.Models;

/// <summary>
/// The models <c>--model</c> can name: each maps (hidden, blocks, dropRate) to a <see cref="SequenceModule"/>.
/// Adding a model of the library is one line in <see cref="All"/>, e.g.
/// <c>new("lru", "LRU ...", (h, b, d) =&gt; new LRU(h, b, dropRate: d))</c>.
/// The classifier is <c>Sequential(LinearEncoder -&gt; model -&gt; ClassificationHead)</c>, as a user would build it.
/// </summary>
public static class ModelCatalog
{
    /// <summary>Every registered model, the default first.</summary>
    public static readonly IReadOnlyList<ModelEntry> All = new ModelEntry[]
    {
        new("lru", "LRU: diagonal complex recurrence (Orvieto et al. 2023), compiled parallel scan",
            (h, b, d) => new LRU(h, b, dropRate: d)),
        new("deltanet", "DeltaNet: linear attention with the delta rule (Yang et al. 2024), chunked kernel",
            (h, b, d) => new DeltaNet(h, b, dropRate: d)),
        new("s4d", "S4D: diagonal state-space model (Gu et al. 2022), FFT convolution",
            (h, b, d) => new S4D(h, b, dropRate: d)),
        new("mlstm", "mLSTM: xLSTM matrix-memory layer blocks (Beck et al. 2024), chunkwise stabilized kernel",
            (h, b, d) => new MLSTM(h, b, dropRate: d)),
        new("linoss", "LinOSS: damped oscillatory state-space model (Rusch & Rus 2025), 2x2-block scan",
            (h, b, d) => new LinOSS(h, b, dropRate: d)),
        new("s5", "S5: HiPPO-initialized diagonal MIMO state-space model (Smith et al. 2023), parallel scan",
            (h, b, d) => new S5(h, b, dropRate: d)),
        new("conv-baseline",
            "baseline, not a state-space model: blocks of a short causal convolution (kernel 4) and a GLU",
            (h, b, d) => new SequenceModel(h, Enumerable.Range(0, b).Select(_ =>
                (SequenceModule)new StandardBlock(h, new ShortConvolution(h), new GLU(h), dropRate: d)))),
    };

    /// <summary>The default model's name.</summary>
    public static string DefaultName => All[0].Name;

    /// <summary>The registered names.</summary>
    public static IEnumerable<string> Names => All.Select(e => e.Name);

    /// <summary>The entry named <paramref name="name"/> (case-insensitive).</summary>
    /// <param name="name">The model name.</param>
    public static ModelEntry Get(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown model '{name}'; expected one of: {string.Join(", ", Names)}.", nameof(name));

    /// <summary>
    /// Builds the classifier <c>Sequential(encoder, model, head)</c>: <c>[B, L, F]</c> sequences to
    /// <c>[B, classes]</c> log-probabilities (the head averages over time).
    /// </summary>
    /// <param name="spec">What to build.</param>
    public static nn.Module<Tensor, Tensor> Build(NetworkSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        var entry = Get(spec.Model);
        return nn.Sequential(
            ("encoder", new LinearEncoder(spec.InputFeatures, spec.Hidden)),
            ("model", entry.Create(spec.Hidden, spec.Blocks, spec.DropRate)),
            ("head", new ClassificationHead(spec.Hidden, spec.Classes)));
    }
}
