using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.SequenceMixers;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Tests.Blocks;

public class MLSTMBlockTests
{
    // Layer norm over the last dimension with a gain and no bias, eps 1e-5, written out.
    private static Tensor LayerNorm(Tensor x, Tensor gain)
    {
        var c = x - x.mean(new long[] { -1 }, keepdim: true);
        return c / (c.square().mean(new long[] { -1 }, keepdim: true) + 1e-5).sqrt() * gain;
    }

    private static void Randomize(nn.Module m, Generator g)
    {
        using var _ = no_grad();
        foreach (var p in m.parameters())
        {
            using var r = randn(p.shape, dtype: ScalarType.Float64, generator: g);
            p.add_(r * 0.2);
        }
    }

    /// <summary>Prenorm: <c>h = x + layer(LN(x)); y = h + GLU(LN'(h))</c>, against the submodules composed by hand with the
    /// norm written out (1e-12, float64, eval mode).</summary>
    [Fact]
    public void PrenormIsTwoResidualBranches()
    {
        using var block = new MLSTMBlock(8, new MLSTMSequenceMixer(8, chunkSize: 4), new GLU(8));
        block.to(ScalarType.Float64);
        block.eval();
        var g = new Generator(201);
        Randomize(block, g);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 8 });
        using var _ = no_grad();
        using var y = block.forward(x);
        var h = x + block.xlstm.forward(LayerNorm(x, ((TorchSharp.Modules.LayerNorm)block.xlstm_norm).weight!));
        var expected = h + block.ffn!.forward(LayerNorm(h, ((TorchSharp.Modules.LayerNorm)block.ffn_norm!).weight!));
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-12);
        block.state_dict().Keys.Should().Contain(new[] { "xlstm_norm.weight", "ffn_norm.weight", "xlstm.proj_up.weight", "ffn.w1.weight" });
        block.state_dict().Keys.Should().NotContain("xlstm_norm.bias", "xLSTM's layer norm has no bias");
    }

    /// <summary>Postnorm without a channel mixer: <c>y = LN(x + layer(x))</c> (1e-12).</summary>
    [Fact]
    public void PostnormNormalizesTheSum()
    {
        using var block = new MLSTMBlock(8, new MLSTMSequenceMixer(8, chunkSize: 4), prenorm: false);
        block.to(ScalarType.Float64);
        block.eval();
        var g = new Generator(202);
        Randomize(block, g);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 8 });
        using var _ = no_grad();
        using var y = block.forward(x);
        var expected = LayerNorm(x + block.xlstm.forward(x), ((TorchSharp.Modules.LayerNorm)block.xlstm_norm).weight!);
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-12);
        block.ffn.Should().BeNull();
        block.ffn_norm.Should().BeNull();
    }

    // RMS norm over the last dimension with a gain, eps given, written out.
    private static Tensor Rms(Tensor x, Tensor gain, double eps) =>
        x / (x.square().mean(new long[] { -1 }, keepdim: true) + eps).sqrt() * gain;

    /// <summary>xlstm-jax's block (add_post_norm, norm_eps 1e-6, RMS norms, the gated GELU feed-forward):
    /// <c>h = x + post(layer(norm(x))); y = h + post'(ffn(norm'(h)))</c>, every norm written out with eps 1e-6
    /// (1e-12, float64, eval); the four norms are named as in xlstm-jax.</summary>
    [Fact]
    public void PostNormNormalizesEachBranchOutputBeforeTheSum()
    {
        using var block = new MLSTMBlock(8, new MLSTMSequenceMixer(8, chunkSize: 4), new GatedFeedForward(8, 64),
            norm: NormKind.Rms, normEps: 1e-6, addPostNorm: true);
        block.AddPostNorm.Should().BeTrue();
        block.NormEps.Should().Be(1e-6);
        block.to(ScalarType.Float64);
        block.eval();
        var g = new Generator(203);
        Randomize(block, g);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 8 }) * 0.01;   // small: the eps matters
        using var _ = no_grad();
        using var y = block.forward(x);
        Tensor W(nn.Module<Tensor, Tensor>? n) => ((Discretax.Layers.RMSNorm)n!).weight!;
        var h = x + Rms(block.xlstm.forward(Rms(x, W(block.xlstm_norm), 1e-6)), W(block.xlstm_post_norm), 1e-6);
        var expected = h + Rms(block.ffn!.forward(Rms(h, W(block.ffn_norm), 1e-6)), W(block.ffn_post_norm), 1e-6);
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-12);
        block.state_dict().Keys.Should().Contain(new[] { "xlstm_norm.weight", "xlstm_post_norm.weight", "ffn_norm.weight",
            "ffn_post_norm.weight", "ffn.proj_up_gate.weight" });
    }

    /// <summary>normEps reaches every norm of the block: xLSTM's layer norm with 1e-6 (xlstm-jax) instead of 1e-5.</summary>
    [Fact]
    public void NormEpsReachesEveryNorm()
    {
        using var block = new MLSTMBlock(8, new MLSTMSequenceMixer(8, chunkSize: 4), new GLU(8), normEps: 1e-6, addPostNorm: true);
        foreach (var n in new[] { block.xlstm_norm, block.ffn_norm, block.xlstm_post_norm, block.ffn_post_norm })
            ((TorchSharp.Modules.LayerNorm)n!).eps.Should().Be(1e-6);
        using var standard = new MLSTMBlock(8, new MLSTMSequenceMixer(8, chunkSize: 4), norm: NormKind.Rms);
        standard.NormEps.Should().Be(1e-6);
        using var layer = new MLSTMBlock(8, new MLSTMSequenceMixer(8, chunkSize: 4));
        ((TorchSharp.Modules.LayerNorm)layer.xlstm_norm).eps.Should().Be(1e-5);
        FluentActions.Invoking(() => new MLSTMBlock(8, new MLSTMSequenceMixer(8), normEps: 0)).Should()
            .Throw<ArgumentException>().Which.ParamName.Should().Be("normEps");
    }

    /// <summary>Mismatched parts and bad options throw naming the argument.</summary>
    [Fact]
    public void BadArgumentsThrowNamingTheArgument()
    {
        var cases = new (Func<MLSTMBlock> Make, string Param)[]
        {
            (() => new MLSTMBlock(8, new MLSTMSequenceMixer(16)), "xlstm"),
            (() => new MLSTMBlock(8, new MLSTMV1SequenceMixer(16)), "xlstm"),
            (() => new MLSTMBlock(8, new MLSTMSequenceMixer(8), new GLU(8, 4)), "ffn"),
            (() => new MLSTMBlock(8, new MLSTMSequenceMixer(8), dropRate: 1), "dropRate"),
            (() => new MLSTMBlock(8, new MLSTMSequenceMixer(8), norm: (NormKind)9), "norm"),
        };
        foreach (var (make, param) in cases)
            make.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(param);
    }
}
