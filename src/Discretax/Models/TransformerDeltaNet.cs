using Discretax.Blocks;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// The Transformer-style DeltaNet stack of the PyTorch DeltaNet package: <c>numLayers</c>
/// <see cref="TransformerBlock"/>s followed by a final RMSNorm. <c>[B, L, dModel] -> [B, L, dModel]</c>.
/// </summary>
public sealed class TransformerDeltaNet : SequenceModule
{
    /// <summary>The blocks.</summary>
    public ModuleList<TransformerBlock> layers;

    /// <summary>The final RMSNorm.</summary>
    public RMSNorm final_norm;

    /// <summary>Creates the stack.</summary>
    /// <param name="dModel">The feature size.</param>
    /// <param name="chunkSize">The chunk size of the delta-rule kernel.</param>
    /// <param name="numLayers">The number of blocks.</param>
    /// <param name="numHeads">Attention heads per block.</param>
    /// <param name="ffHiddenDim">SwiGLU width; default <c>4 * dModel</c>.</param>
    public TransformerDeltaNet(long dModel, int chunkSize, int numLayers, int numHeads = 1, long? ffHiddenDim = null)
        : base(nameof(TransformerDeltaNet), dModel)
    {
        Check.AtLeast(numLayers, 1);
        long ff = ffHiddenDim ?? 4 * dModel;
        layers = new ModuleList<TransformerBlock>(Enumerable.Range(0, numLayers)
            .Select(_ => new TransformerBlock(dModel, chunkSize, ff, numHeads)).ToArray());
        final_norm = new RMSNorm(dModel);
        RegisterComponents();
    }

    /// <inheritdoc />
    protected override Tensor ForwardBatched(Tensor x)
    {
        var h = x;
        foreach (var layer in layers) h = layer.forward(h);
        return final_norm.forward(h);
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState State) StreamBatched(Tensor x, StreamingState? state)
    {
        var (h, next) = SequenceModel.StreamInOrder(layers, x, state);
        return (final_norm.forward(h), next);
    }
}
