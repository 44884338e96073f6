// Quickstart: compose encoder -> model -> head in a SequenceNetwork (torch.nn.Sequential's composition, which also
// streams), train a few steps on a synthetic sequence task, then stream the trained network one step at a time and
// compare with the full forward.
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Models;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

const int batch = 64, length = 32, features = 2, hidden = 32, steps = 60;
torch.manual_seed(0);
var g = new Generator(0);

// The task: is the sum over time of channel 0 minus channel 1 positive?
using var data = randn(new long[] { 4 * batch, length, features }, generator: g);
using var labels = ((data.select(2, 0) - data.select(2, 1)).sum(1) > 0).to(ScalarType.Int64);

// The model: the library's LRU (2 blocks of an LRU mixer and a GLU, batch norm, dropout, residuals).
var model = new LRU(hidden, numBlocks: 2, stateDim: 32);
// SequenceNetwork composes like torch.nn.Sequential (same state_dict keys) and also streams.
using var net = new SequenceNetwork(
    ("encoder", new LinearEncoder(features, hidden)),
    ("model", model),
    ("head", new ClassificationHead(hidden, 2)));
Console.Write(ParameterSummary.Tree(net, "net"));

using var opt = optim.AdamW(net.parameters(), lr: 3e-3);
net.train();
for (int step = 1; step <= steps; step++)
{
    using var scope = NewDisposeScope();
    long start = step % 4 * batch;
    opt.zero_grad();
    var loss = nn.functional.nll_loss(net.forward(data.narrow(0, start, batch)), labels.narrow(0, start, batch));
    loss.backward();
    opt.step();
    if (step % 10 == 0) Console.WriteLine($"step {step,3}  loss {loss.item<float>():F4}");
}

net.eval();
using (no_grad())
{
    using var scope = NewDisposeScope();
    var accuracy = (net.forward(data).argmax(1) == labels).to(ScalarType.Float32).mean().item<float>();
    Console.WriteLine($"accuracy on the {data.shape[0]} training sequences: {accuracy:P1}");

    // Streaming the whole network one step at a time: the encoder applies per step, the model carries its state,
    // and the pooling head carries the running mean, so after step t the output is the prediction for steps 0..t.
    var x = data.narrow(0, 0, 2);
    var full = net.forward(x);
    StreamingState? state = null;
    Tensor last = full;
    for (int t = 0; t < length; t++)
    {
        var (y, next) = net.Stream(x.narrow(1, t, 1), state);
        state?.Dispose();
        state = next;
        last = y;
    }
    state?.Dispose();
    var maxDiff = (last - full).abs().max().item<float>();
    Console.WriteLine($"streaming one step at a time vs full forward: max |diff| = {maxDiff:E2}");
}
