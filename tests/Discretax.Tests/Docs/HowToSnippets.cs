// The code of docs/howto.md. Every region between '// snippet: NAME' and '// end snippet' is, verbatim up to
// indentation, the block under '<!-- snippet: NAME -->' in the page (HowToDocTests checks it); each method runs one
// snippet and hands what it computed to its test (HowToTests), after the region, as plain values.
// Snippets draw from the global generator, which parallel tests share: tests assert properties, never values.

// snippet: usings
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Models;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;
// end snippet

namespace Discretax.Tests.Docs;

/// <summary>The snippets of docs/howto.md, one method each.</summary>
public static class HowToSnippets
{
    /// <summary>What the save/load snippet computed.</summary>
    public sealed record SaveLoadResult(double[] Before, double[] After, bool FileDeleted, int Keys, int RestoredKeys);

    /// <summary>Save a model and load it into a new one.</summary>
    public static SaveLoadResult SaveLoad()
    {
        // snippet: save-load
        using var model = new LRU(16, numBlocks: 2, stateDim: 16);
        // ... train the model ...
        var path = Path.GetTempFileName();
        model.save(path);                                    // parameters and buffers (batch-norm statistics)

        // Later, or in another program: the same constructor arguments, then load.
        using var restored = new LRU(16, numBlocks: 2, stateDim: 16);
        restored.load(path);                                 // strict: the same names as the saved model
        File.Delete(path);

        model.eval();                                        // the mode is not saved: set it on the loaded model
        restored.eval();
        using var x = randn(2, 50, 16);
        using var before = model.forward(x);
        using var after = restored.forward(x);               // equal to before, bit for bit
        // end snippet
        return new SaveLoadResult(TestUtil.Values(before), TestUtil.Values(after), !File.Exists(path),
            model.state_dict().Count, restored.state_dict().Count);
    }

    /// <summary>What the device snippet computed.</summary>
    public sealed record DeviceResult(string Device, string OutputDevice, string StateDevice, double MaxDiffToFullForward);

    /// <summary>Pick CUDA when there is one, move a model and a state there, continue a stream.</summary>
    public static DeviceResult Device()
    {
        // snippet: device
        var device = cuda.is_available() ? CUDA : CPU;       // the CPU on a machine without CUDA

        using var model = new LRU(16, numBlocks: 2, stateDim: 16);
        model.eval();
        using var x = randn(2, 40, 16);                      // made on the CPU
        var (first, state) = model.Stream(x.narrow(1, 0, 20));   // the first 20 steps, on the CPU

        model.to(device);                                    // parameters and buffers, in place
        using var moved = state.To(device);                  // a copy on the device; the state stays on the CPU
        state.Dispose();
        using var rest = x.narrow(1, 20, 20).to(device);     // inputs go where the model is
        var (second, last) = model.Stream(rest, moved);      // the next 20 steps, on the device
        // end snippet
        using var scope = NewDisposeScope();
        model.to(CPU);
        var diff = TestUtil.MaxAbsDiff(cat(new[] { first, second.cpu() }, 1), model.forward(x));
        var result = new DeviceResult(device.ToString(), second.device.ToString(), last.Device.ToString(), diff);
        foreach (var d in new IDisposable[] { first, second, last }) d.Dispose();
        return result;
    }

    /// <summary>What the bfloat16 snippet computed.</summary>
    public sealed record BFloat16Result(ScalarType ParameterDType, ScalarType OutputDType, ScalarType StateDType,
        ScalarType[] StateTensorDTypes, double RelRmsToFloat32);

    /// <summary>Convert a model to bfloat16 and stream it.</summary>
    public static BFloat16Result BFloat16()
    {
        // snippet: bfloat16
        using var model = new LRU(16, numBlocks: 2, stateDim: 16);
        using var reference = new LRU(16, numBlocks: 2, stateDim: 16);
        reference.load_state_dict(model.state_dict());       // a float32 copy, for comparison

        model.to(ScalarType.BFloat16);                       // parameters and buffers in bfloat16
        model.eval();
        reference.eval();
        using var x = randn(2, 40, 16);                      // float32 in: cast to bfloat16 on entry
        var (y, state) = model.Stream(x);                    // y is float32: the output is cast back
        using var y32 = reference.forward(x);                // close to y, to bfloat16's precision
        // state.DType is BFloat16 (the module's compute dtype), but its tensors stay float32 (complex64 for
        // the LRU): a long stream does not accumulate bfloat16 rounding.
        // end snippet
        var result = new BFloat16Result(model.parameters().First().dtype, y.dtype, state.DType,
            StateTensors(state).Select(t => t.dtype).ToArray(), TestUtil.RelRms(y, y32));
        y.Dispose();
        state.Dispose();
        return result;
    }

    /// <summary>What the decoding snippet computed.</summary>
    public sealed record DecodeResult(long[] PromptShape, long[] ContinuationShape, double MaxDiffToFullForward);

    /// <summary>Feed a network its own predictions, one step at a time.</summary>
    public static DecodeResult StreamDecode()
    {
        // snippet: stream-decode
        using var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(3, 16)),
            ("model", new LRU(16, numBlocks: 2, stateDim: 16)),
            ("head", new RegressionHead(16, 3, reduce: false)));     // one prediction per step: [B, L, 3]
        net.eval();                                                   // streaming equals the forward in eval mode
        using var prompt = randn(1, 8, 3);
        var generated = new List<Tensor>();
        using (no_grad())
        {
            var (y, state) = net.Stream(prompt);                      // read the prompt in one piece
            var next = y.narrow(1, y.shape[1] - 1, 1);                // the prediction for step 9, [1, 1, 3]
            for (int t = 0; t < 16; t++)
            {
                generated.Add(next);
                var (output, newState) = net.Stream(next, state);     // one step in, one prediction out
                state.Dispose();                                      // the old state is not needed any more
                state = newState;
                next = output;
            }
            state.Dispose();
        }
        using var continuation = cat(generated, 1);                  // [1, 16, 3]
        // end snippet
        using var scope = NewDisposeScope();
        // The full forward over the prompt and the fed-back steps predicts every fed-back step and the last one.
        var all = net.forward(cat(new[] { prompt, continuation.narrow(1, 0, 15) }, 1));
        var diff = TestUtil.MaxAbsDiff(all.narrow(1, 7, 16), continuation);
        return new DecodeResult(prompt.shape, continuation.shape, diff);
    }

    /// <summary>What the truncated-BPTT snippet computed.</summary>
    public sealed record TbpttResult(float[] Losses, bool StateDetached, long StateBatch, bool EveryParameterHasGrad);

    /// <summary>Train on windows of long sequences, carrying the detached state.</summary>
    public static TbpttResult Tbptt()
    {
        // snippet: tbptt
        using var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(1, 16)),
            ("model", new LRU(16, numBlocks: 2, stateDim: 16)),
            ("head", new RegressionHead(16, 1, reduce: false)));
        using var opt = optim.AdamW(net.parameters(), lr: 1e-3);
        using var series = randn(8, 1001, 1).cumsum(1);               // 8 random walks of 1001 steps
        const int window = 100;
        var losses = new List<float>();
        StreamingState? state = null;
        net.train();
        for (int start = 0; start < 1000; start += window)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var (y, next) = net.Stream(series.narrow(1, start, window), state);   // predict the next value
            var loss = nn.functional.mse_loss(y, series.narrow(1, start + 1, window));
            loss.backward();                                          // back to the window's first step only
            opt.step();
            losses.Add(loss.item<float>());
            state?.Dispose();
            state = next.Detach().MoveToOuterDisposeScope();          // the values go on, the graph stops here
        }
        // end snippet
        var result = new TbpttResult(losses.ToArray(), StateTensors(state!).All(t => !t.requires_grad),
            state!.BatchSize, net.parameters().All(p => p.grad is not null));
        state.Dispose();
        return result;
    }

    /// <summary>What the feature snippet computed.</summary>
    public sealed record FeaturesResult(long[] Shape, bool RequiresGrad, long Trainable, long HeadParameters, double MaxDiffToManualMean);

    /// <summary>Use a classifier's encoder and model as a frozen feature extractor.</summary>
    public static FeaturesResult Features()
    {
        // snippet: features
        // A trained classifier (built here; load its checkpoint as in "Save and load a model").
        using var classifier = new SequenceNetwork(
            ("encoder", new LinearEncoder(2, 32)),
            ("model", new LRU(32, numBlocks: 2, stateDim: 32)),
            ("head", new ClassificationHead(32, 10)));
        var encoder = classifier["encoder"];
        var model = classifier["model"];
        foreach (var p in encoder.parameters().Concat(model.parameters()))
            p.requires_grad_(false);                                  // frozen: no gradients, no updates
        encoder.eval();
        model.eval();                                                 // batch norm: running statistics; no dropout

        using var x = randn(16, 50, 2);
        using var perStep = model.forward(encoder.forward(x));        // [16, 50, 32]: features of every step
        using var features = perStep.mean(new long[] { 1 });          // [16, 32]: one vector per sequence
        // end snippet
        using var scope = NewDisposeScope();
        var manual = perStep.sum(1) / 50;
        var head = (SequenceHead)classifier["head"];
        return new FeaturesResult(features.shape, features.requires_grad, ParameterSummary.Count(classifier, trainableOnly: true),
            ParameterSummary.Count(head), TestUtil.MaxAbsDiff(features, manual));
    }

    /// <summary>What the fine-tuning snippet computed.</summary>
    public sealed record NewHeadResult(bool FrozenUnchanged, bool HeadGotGradients, long Trainable, long HeadParameters, long[] OutputShape);

    /// <summary>Train a new head on a frozen encoder and model.</summary>
    public static NewHeadResult NewHead()
    {
        using var classifier = new SequenceNetwork(
            ("encoder", new LinearEncoder(2, 32)),
            ("model", new LRU(32, numBlocks: 2, stateDim: 32)),
            ("head", new ClassificationHead(32, 10)));
        var frozenBefore = classifier.state_dict().Where(kv => !kv.Key.StartsWith("head.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        // snippet: new-head
        var body = classifier["model"];
        foreach (var p in classifier["encoder"].parameters().Concat(body.parameters())) p.requires_grad_(false);

        // The same encoder and model under a new head for a 3-class task; only the head trains.
        var newHead = new ClassificationHead(32, 3);
        var net = new SequenceNetwork(("encoder", classifier["encoder"]), ("model", body), ("head", newHead));
        using var opt = optim.AdamW(newHead.parameters(), lr: 1e-2);
        using var x = randn(16, 50, 2);
        using var labels = randint(0, 3, new long[] { 16 });
        net.train();
        body.eval();                               // frozen: batch norm must not update its statistics either
        for (int step = 0; step < 5; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            nn.functional.nll_loss(net.forward(x), labels).backward();
            opt.step();
        }
        // end snippet
        using var check = NewDisposeScope();
        var after = classifier.state_dict();
        bool frozenUnchanged = frozenBefore.All(kv => (after[kv.Key] == kv.Value).all().item<bool>());
        bool headGotGradients = newHead.parameters().All(p => p.grad is not null && p.grad.abs().sum().item<float>() > 0);
        var result = new NewHeadResult(frozenUnchanged, headGotGradients, ParameterSummary.Count(net, trainableOnly: true),
            ParameterSummary.Count(newHead), net.forward(x).shape);
        foreach (var t in frozenBefore.Values) t.Dispose();
        return result;
    }

    /// <summary>What the parameter snippet computed.</summary>
    public sealed record ParametersResult(long Total, long Trainable, string Tree, List<string> Shapes, List<string> Keys, long SumOfNumel);

    /// <summary>Count and list a model's parameters.</summary>
    public static ParametersResult Parameters()
    {
        // snippet: parameters
        using var model = new LRU(8, numBlocks: 1, stateDim: 4);
        long total = ParameterSummary.Count(model);                           // every scalar parameter
        long trainable = ParameterSummary.Count(model, trainableOnly: true);  // those that require gradients
        string tree = ParameterSummary.Tree(model, "lru");                    // per module and parameter, below
        var shapes = model.named_parameters()                                 // "blocks.0.sequence_mixer.nu_log [4]", ...
            .Select(np => $"{np.name} [{string.Join(", ", np.parameter.shape)}]")
            .ToList();
        var keys = model.state_dict().Keys.ToList();                          // parameters and buffers
        // end snippet
        return new ParametersResult(total, trainable, tree, shapes, keys, model.parameters().Sum(p => p.numel()));
    }

    /// <summary>What the variable-length snippet computed.</summary>
    public sealed record VariableLengthResult(int Sequences, double MaxDiffToOneAtATime, long[] PredictionShape);

    /// <summary>Predict for sequences of different lengths in one right-padded batch with their lengths.</summary>
    public static VariableLengthResult VariableLength()
    {
        // snippet: variable-length
        var lengths = new long[] { 12, 30, 7, 30 };
        var sequences = lengths.Select(l => randn(l, 2)).ToList();             // [L_i, 2] each
        using var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(2, 16)),
            ("model", new LRU(16, numBlocks: 2, stateDim: 16)),
            ("head", new ClassificationHead(16, 3)));
        net.eval();

        // Right-pad to the longest sequence; the padding's values do not matter.
        long longest = lengths.Max();
        using var batch = stack(sequences.Select(s => nn.functional.pad(s, new long[] { 0, 0, 0, longest - s.shape[0] })));
        using var lengthTensor = tensor(lengths);                               // int64 [B]
        using var logProbs = net.forward(batch, lengthTensor);                  // [B, 3]: each sequence's own prediction
        // end snippet
        using var scope = NewDisposeScope();
        double diff = sequences.Select((s, i) => TestUtil.MaxAbsDiff(logProbs[i], net.forward(s))).Max();
        var result = new VariableLengthResult(sequences.Count, diff, logProbs.shape);
        foreach (var t in sequences) t.Dispose();
        return result;
    }

    /// <summary>The tensors of a state and of all its children.</summary>
    public static IEnumerable<Tensor> StateTensors(StreamingState state) =>
        state.Tensors.Values.Concat(state.Children.SelectMany(StateTensors));
}
