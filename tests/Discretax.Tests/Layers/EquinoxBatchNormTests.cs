using Discretax.Blocks;
using Discretax.ChannelMixers;
using Discretax.Layers;
using Discretax.Models;
using static TorchSharp.torch;

namespace Discretax.Tests.Layers;

public class EquinoxBatchNormTests
{
    /// <summary>
    /// Three training steps and an eval step against equinox's mode="ema" rule evaluated with doubles per feature
    /// (no tensor statistics): step 1 normalizes with the batch's own mean and biased variance and stores them; later
    /// steps normalize with 0.01 batch + 0.99 running and store that; eval uses the stored statistics. 1e-12, float64.
    /// </summary>
    [Fact]
    public void TrainingFollowsEquinoxsEmaRule()
    {
        const int rows = 7, features = 3;
        using var norm = new EquinoxBatchNorm(features);
        norm.to(ScalarType.Float64);
        norm.train();
        var gen = new Generator(31);
        double[] runMean = new double[features], runVar = new double[features];
        for (int step = 0; step < 4; step++)
        {
            bool eval = step == 3;
            if (eval) norm.eval();
            using var x = TestUtil.Randn(gen, new long[] { 1, rows, features }) * (step + 1) + step;
            using var y = norm.forward(x);
            var xs = TestUtil.Values(x); var ys = TestUtil.Values(y);
            for (int f = 0; f < features; f++)
            {
                double mean, variance;
                if (eval) { mean = runMean[f]; variance = runVar[f]; }
                else
                {
                    double bm = Enumerable.Range(0, rows).Average(r => xs[r * features + f]);
                    double bv = Enumerable.Range(0, rows).Average(r => Math.Pow(xs[r * features + f] - bm, 2));
                    mean = step == 0 ? bm : 0.01 * bm + 0.99 * runMean[f];
                    variance = step == 0 ? bv : 0.01 * bv + 0.99 * runVar[f];
                    runMean[f] = mean; runVar[f] = variance;
                }
                for (int r = 0; r < rows; r++)
                    ys[r * features + f].Should().BeApproximately((xs[r * features + f] - mean) / Math.Sqrt(variance + 1e-5), 1e-12, $"step {step}");
            }
            TestUtil.Values(norm.RunningMean).Should().Equal(runMean, (a, b) => Math.Abs(a - b) < 1e-12);
            TestUtil.Values(norm.RunningVar).Should().Equal(runVar, (a, b) => Math.Abs(a - b) < 1e-12);
        }
        norm.StepsTaken.Should().Be(3);
        // The statistics live in the registered buffers (after .to(Float64) too): state_dict sees what forward wrote.
        norm.RunningMean.dtype.Should().Be(ScalarType.Float64);
        TestUtil.Values(norm.state_dict()["running_mean"]).Should().Equal(runMean, (a, b) => Math.Abs(a - b) < 1e-12);
        TestUtil.Values(norm.state_dict()["running_var"]).Should().Equal(runVar, (a, b) => Math.Abs(a - b) < 1e-12);
    }

    /// <summary>
    /// Gradients flow through the batch statistics with their weight (1 on the first step, 0.01 after) and not into the
    /// stored running statistics: against the same formula written in tensor ops with the running statistics as
    /// constants (float64, 1e-12), and the second step's gradient differs from plain batch norm's (the test can fail).
    /// </summary>
    [Fact]
    public void GradientsSeeTheBatchStatisticsWithTheirWeight()
    {
        using var norm = new EquinoxBatchNorm(4);
        norm.to(ScalarType.Float64);
        norm.train();
        var gen = new Generator(32);
        using var first = TestUtil.Randn(gen, new long[] { 6, 4 });
        norm.forward(first).Dispose();
        var runMean = norm.RunningMean.clone(); var runVar = norm.RunningVar.clone();
        using var x = TestUtil.Randn(gen, new long[] { 6, 4 }).requires_grad_();
        using var w = TestUtil.Randn(gen, new long[] { 6, 4 });
        (norm.forward(x) * w).sum().backward();
        var expectedGrad = x.detach().clone().requires_grad_();
        var bm = expectedGrad.mean(new long[] { 0 });
        var bv = (expectedGrad - bm).square().mean(new long[] { 0 });
        var mean = 0.01 * bm + 0.99 * runMean;
        var variance = 0.01 * bv + 0.99 * runVar;
        (((expectedGrad - mean) / (variance + 1e-5).sqrt()) * w).sum().backward();
        TestUtil.MaxAbsDiff(x.grad!, expectedGrad.grad!).Should().BeLessThan(1e-12);
        var plain = x.detach().clone().requires_grad_();
        (nn.functional.batch_norm(plain, null, null, training: true, eps: 1e-5) * w).sum().backward();
        TestUtil.MaxAbsDiff(x.grad!, plain.grad!).Should().BeGreaterThan(1e-3);
    }

    /// <summary>GELUTanh is jax.nn.gelu's default, 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))), evaluated with doubles (1e-12).</summary>
    [Fact]
    public void GeluTanhIsJaxsDefault()
    {
        using var x = linspace(-6, 6, 49, dtype: ScalarType.Float64);
        using var y = Activation.GELUTanh.Apply(x);
        var xs = TestUtil.Values(x); var ys = TestUtil.Values(y);
        for (int i = 0; i < xs.Length; i++)
        {
            double v = xs[i];
            ys[i].Should().BeApproximately(0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))), 1e-12);
        }
        TestUtil.MaxAbsDiff(y, Activation.GELU.Apply(x)).Should().BeGreaterThan(1e-4, "the exact GELU is another function");
    }

    /// <summary>discretax's block: the norm and the activation reach the block; eval mode streams (contract suite) and is per position.</summary>
    [Fact]
    public void DiscretaxExactBlocksUseBoth()
    {
        using var model = new LRU(8, numBlocks: 2, norm: NormKind.EquinoxBatch, activation: Activation.GELUTanh);
        var block = (StandardBlock)model.blocks[0];
        block.norm.Should().BeOfType<EquinoxBatchNorm>();
        block.Activation.Should().Be(Activation.GELUTanh);
        model.state_dict().Keys.Should().Contain("blocks.0.norm.running_mean").And.Contain("blocks.0.norm.num_batches_tracked");
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        ((Action)(() => new EquinoxBatchNorm(4, momentum: 1))).Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("momentum");
        using var norm = new EquinoxBatchNorm(4);
        ((Action)(() => norm.forward(zeros(2, 3)))).Should().Throw<ArgumentException>().Which.ParamName.Should().Be("x");
    }
}
