using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.Models;

public class S4DTests
{
    [Fact]
    public void IsAStackOfStandardBlocksWithTheS4DMixerAndGLU()
    {
        using var model = new S4D(8, numBlocks: 3, stateDim: 4, dtMin: 0.01, dtMax: 0.02, dropRate: 0.2, prenorm: false, useBias: false);
        model.NumBlocks.Should().Be(3);
        model.StateDim.Should().Be(4);
        foreach (var block in model.blocks)
        {
            var sb = block.Should().BeOfType<StandardBlock>().Subject;
            sb.Prenorm.Should().BeFalse();
            var mixer = sb.sequence_mixer.Should().BeOfType<S4DSequenceMixer>().Subject;
            mixer.StateDim.Should().Be(4);
            mixer.DtMin.Should().Be(0.01);
            mixer.DtMax.Should().Be(0.02);
            mixer.UseD.Should().BeFalse();
            mixer.Transposed.Should().BeFalse();
            sb.channel_mixer.Should().BeOfType<GLU>();
        }
        var keys = model.state_dict().Keys.ToList();
        keys.Should().Contain(new[] { "blocks.0.sequence_mixer.log_dt", "blocks.2.sequence_mixer.C", "blocks.1.channel_mixer.w1.weight" });
        keys.Should().NotContain(k => k.EndsWith("w1.bias"), "useBias: false");
        var logDt = TestUtil.Values(model.blocks[1].state_dict()["sequence_mixer.log_dt"]);
        logDt.Should().AllSatisfy(v => v.Should().BeInRange(Math.Log(0.01) - 1e-6, Math.Log(0.02) + 1e-6));
    }

    [Fact]
    public void DefaultsFollowTheIssue()
    {
        using var model = new S4D(4);
        model.NumBlocks.Should().Be(4);
        model.StateDim.Should().Be(64);
        var block = (StandardBlock)model.blocks[0];
        block.Prenorm.Should().BeTrue();
        block.state_dict().Keys.Should().Contain("channel_mixer.w1.bias");
    }

    [Fact]
    public void BadArgumentsThrowNamingThem()
    {
        void Throws(Action make, string name) =>
            make.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be(name);
        Throws(() => new S4D(0), "hiddenDim");
        Throws(() => new S4D(4, numBlocks: 0), "numBlocks");
        Throws(() => new S4D(4, stateDim: 5), "stateDim");
        Throws(() => new S4D(4, dtMin: -1), "dtMin");
        Throws(() => new S4D(4, dropRate: 1.0), "dropRate");
    }

    [Fact]
    public void TrainsInASequentialWithoutErrors()
    {
        // No dropout: its masks come from the global generator, which parallel tests share, and made the loss of
        // 15 steps occasionally end above the first one.
        using var model = new S4D(6, numBlocks: 2, stateDim: 8, dropRate: 0.0);
        var g = new Generator(3);
        using var x = TestUtil.Randn(g, new long[] { 4, 20, 6 }, ScalarType.Float32);
        using var opt = optim.AdamW(model.parameters(), lr: 1e-2);
        double first = 0, last = 0;
        model.train();
        for (int step = 0; step < 15; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = (model.forward(x) - x.roll(1, 1)).square().mean();
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        double.IsFinite(last).Should().BeTrue();
        last.Should().BeLessThan(first, "a few AdamW steps on a fixed batch lower the loss");
    }
}
