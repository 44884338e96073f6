using Discretax.Blocks;
using Discretax.Models;
using Discretax.SequenceMixers;
using static TorchSharp.torch;

namespace Discretax.Tests.SequenceMixers;

public class DeltaNetSequenceMixerTests
{
    /// <summary>
    /// The mixer against its math written out step by step in float64 tensor ops (no kernel):
    /// projections, optional conv + SiLU, per-head L2 normalization x / (||x|| + 1e-6), optional query scaling,
    /// beta = sigmoid (x2 with negative eigenvalues), S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T,
    /// o_t = S_t^T q_t, optional per-head RMSNorm and gate, output projection. Tolerance 1e-11.
    /// </summary>
    [Theory]
    [InlineData(false, false, false, false, false, false, 64)]
    [InlineData(true, true, true, true, true, true, 4)]
    [InlineData(true, false, false, true, false, false, 5)]
    public void ForwardEqualsTheStepByStepMath(bool betaPerHead, bool conv, bool scale, bool norm, bool gate, bool negative, int chunk)
    {
        const int h = 8, heads = 2, l = 13, batch = 2;
        using var m = new DeltaNetSequenceMixer(h, heads, chunkSize: chunk, betaPerHead: betaPerHead, useShortConv: conv,
            scaleQuery: scale, useOutputNorm: norm, useOutputGate: gate, allowNegativeEigenvalues: negative, useBias: true);
        m.to(ScalarType.Float64);
        if (norm) Reference.Set(m.o_norm!.weight!, TestUtil.Randn(new Generator(3), new long[] { 4 }));
        var g = new Generator(41);
        using var x = TestUtil.Randn(g, new long[] { batch, l, h });
        using var y = m.forward(x);

        using var scope = NewDisposeScope();
        int d = h / heads;
        Tensor q = x.matmul(m.q_proj.weight!.t()), k = x.matmul(m.k_proj.weight!.t()), v = x.matmul(m.v_proj.weight!.t());
        if (conv) { q = m.q_conv1d!.forward(q); k = m.k_conv1d!.forward(k); v = m.v_conv1d!.forward(v); }
        var beta = (x.matmul(m.beta_proj.weight!.t()) + m.beta_proj.bias!).sigmoid(); // [B, L, 1 or NH]
        if (negative) beta = beta * 2;
        var outputs = zeros(batch, l, heads, d, dtype: ScalarType.Float64);
        for (int b = 0; b < batch; b++)
            for (int hd = 0; hd < heads; hd++)
            {
                var s = zeros(d, d, dtype: ScalarType.Float64);
                for (int t = 0; t < l; t++)
                {
                    var qt = q[b, t].narrow(0, hd * d, d); var kt = k[b, t].narrow(0, hd * d, d); var vt = v[b, t].narrow(0, hd * d, d);
                    qt = qt / (qt.norm() + 1e-6);
                    kt = kt / (kt.norm() + 1e-6);
                    if (scale) qt = qt / Math.Sqrt(d);
                    var bt = beta[b, t][betaPerHead ? hd : 0];
                    s = s + bt * outer(kt, vt - s.t().matmul(kt));
                    outputs[b, t, hd] = s.t().matmul(qt);
                }
            }
        var o = outputs;
        if (norm) o = m.o_norm!.forward(o);
        if (gate) o = o * nn.functional.silu(x.matmul(m.g_proj!.weight!.t())).view(batch, l, heads, d);
        var expected = o.reshape(batch, l, h).matmul(m.out_proj.weight!.t()) + m.out_proj.bias!;
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-11);
    }

    [Fact]
    public void TheModelsOutputDoesNotDependOnTheChunkSize()
    {
        using var reference = new DeltaNet(16, numBlocks: 2, numHeads: 2, chunkSize: 64);
        reference.to(ScalarType.Float64).eval();
        var g = new Generator(42);
        using var x = TestUtil.Randn(g, new long[] { 2, 37, 16 });
        using var y = reference.forward(x);
        foreach (int chunk in new[] { 1, 7 })
        {
            using var other = new DeltaNet(16, numBlocks: 2, numHeads: 2, chunkSize: chunk);
            other.to(ScalarType.Float64).eval();
            other.load_state_dict(reference.state_dict());
            using var yc = other.forward(x);
            TestUtil.MaxAbsDiff(yc, y).Should().BeLessThan(1e-11, $"chunk size {chunk}");
        }
    }

    [Fact]
    public void ParameterNamesFollowTheReferences()
    {
        using var plain = new DeltaNetSequenceMixer(8, 2);
        plain.state_dict().Keys.Should().BeEquivalentTo("q_proj.weight", "k_proj.weight", "v_proj.weight", "beta_proj.weight", "out_proj.weight");
        using var full = new DeltaNetSequenceMixer(8, 2, betaPerHead: true, useShortConv: true, useOutputNorm: true, useOutputGate: true);
        full.state_dict().Keys.Should().Contain(new[] { "q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight", "o_norm.weight", "g_proj.weight" });
        full.beta_proj.weight!.shape.Should().Equal(2, 8);
        using var model = new DeltaNet(8, numBlocks: 1, numHeads: 2);
        model.state_dict().Keys.Should().Contain("blocks.0.sequence_mixer.q_proj.weight").And.Contain("blocks.0.channel_mixer.w1.weight")
            .And.NotContain("blocks.0.channel_mixer.w1.bias").And.NotContain("blocks.0.sequence_mixer.q_conv1d.weight");
        using var flaModel = new DeltaNet(8, numBlocks: 2, numHeads: 2, useShortConv: true, useOutputNorm: true, useOutputGate: true);
        flaModel.state_dict().Keys.Should().Contain(new[] { "blocks.1.sequence_mixer.q_conv1d.weight", "blocks.1.sequence_mixer.o_norm.weight",
            "blocks.1.sequence_mixer.g_proj.weight" });
        using var stack = new TransformerDeltaNet(8, chunkSize: 4, numLayers: 2);
        stack.state_dict().Keys.Should().Contain("layers.1.attention.q_conv1d.weight").And.Contain("layers.0.ffn.w3.weight").And.Contain("final_norm.weight");
    }

    [Fact]
    public void TransformerBlockIsTwoPreNormResiduals()
    {
        using var block = new TransformerBlock(8, chunkSize: 4, ffHiddenDim: 24, numHeads: 2);
        block.to(ScalarType.Float64);
        var g = new Generator(43);
        using var x = TestUtil.Randn(g, new long[] { 2, 9, 8 });
        using var y = block.forward(x);
        using var h1 = x + block.attention.forward(block.norm1.forward(x));
        using var expected = h1 + block.ffn.forward(block.norm2.forward(h1));
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-13);
        block.ffn.IntermediateDim.Should().Be(24);
        block.attention.q_conv1d.Should().NotBeNull("the package's attention convolves q, k and v");
    }

    [Fact]
    public void InvalidOptionsThrowNamingTheArgument()
    {
        ((Action)(() => new DeltaNetSequenceMixer(10, numHeads: 4))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("numHeads");
        ((Action)(() => new DeltaNetSequenceMixer(8, chunkSize: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("chunkSize");
        ((Action)(() => new DeltaNetSequenceMixer(8, headDim: 0))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("headDim");
        using var explicitHead = new DeltaNetSequenceMixer(10, numHeads: 4, headDim: 3);
        explicitHead.q_proj.weight!.shape.Should().Equal(12, 10);
    }
}
