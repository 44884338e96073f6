using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.SequenceMixers;

using static TorchSharp.torch;

namespace Discretax.Tests.Blocks;

public class StandardBlockTests
{
    /// <summary>
    /// Prenorm block with batch norm in train mode, identity mixer, GLU, no dropout, against a scalar loop:
    /// skip + GLU(gelu(bn(x))), with bn statistics per channel over batch and time (biased variance), eps 1e-5.
    /// Also the running statistics after one step (momentum 0.01, unbiased variance).
    /// </summary>
    [Fact]
    public void PrenormBatchNormBlockMatchesTheScalarLayout()
    {
        const int b = 2, l = 3, h = 2;
        using var glu = new GLU(h);
        using var block = new StandardBlock(h, new IdentitySequenceMixer(h), glu, dropRate: 0);
        block.to(ScalarType.Float64);
        var w1 = Reference.Matrix(h, h, 1); var b1 = Reference.Vector(h, 2);
        var w2 = Reference.Matrix(h, h, 3); var b2 = Reference.Vector(h, 4);
        Reference.Set(glu.w1.weight!, Reference.ToTensor(w1)); Reference.Set(glu.w1.bias!, Reference.ToTensor(b1));
        Reference.Set(glu.w2.weight!, Reference.ToTensor(w2)); Reference.Set(glu.w2.bias!, Reference.ToTensor(b2));
        var x = Enumerable.Range(0, b * l * h).Select(i => Math.Sin(1.1 * i) * (1 + i % 3)).ToArray();
        block.train();
        using var y = block.forward(tensor(x, new long[] { b, l, h }, ScalarType.Float64));

        var mean = new double[h]; var varB = new double[h];
        for (int c = 0; c < h; c++)
        {
            var vals = Enumerable.Range(0, b * l).Select(i => x[i * h + c]).ToArray();
            mean[c] = vals.Average();
            varB[c] = vals.Select(v => (v - mean[c]) * (v - mean[c])).Sum() / vals.Length;
        }
        var actual = TestUtil.Values(y);
        for (int i = 0; i < b * l; i++)
        {
            var u = Enumerable.Range(0, h).Select(c => Reference.Gelu((x[i * h + c] - mean[c]) / Math.Sqrt(varB[c] + 1e-5))).ToArray();
            var v = Reference.Linear(u, w1, b1); var gate = Reference.Linear(u, w2, b2);
            for (int c = 0; c < h; c++)
                actual[i * h + c].Should().BeApproximately(x[i * h + c] + v[c] * Reference.Sigmoid(gate[c]), 1e-12);
        }

        var bn = (TorchSharp.Modules.BatchNorm1d)block.norm;
        var runningMean = TestUtil.Values(bn.running_mean!);
        var runningVar = TestUtil.Values(bn.running_var!);
        for (int c = 0; c < h; c++)
        {
            runningMean[c].Should().BeApproximately(0.01 * mean[c], 1e-14);
            runningVar[c].Should().BeApproximately(0.99 + 0.01 * varB[c] * b * l / (b * l - 1), 1e-14);
        }
        bn.parameters().Should().BeEmpty("discretax's batch norm has no affine parameters");
    }

    /// <summary>Postnorm with RMS norm: rmsnorm(x + MLP(gelu(conv(x)))), in eval mode, against the submodules applied by hand.</summary>
    [Fact]
    public void PostnormAppliesTheNormAfterTheResidual()
    {
        const int h = 4;
        using var conv = new ShortConvolution(h, useSilu: false);
        using var mlp = new MLPChannelMixer(h, nonLinearity: Activation.Tanh);
        using var block = new StandardBlock(h, conv, mlp, dropRate: 0.5, prenorm: false, norm: NormKind.Rms);
        block.to(ScalarType.Float64).eval();
        var g = new Generator(9);
        using var x = TestUtil.Randn(g, new long[] { 2, 5, h });
        using var y = block.forward(x);
        using var norm = new RMSNorm(h);
        norm.to(ScalarType.Float64);
        using var expected = norm.forward(x + mlp.forward(nn.functional.gelu(conv.forward(x))));
        TestUtil.MaxAbsDiff(y, expected).Should().BeLessThan(1e-13);
    }

    [Fact]
    public void DropoutActsInTrainModeOnly()
    {
        const int h = 8;
        using var block = new StandardBlock(h, new IdentitySequenceMixer(h), new GLU(h), dropRate: 0.5, norm: NormKind.Layer);
        block.to(ScalarType.Float64);
        var g = new Generator(10);
        using var x = TestUtil.Randn(g, new long[] { 4, 16, h });
        block.eval();
        using var e1 = block.forward(x);
        using var e2 = block.forward(x);
        TestUtil.MaxAbsDiff(e1, e2).Should().Be(0);
        block.train();
        using var t1 = block.forward(x);
        TestUtil.MaxAbsDiff(t1, e1).Should().BeGreaterThan(1e-3);
    }

    [Fact]
    public void MismatchedPartsAreRejected()
    {
        var wrongMixer = () => new StandardBlock(8, new IdentitySequenceMixer(4), new GLU(8));
        wrongMixer.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("sequenceMixer");
        var wrongChannel = () => new StandardBlock(8, new IdentitySequenceMixer(8), new GLU(8, outFeatures: 4));
        wrongChannel.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("channelMixer");
        var wrongRate = () => new StandardBlock(8, new IdentitySequenceMixer(8), new GLU(8), dropRate: 1);
        wrongRate.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("dropRate");
    }
}
