// The xLSTM code of docs/interop.md. Every region between '// snippet: NAME' and '// end snippet' is, verbatim up to
// indentation, the block under '<!-- snippet: NAME -->' in the page (InteropXLSTMDocTests checks it); each method runs
// snippets and hands what they computed to its test, after the regions, as plain values.

using Discretax.Interop;
using Discretax.Models;
using static TorchSharp.torch;

namespace Discretax.Tests.Docs;

/// <summary>The xLSTM snippets of docs/interop.md.</summary>
public static class InteropXLSTMSnippets
{
    /// <summary>Load the xlstm package's mLSTMLayer from its state dict and save it back; returns the layer's output on <paramref name="x"/>.</summary>
    /// <param name="stateDictPath">torch.save(layer.state_dict()) of a 16-wide, 4-head layer with biases.</param>
    /// <param name="outputPath">Where the layer is saved.</param>
    /// <param name="x">An input <c>[B, L, 16]</c>.</param>
    public static Tensor LayerRoundTrip(string stateDictPath, string outputPath, Tensor x)
    {
        // snippet: xlstm-layer
        var layer = XLSTMCheckpoint.CreateTorchMLSTMLayer(embeddingDim: 16, numHeads: 4, bias: true);
        using (var sd = Checkpoint.Read(stateDictPath))          // torch.save(layer.state_dict()) or a .safetensors
            XLSTMCheckpoint.LoadTorchMLSTMLayer(layer, sd);        // strict; prefix: "xlstm_block_stack.blocks.0.xlstm."
        XLSTMCheckpoint.SaveTorchMLSTMLayer(layer, outputPath);    // the reference's names and storage
        // end snippet
        layer.eval();
        using (layer)
            return layer.forward(x);
    }

    /// <summary>Load an xLSTM-7B-architecture directory, generate greedily and save it in transformers' layout.</summary>
    /// <param name="directory">config.json + model.safetensors.</param>
    /// <param name="outputDirectory">Where the model is saved.</param>
    /// <param name="ids">The prompt.</param>
    public static long[] LargeGenerate(string directory, string outputDirectory, long[] ids)
    {
        // snippet: xlstm-large
        using var lm = XLSTMCheckpoint.LoadLarge(directory);                // config.json + model.safetensors (or sharded)
        long[] next = lm.Generate(new[] { ids }, maxNewTokens: 32, temperature: 0)[0];   // ids of the model's tokenizer
        XLSTMCheckpoint.SaveLarge(lm, outputDirectory, XLSTMLargeLayout.Transformers);   // config.json + model.safetensors
        // end snippet
        return next;
    }
}
