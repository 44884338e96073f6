using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// A stack of sequence blocks applied in order, <c>[B, L, H] -> [B, L, H]</c>: the shape of every model of
/// the library (a model is its blocks). Streaming carries one child state per block.
/// Compose with an encoder and a head in <c>torch.nn.Sequential</c>.
/// </summary>
public class SequenceModel : SequenceModule
{
    /// <summary>The blocks, applied in order.</summary>
    public ModuleList<SequenceModule> blocks;

    /// <summary>Creates a model from its blocks.</summary>
    /// <param name="inFeatures">The feature size H of every block.</param>
    /// <param name="blocks">The blocks (at least one), each <c>H -> H</c>.</param>
    public SequenceModel(long inFeatures, IEnumerable<SequenceModule> blocks) : this(nameof(SequenceModel), inFeatures, blocks) { }

    /// <summary>Creates a named model from its blocks (for derived models).</summary>
    /// <param name="name">The module name.</param>
    /// <param name="inFeatures">The feature size H of every block.</param>
    /// <param name="blocks">The blocks (at least one), each <c>H -> H</c>.</param>
    protected SequenceModel(string name, long inFeatures, IEnumerable<SequenceModule> blocks) : base(name, inFeatures)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var list = blocks.ToList();
        if (list.Count == 0) throw new ArgumentException("A model needs at least one block.", nameof(blocks));
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is null) throw new ArgumentException($"Block {i} is null.", nameof(blocks));
            if (list[i].InFeatures != inFeatures)
                throw new ArgumentException($"Block {i} takes {list[i].InFeatures} features; the model has {inFeatures}.", nameof(blocks));
        }
        this.blocks = new ModuleList<SequenceModule>(list.ToArray());
        RegisterComponents();
    }

    /// <summary>The number of blocks.</summary>
    public int NumBlocks => blocks.Count;

    /// <inheritdoc />
    protected override Tensor ForwardBatched(Tensor x)
    {
        var h = x;
        foreach (var block in blocks) h = block.forward(h);
        return h;
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState State) StreamBatched(Tensor x, StreamingState? state) =>
        StreamInOrder(blocks, x, state);

    /// <summary>
    /// Streams <paramref name="x"/> through <paramref name="stack"/> in order; the state has one child per module.
    /// </summary>
    /// <param name="stack">The modules, each <c>[B, L, H] -> [B, L, H]</c>.</param>
    /// <param name="x">The piece <c>[B, L, H]</c>.</param>
    /// <param name="state">The state after the previous piece (one child per module), or null.</param>
    protected internal static (Tensor Output, StreamingState State) StreamInOrder(IEnumerable<SequenceModule> stack, Tensor x, StreamingState? state)
    {
        var modules = stack.ToList();
        if (state is not null && state.Children.Count != modules.Count)
            throw new ArgumentException($"The state has {state.Children.Count} child states; the model has {modules.Count} blocks.", nameof(state));
        var h = x;
        var next = new StreamingState?[modules.Count];
        for (int i = 0; i < modules.Count; i++)
            (h, next[i]) = modules[i].Stream(h, state?.Children[i]);
        return (h, new StreamingState(x.shape[0], x.device, x.dtype, children: next));
    }
}
