using Discretax.Blocks;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Models;

/// <summary>
/// The Transformer-style DeltaNet stack of the PyTorch DeltaNet package: <c>numLayers</c>
/// <see cref="TransformerBlock"/>s (<c>layers</c>) followed by a final RMSNorm (<c>final_norm</c>). <c>[B, L, dModel] -> [B, L, dModel]</c>.
/// </summary>
public sealed class TransformerDeltaNet : SequenceModel
{
    /// <summary>Creates the stack.</summary>
    /// <param name="dModel">The feature size.</param>
    /// <param name="chunkSize">The chunk size of the delta-rule kernel.</param>
    /// <param name="numLayers">The number of blocks.</param>
    /// <param name="numHeads">Attention heads per block.</param>
    /// <param name="ffHiddenDim">SwiGLU width; default <c>4 * dModel</c>.</param>
    public TransformerDeltaNet(long dModel, int chunkSize, int numLayers, int numHeads = 1, long? ffHiddenDim = null)
        : base(nameof(TransformerDeltaNet), Check.Dim(dModel), Layers(dModel, chunkSize, numLayers, numHeads, ffHiddenDim),
            NormKind.Rms, blocksName: "layers", finalNormName: "final_norm")
    {
    }

    private static IEnumerable<SequenceModule> Layers(long dModel, int chunkSize, int numLayers, int numHeads, long? ffHiddenDim)
    {
        Check.AtLeast(numLayers, 1);
        long ff = ffHiddenDim ?? 4 * dModel;
        for (int i = 0; i < numLayers; i++) yield return new TransformerBlock(dModel, chunkSize, ff, numHeads);
    }
}
