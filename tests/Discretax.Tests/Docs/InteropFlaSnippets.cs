// The fla code of docs/interop.md. Every region between '// snippet: NAME' and '// end snippet' is, verbatim up to
// indentation, the block under '<!-- snippet: NAME -->' in the page (InteropFlaDocTests checks it); each method runs
// snippets and hands what they computed to its test, after the regions, as plain values.

// snippet: fla-usings
using Discretax.Interop;
using Discretax.Models;
using Discretax.SequenceMixers;
using TorchSharp;
using static TorchSharp.torch;
// end snippet

namespace Discretax.Tests.Docs;

/// <summary>The fla snippets of docs/interop.md.</summary>
public static class InteropFlaSnippets
{
    /// <summary>What the generate and fine-tune snippets computed.</summary>
    public sealed record GenerateResult(string Type, long[] Prompt, long[] Continuation, double[] Losses, double ReloadedMaxDiff);

    /// <summary>Load a fla DeltaNet directory, generate, fine-tune a few steps, save it back under fla's names.</summary>
    /// <param name="directory">A fla model directory (the test passes the fixture written by fla's code).</param>
    /// <param name="outputDirectory">Where the fine-tuned model goes.</param>
    public static GenerateResult GenerateAndFineTune(string directory, string outputDirectory)
    {
        // snippet: fla-generate
        // A directory written by fla's save_pretrained: config.json + model.safetensors (or shards, or pytorch_model.bin).
        using var lm = FlaCheckpoint.Load(directory);       // a DeltaNetForCausalLM for model_type "delta_net", float32
        var config = (DeltaNetConfig)lm.Config;             // fla's config.json fields, fla's defaults for absent ones

        long[] prompt = { 5, 17, 42, 8 };                   // token ids of the model's own tokenizer
        long[] continuation = lm.Generate(new[] { prompt }, maxNewTokens: 16, temperature: 0.8, topK: 20, seed: 1,
            stopToken: config.EosTokenId)[0];
        // end snippet

        // snippet: fla-finetune
        // Fine-tune in .NET, then save for PyTorch: fla's from_pretrained reads the directory back.
        var losses = new List<double>();
        using var tokens = tensor(new long[] { 5, 17, 42, 8, 23, 4, 16, 42, 8, 23, 4, 16 }, new long[] { 1, 12 });
        using var optimizer = optim.AdamW(lm.parameters(), lr: 1e-3);
        lm.train();
        for (int step = 0; step < 5; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = lm.Loss(tokens);                     // next-token cross-entropy, as fla's loss with labels = ids
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }
        lm.eval();
        FlaCheckpoint.Save(lm, outputDirectory);            // config.json + model.safetensors, fla's names and config
        // end snippet

        using var reloaded = FlaCheckpoint.Load(outputDirectory);
        using var a = lm.forward(tokens);
        using var b = reloaded.forward(tokens);
        return new GenerateResult(lm.GetType().Name, prompt, continuation, losses.ToArray(), TestUtil.MaxAbsDiff(a, b));
    }

    /// <summary>What the layer snippet computed.</summary>
    public sealed record LayerResult(int Loaded, long[] OutputShape);

    /// <summary>Load one layer of a fla language model checkpoint into fla's DeltaNet layer.</summary>
    /// <param name="directory">A fla DeltaNet model directory.</param>
    public static LayerResult Layer(string directory)
    {
        // snippet: fla-layer
        // One layer of a fla checkpoint: its tensors under "model.layers.0.attn.", names mapped by prefix.
        const string prefix = "model.layers.0.attn.";
        using var tensors = Checkpoint.Read(directory, include: name => name.StartsWith(prefix));
        using var layer = new FlaDeltaNetSequenceMixer(32, numHeads: 4, normEps: 1e-6);  // the config's sizes and norm_eps
        var result = Checkpoint.Load(layer, tensors, nameMap: name => prefix + name);   // strict: every name, every shape
        layer.eval();
        using var y = layer.forward(randn(2, 10, 32));      // [B, L, H] -> [B, L, H]
        // end snippet
        return new LayerResult(result.Loaded.Count, y.shape);
    }

    /// <summary>What the Mamba2 snippet computed.</summary>
    public sealed record Mamba2Result(string Type, long[] Continuation, int MixerLoaded, double MixerMaxDiff);

    /// <summary>Load fla's Mamba2ForCausalLM, generate greedily, and load one of its mixers by prefix.</summary>
    /// <param name="directory">A fla Mamba2 model directory (fla's defaults but for the sizes).</param>
    public static Mamba2Result Mamba2(string directory)
    {
        // snippet: fla-mamba2
        // fla's Mamba2ForCausalLM (model_type "mamba2"): the same calls, fla's backbone.* tree.
        using var lm = FlaCheckpoint.Load(directory);       // a Mamba2ForCausalLM, float32
        var config = (Mamba2Config)lm.Config;               // state_size, head_dim, n_groups, dt_limit, ...
        long[] continuation = lm.Generate(new[] { new long[] { 5, 17, 42 } }, maxNewTokens: 8, temperature: 0)[0];

        // One mixer: its tensors under "backbone.layers.0.mixer." (lm.DecoderName is "backbone").
        string prefix = $"{lm.DecoderName}.layers.0.mixer.";
        using var tensors = Checkpoint.Read(directory, include: name => name.StartsWith(prefix));
        using var mixer = new Mamba2SequenceMixer(config.HiddenSize, config.StateSize, config.ConvKernel, config.Expand,
            config.HeadDim, config.NGroups, normEps: config.NormEps);    // the config's sizes (and other options it sets)
        var result = Checkpoint.Load(mixer, tensors, nameMap: name => prefix + name);
        // end snippet

        mixer.eval();
        var inModel = ((Mamba2ForCausalLM)lm).Mixers.First();
        using var x = randn(1, 6, config.HiddenSize);
        using var a = mixer.forward(x);
        using var b = inModel.forward(x);
        return new Mamba2Result(lm.GetType().Name, continuation, result.Loaded.Count, TestUtil.MaxAbsDiff(a, b));
    }
}
