using Discretax.Blocks;
using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Models;
using Discretax.SequenceMixers;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Models;

public class MLSTMTests
{
    /// <summary>The default model is numBlocks prenorm xLSTM blocks (no channel mixer) followed by a bias-free layer
    /// norm; its forward equals the blocks applied in order and the norm written out (1e-12, float64, eval).
    /// The layers get the model's numBlocks (Wang init) and dropRate (their output dropout), 0 by default as in
    /// NX-AI xlstm and xlstm-jax (<c>dropout = 0.0</c>); the norms have eps 1e-5.</summary>
    [Fact]
    public void DefaultModelIsPrenormXlstmBlocksAndAPostBlocksNorm()
    {
        using var model = new MLSTM(16, numBlocks: 3, chunkSize: 4);
        model.NumBlocks.Should().Be(3);
        foreach (var block in model.blocks)
        {
            var b = block.Should().BeOfType<MLSTMBlock>().Subject;
            b.Prenorm.Should().BeTrue();
            b.ffn.Should().BeNull();
            var layer = b.xlstm.Should().BeOfType<MLSTMSequenceMixer>().Subject;
            layer.NumHeads.Should().Be(4);
            layer.InnerDim.Should().Be(64);
            layer.ChunkSize.Should().Be(4);
            layer.dropout.P.Should().Be(0.0);
            b.drop.P.Should().Be(0.0);
            b.NormEps.Should().Be(1e-5);
            b.xlstm_post_norm.Should().BeNull();
        }
        model.state_dict().Keys.Should().Contain("post_blocks_norm.weight").And.NotContain("post_blocks_norm.bias");
        model.to(ScalarType.Float64);
        model.eval();
        var g = new Generator(301);
        using var x = TestUtil.Randn(g, new long[] { 2, 7, 16 });
        using var _ = no_grad();
        using var y = model.forward(x);
        var h = x;
        foreach (var block in model.blocks) h = block.forward(h);
        var c = h - h.mean(new long[] { -1 }, keepdim: true);
        var expected = c / (c.square().mean(new long[] { -1 }, keepdim: true) + 1e-5).sqrt();
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-12);
    }

    /// <summary>layerType MLSTMV1 builds mlstm_v1 layers (with the model's heads, chunk size, dropout, numBlocks and
    /// layer options); the model's forward equals its blocks and norm (1e-12, float64, eval).</summary>
    [Fact]
    public void V1LayerTypeBuildsV1Layers()
    {
        using var model = new MLSTM(16, numBlocks: 2, numHeads: 2, chunkSize: 4, dropRate: 0.2, layerType: MLSTMLayerType.MLSTMV1,
            normType: MLSTMNormType.RMSNorm, gateSoftCap: 10.0);
        foreach (var block in model.blocks)
        {
            var layer = ((MLSTMBlock)block).xlstm.Should().BeOfType<MLSTMV1SequenceMixer>().Subject;
            layer.NumHeads.Should().Be(2);
            layer.ChunkSize.Should().Be(4);
            layer.NormType.Should().Be(MLSTMNormType.RMSNorm);
            layer.GateSoftCap.Should().Be(10.0);
            layer.dropout.P.Should().Be(0.2);
        }
        model.state_dict().Keys.Should().Contain("blocks.0.xlstm.dense_q.weight").And.NotContain(k => k.Contains("proj_up"));
        model.to(ScalarType.Float64);
        model.eval();
        var g = new Generator(303);
        using var x = TestUtil.Randn(g, new long[] { 2, 5, 16 });
        using var _ = no_grad();
        using var y = model.forward(x);
        var h = x;
        foreach (var block in model.blocks) h = block.forward(h);
        var c = h - h.mean(new long[] { -1 }, keepdim: true);
        TestUtil.MaxAbsDiff(y, c / (c.square().mean(new long[] { -1 }, keepdim: true) + 1e-5).sqrt()).Should().BeLessThan(1e-12);
    }

    /// <summary>Post-norm models have no final norm; useGlu adds a GLU branch to every block.</summary>
    [Fact]
    public void PostnormAndGluOptions()
    {
        using var model = new MLSTM(8, numBlocks: 2, prenorm: false, useGlu: true);
        model.post_blocks_norm.Should().BeNull();
        model.state_dict().Keys.Should().NotContain(k => k.StartsWith("post_blocks_norm"));
        foreach (var block in model.blocks)
        {
            var b = (MLSTMBlock)block;
            b.Prenorm.Should().BeFalse();
            b.ffn.Should().NotBeNull();
        }
    }

    /// <summary>encoder -> MLSTM -> head composes in Sequential and learns the sign-of-sum task: after 40 AdamW steps
    /// the mean loss of the last 5 steps is below 70% of the first step's.</summary>
    [Fact]
    public void ComposesInSequentialAndTrains()
    {
        const int b = 32, l = 12, features = 3, hidden = 16;
        var g = new Generator(302);
        using var data = TestUtil.Randn(g, new long[] { 4 * b, l, features }, ScalarType.Float32);
        using var labels = ((data.select(2, 0) - data.select(2, 1)).sum(1) > 0).to(ScalarType.Int64);
        using var net = nn.Sequential(
            ("encoder", new LinearEncoder(features, hidden)),
            ("model", new MLSTM(hidden, numBlocks: 2, dropRate: 0.0, chunkSize: 8)),
            ("head", new ClassificationHead(hidden, 2)));
        using var opt = optim.AdamW(net.parameters(), lr: 1e-2);
        net.train();
        double first = double.NaN;
        var tail = new List<double>();
        for (int step = 0; step < 40; step++)
        {
            using var scope = NewDisposeScope();
            long start = step % 4 * b;
            opt.zero_grad();
            var loss = nn.functional.nll_loss(net.forward(data.narrow(0, start, b)), labels.narrow(0, start, b));
            loss.backward();
            opt.step();
            double value = loss.item<float>();
            if (step == 0) first = value;
            if (step >= 35) tail.Add(value);
        }
        tail.Average().Should().BeLessThan(0.7 * first);
    }

    /// <summary>xlstm-jax's options: normEps 1e-6 in every block norm and in post_blocks_norm, post norms, the gated
    /// GELU feed-forward of width 64 ceil(1.3 H / 64) with Wang2 on every proj_down; the model's forward equals its
    /// blocks and the final norm with eps 1e-6 written out (1e-12, float64, eval).</summary>
    [Fact]
    public void XlstmJaxOptionsReachEveryBlock()
    {
        using var model = new MLSTM(16, numBlocks: 2, chunkSize: 4, normEps: 1e-6, addPostNorm: true, gatedFeedForward: true,
            outputInitFn: MLSTMOutputInit.Wang2);
        foreach (var block in model.blocks)
        {
            var b = (MLSTMBlock)block;
            b.NormEps.Should().Be(1e-6);
            b.xlstm_post_norm.Should().NotBeNull();
            b.ffn_post_norm.Should().NotBeNull();
            var ffn = b.ffn.Should().BeOfType<Discretax.ChannelMixers.GatedFeedForward>().Subject;
            ffn.UpProjDimension.Should().Be(64);
            ffn.ApproximateGelu.Should().BeTrue();
        }
        ((TorchSharp.Modules.LayerNorm)model.post_blocks_norm!).eps.Should().Be(1e-6);
        model.to(ScalarType.Float64);
        model.eval();
        using var x = TestUtil.Randn(new Generator(305), new long[] { 2, 5, 16 });
        using var _ = no_grad();
        using var y = model.forward(x);
        var h = x;
        foreach (var block in model.blocks) h = block.forward(h);
        var c = h - h.mean(new long[] { -1 }, keepdim: true);
        TestUtil.MaxAbsDiff(y, c / (c.square().mean(new long[] { -1 }, keepdim: true) + 1e-6).sqrt()).Should().BeLessThan(1e-12);
    }

    /// <summary>Bad options throw naming the argument (the layer's own checks pass through).</summary>
    [Fact]
    public void BadOptionsThrowNamingTheArgument()
    {
        var cases = new (Func<MLSTM> Make, string Param)[]
        {
            (() => new MLSTM(0), "hiddenDim"),
            (() => new MLSTM(8, numBlocks: 0), "numBlocks"),
            (() => new MLSTM(8, dropRate: -0.1), "dropRate"),
            (() => new MLSTM(8, numHeads: 3), "numHeads"),
            (() => new MLSTM(8, chunkSize: 0), "chunkSize"),
            (() => new MLSTM(8, layerType: (MLSTMLayerType)7), "layerType"),
            (() => new MLSTM(8, numHeads: 3, layerType: MLSTMLayerType.MLSTMV1), "numHeads"),
            (() => new MLSTM(8, normEps: -1), "normEps"),
            (() => new MLSTM(8, useGlu: true, gatedFeedForward: true), "gatedFeedForward"),
            (() => new MLSTM(8, gatedFeedForward: true, ffnProjFactor: 0), "ffnProjFactor"),
            (() => new MLSTM(8, outputInitFn: (MLSTMOutputInit)9), "outputInitFn"),
        };
        foreach (var (make, param) in cases)
            make.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }
}
