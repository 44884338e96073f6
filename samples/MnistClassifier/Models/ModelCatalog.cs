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
/// The models <c>--model</c> can name: each maps a <see cref="NetworkSpec"/> (hidden, blocks, dropRate, sequence
/// length) to a <see cref="SequenceModule"/>. Adding a model of the library is one line in <see cref="All"/>, e.g.
/// <c>new("s5", "S5 ...", s =&gt; new S5(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation))</c>.
/// The classifier is <c>Sequential(LinearEncoder -&gt; model -&gt; ClassificationHead)</c>, as a user would build it.
/// </summary>
public static class ModelCatalog
{
    /// <summary>Every registered model, the default first.</summary>
    public static readonly IReadOnlyList<ModelEntry> All = new ModelEntry[]
    {
        new("lru", "LRU: diagonal complex recurrence (Orvieto et al. 2023), compiled parallel scan; eigenvalues on the ring [0.9, 0.999] for sequences of 256+ steps",
            s => s.SequenceLength >= LongSequence
                ? new LRU(s.Hidden, s.Blocks, rMin: LongSequenceRMin, rMax: LongSequenceRMax, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)
                : new LRU(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)),
        new("deltanet", "DeltaNet: linear attention with the delta rule (Yang et al. 2024), chunked kernel, fla's short convolutions on q, k, v",
            s => new DeltaNet(s.Hidden, s.Blocks, dropRate: s.DropRate, useShortConv: true, norm: s.Norm, activation: s.Activation)),
        new("gated-deltanet", "Gated DeltaNet: the delta rule with a learned per-head decay (Yang et al. 2025), fla's layer, chunked kernel",
            s => new GatedDeltaNet(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)),
        new("mamba2", "Mamba2: selective state-space model in its state-space-duality form (Dao & Gu 2024), chunked SSD kernel",
            s => new Mamba2(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)),
        new("s4d", "S4D: diagonal state-space model (Gu et al. 2022), FFT convolution",
            s => new S4D(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)),
        new("mlstm", "mLSTM: xLSTM matrix-memory layer blocks (Beck et al. 2024), chunkwise stabilized kernel",
            s => new MLSTM(s.Hidden, s.Blocks, dropRate: s.DropRate), StandardBlocks: false),
        new("linoss", "LinOSS: damped oscillatory state-space model (Rusch & Rus 2025), 2x2-block scan",
            s => new LinOSS(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)),
        new("s5", "S5: HiPPO-initialized diagonal MIMO state-space model (Smith et al. 2023), parallel scan",
            s => new S5(s.Hidden, s.Blocks, dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)),
        new("conv-baseline",
            "baseline, not a state-space model: blocks of a short causal convolution (kernel 4) and a GLU",
            s => new SequenceModel(s.Hidden, Enumerable.Range(0, s.Blocks).Select(_ =>
                (SequenceModule)new StandardBlock(s.Hidden, new ShortConvolution(s.Hidden), new GLU(s.Hidden), dropRate: s.DropRate, norm: s.Norm, activation: s.Activation)))),
    };

    /// <summary>
    /// From this sequence length on (the pixels and permuted layouts, 784 steps), <c>lru</c> initializes its
    /// eigenvalue moduli on the ring [<see cref="LongSequenceRMin"/>, <see cref="LongSequenceRMax"/>], the LRU paper's
    /// setting for its long image task (sequential CIFAR, 1,024 steps), instead of discretax's default [0, 1]: with
    /// |lambda| uniform on [0, 1] most modes forget within a few steps, and memory must reach across 784 pixels. The
    /// rows layout (28 steps) keeps the default.
    /// </summary>
    public const int LongSequence = 256;

    /// <summary>The smallest eigenvalue modulus of <c>lru</c> at initialization for long sequences.</summary>
    public const double LongSequenceRMin = 0.9;

    /// <summary>The largest eigenvalue modulus of <c>lru</c> at initialization for long sequences.</summary>
    public const double LongSequenceRMax = 0.999;

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
            ("model", entry.Create(spec)),
            ("head", new ClassificationHead(spec.Hidden, spec.Classes)));
    }
}
