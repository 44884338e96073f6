using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Layers;
using Discretax.Models;
using static TorchSharp.torch;

namespace Discretax.Tests.EndToEnd;

public class SequentialTrainingTests
{
    /// <summary>
    /// encoder -> stack of blocks -> head in torch.nn.Sequential learns a synthetic sequence task in 50 AdamW
    /// steps: the class is whether the sum over time of channel 0 minus channel 1 is positive. The mean loss of the last 5 steps must fall below half of the first step's loss
    /// (chance level is ln 2 ~ 0.69).
    /// </summary>
    [Fact]
    public void EncoderModelHeadInSequentialTrainsAndTheLossFalls()
    {
        const int b = 32, l = 12, features = 3, hidden = 16;
        var g = new Generator(2024);
        using var data = TestUtil.Randn(g, new long[] { 4 * b, l, features }, ScalarType.Float32);
        using var labels = ((data.select(2, 0) - data.select(2, 1)).sum(1) > 0).to(ScalarType.Int64);

        var model = new SequenceModel(hidden, new[]
        {
            new StandardBlock(hidden, new ShortConvolution(hidden), new GLU(hidden), dropRate: 0.0),
            new StandardBlock(hidden, new ShortConvolution(hidden), new GLU(hidden), dropRate: 0.0),
        });
        using var net = nn.Sequential(
            ("encoder", new LinearEncoder(features, hidden)),
            ("model", model),
            ("head", new ClassificationHead(hidden, 2)));
        using var opt = optim.AdamW(net.parameters(), lr: 1e-2);
        net.train();

        double first = double.NaN;
        var tail = new List<double>();
        for (int step = 0; step < 50; step++)
        {
            using var scope = NewDisposeScope();
            long start = step % 4 * b;
            var x = data.narrow(0, start, b);
            var y = labels.narrow(0, start, b);
            opt.zero_grad();
            var loss = nn.functional.nll_loss(net.forward(x), y);
            loss.backward();
            opt.step();
            double value = loss.item<float>();
            if (step == 0) first = value;
            if (step >= 45) tail.Add(value);
        }
        double last = tail.Average();
        first.Should().BeGreaterThan(0.5);
        last.Should().BeLessThan(first / 2, $"the loss fell from {first} to {last}");
    }
}
