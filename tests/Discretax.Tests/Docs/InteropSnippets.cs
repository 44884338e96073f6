// The code of docs/interop.md. Every region between '// snippet: NAME' and '// end snippet' is, verbatim up to
// indentation, the block under '<!-- snippet: NAME -->' in the page (InteropDocTests checks it); each method runs one
// snippet and hands what it computed to its test, after the region, as plain values.

// snippet: interop-usings
using Discretax.Interop;
using TorchSharp;
using static TorchSharp.torch;
// end snippet

namespace Discretax.Tests.Docs;

/// <summary>The snippets of docs/interop.md, one method each.</summary>
public static class InteropSnippets
{
    /// <summary>What the import/export snippet computed.</summary>
    public sealed record ImportExportResult(IReadOnlyList<string> Loaded, IReadOnlyList<string> Exported, double[] Output);

    /// <summary>Load a Hugging Face directory into a TorchSharp module under other names, run it, export it.</summary>
    public static ImportExportResult ImportExport(string directory, string outputPath, Tensor x)
    {
        // snippet: import-export
        // model.safetensors, a sharded model.safetensors.index.json, or pytorch_model.bin; config.json if present.
        using var hf = HuggingFaceCheckpoint.Load(directory);
        long hidden = hf.Config!.Value.GetProperty("hidden_size").GetInt64();
        double eps = hf.Config.Value.GetProperty("layer_norm_eps").GetDouble();

        // The TorchSharp module, and its names -> the checkpoint's (proj.* and norm.* in the PyTorch model).
        var model = nn.Sequential(("linear", nn.Linear(4, hidden)), ("ln", nn.LayerNorm(hidden, eps)));
        Func<string, string?> names = n => n.Replace("linear.", "proj.").Replace("ln.", "norm.");
        var result = Checkpoint.Load(model, hf.Tensors, names);   // strict: one exception lists every problem
        model.eval();
        using var y = model.forward(x);

        // Back to PyTorch: safetensors with {"format": "pt"}, under the checkpoint's names.
        Checkpoint.Save(model, outputPath, names);
        // end snippet
        using var exported = SafeTensors.Read(outputPath);
        return new ImportExportResult(result.Loaded, exported.Names, TestUtil.Values(y));
    }

    /// <summary>The message of the strict load that the page shows.</summary>
    public static string StrictError(string directory)
    {
        using var hf = HuggingFaceCheckpoint.Load(directory);
        // One output too many, a bias-free norm, and a name the checkpoint does not use.
        var model = nn.Sequential(("proj", nn.Linear(4, 7)), ("norm", nn.LayerNorm(6, bias: false)), ("head", nn.Linear(6, 2)));
        try
        {
            Checkpoint.Load(model, hf.Tensors);
        }
        catch (ArgumentException ex)
        {
            return ex.Message;
        }
        throw new InvalidOperationException("The strict load did not fail.");
    }
}
