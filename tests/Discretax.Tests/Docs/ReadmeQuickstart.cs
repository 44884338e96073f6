// The README's Quickstart (the csharp block under "## Quickstart"), verbatim up to indentation: the using directives
// below and the statements of Run (ReadmeDocTests checks both against README.md and runs it). The top-level program
// becomes one method; its Console.WriteLine calls reach the nested Console class, which records the lines instead of
// printing them, so the test can read what the program reports.

// snippet: readme-quickstart
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Models;
using TorchSharp;
using static TorchSharp.torch;
// end snippet

namespace Discretax.Tests.Docs;

/// <summary>The README's Quickstart as a method.</summary>
public static class ReadmeQuickstart
{
    /// <summary>Runs the Quickstart and returns the lines it printed.</summary>
    public static IReadOnlyList<string> Run()
    {
        var printed = new List<string>();
        Console.Lines = printed;
        try
        {
            // snippet: readme-quickstart
            // Task: is the sum over time of channel 0 minus channel 1 positive? 256 sequences of 32 steps.
            torch.manual_seed(0);
            const int features = 2, hidden = 32;
            var x = randn(256, 32, features);
            var y = ((x.select(2, 0) - x.select(2, 1)).sum(1) > 0).to(ScalarType.Int64);

            // An LRU classifier: SequenceNetwork composes like torch.nn.Sequential (same state_dict keys) and also streams.
            using var net = new SequenceNetwork(
                ("encoder", new LinearEncoder(features, hidden)),          // [B, L, 2]  -> [B, L, 32]
                ("model", new LRU(hidden, numBlocks: 2, stateDim: 32)),    // [B, L, 32] -> [B, L, 32]
                ("head", new ClassificationHead(hidden, 2)));              // [B, L, 32] -> [B, 2] log-probabilities

            using var opt = optim.AdamW(net.parameters(), lr: 3e-3);
            net.train();
            for (int step = 1; step <= 100; step++)
            {
                using var scope = NewDisposeScope();   // every temporary of the step is freed here
                opt.zero_grad();
                var loss = nn.functional.nll_loss(net.forward(x), y);
                loss.backward();
                opt.step();
                if (step % 25 == 0) Console.WriteLine($"step {step}: loss {loss.item<float>():F3}");
            }

            net.eval();
            using (no_grad())
            {
                var accuracy = (net.forward(x).argmax(1) == y).to(ScalarType.Float32).mean().item<float>();
                Console.WriteLine($"training accuracy {accuracy:P1}");

                // Streaming: pieces continue from the state; the encoder applies per step, the LRU carries its recurrent state,
                // the pooling head the running mean. The last piece's output equals one full forward.
                var (first, state) = net.Stream(x.narrow(1, 0, 4));
                var (rest, state2) = net.Stream(x.narrow(1, 4, 28), state);
                Console.WriteLine($"streamed in two pieces vs full forward: max |diff| = {(rest - net.forward(x)).abs().max().item<float>():E1}");
            }
            // end snippet
        }
        finally
        {
            Console.Lines = null;
        }
        return printed;
    }

    /// <summary>Stands in for <see cref="System.Console"/> in <see cref="Run"/>: records the printed lines.</summary>
    private static class Console
    {
        [ThreadStatic] public static List<string>? Lines;

        public static void WriteLine(string line) => (Lines ?? throw new InvalidOperationException("Not inside Run.")).Add(line);
    }
}
