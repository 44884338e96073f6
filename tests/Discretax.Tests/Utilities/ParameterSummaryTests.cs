using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Utilities;

namespace Discretax.Tests.Utilities;

public class ParameterSummaryTests
{
    [Fact]
    public void CountsAndTreeMatchHandCountedParameters()
    {
        // GLU(4): two 4x4 weights + two biases = 40; ShortConvolution(4, K=4, no bias): 16; batch norm: 0.
        using var block = new StandardBlock(4, new ShortConvolution(4), new GLU(4));
        ParameterSummary.Count(block).Should().Be(56);
        string tree = ParameterSummary.Tree(block, "block");
        tree.Should().Contain("block (StandardBlock): 56");
        tree.Should().Contain("channel_mixer (GLU): 40");
        tree.Should().Contain("sequence_mixer (ShortConvolution): 16");
        tree.Should().Contain("weight [4, 1, 4]: 16");
        tree.TrimEnd().Should().EndWith("Total parameters: 56");
        block.sequence_mixer.parameters().First().requires_grad = false;
        ParameterSummary.Count(block, trainableOnly: true).Should().Be(40);
    }
}
