using Discretax.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Tests.Blocks;

public class NormsTests
{
    /// <summary>
    /// Batch norm on a right-padded batch in training: normalized with the valid rows' statistics and updating the
    /// running averages from them alone, exactly as the valid rows fed to batch norm by themselves (float64, 1e-12);
    /// padded rows come out as zeros.
    /// </summary>
    [Fact]
    public void BatchNormInTrainingCountsValidStepsOnly()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(1);
        var x = TestUtil.Randn(g, new long[] { 3, 6, 4 });
        var valid = tensor(new long[] { 6, 2, 4 }).unsqueeze(1) > arange(6, dtype: ScalarType.Int64).unsqueeze(0);   // [3, 6]
        var padded = (BatchNorm1d)Norms.Create(NormKind.Batch, 4);
        var alone = (BatchNorm1d)Norms.Create(NormKind.Batch, 4);
        padded.to(ScalarType.Float64);
        alone.to(ScalarType.Float64);
        padded.train();
        alone.train();
        var y = NormKind.Batch.Apply(padded, x, valid);
        var rows = x.reshape(-1, 4)[valid.reshape(-1)];                        // the 12 valid rows
        var expected = alone.forward(rows);
        TestUtil.MaxAbsDiff(y.reshape(-1, 4)[valid.reshape(-1)], expected).Should().BeLessThan(1e-12);
        y.reshape(-1, 4)[valid.reshape(-1).logical_not()].abs().max().item<double>().Should().Be(0);
        TestUtil.MaxAbsDiff(padded.running_mean!, alone.running_mean!).Should().BeLessThan(1e-15);
        TestUtil.MaxAbsDiff(padded.running_var!, alone.running_var!).Should().BeLessThan(1e-15);
        // Without the mask the padded rows would count: the statistics differ (the test can fail).
        var unmasked = (BatchNorm1d)Norms.Create(NormKind.Batch, 4);
        unmasked.to(ScalarType.Float64);
        unmasked.train();
        NormKind.Batch.Apply(unmasked, x);
        TestUtil.MaxAbsDiff(unmasked.running_mean!, alone.running_mean!).Should().BeGreaterThan(1e-6);
    }

    [Fact]
    public void InEvalModeAndForPerPositionNormsTheMaskChangesNothing()
    {
        using var scope = NewDisposeScope();
        var x = TestUtil.Randn(new Generator(2), new long[] { 2, 5, 4 });
        var valid = tensor(new long[] { 5, 3 }).unsqueeze(1) > arange(5, dtype: ScalarType.Int64).unsqueeze(0);
        foreach (var kind in Enum.GetValues<NormKind>())
        {
            var norm = Norms.Create(kind, 4);
            norm.to(ScalarType.Float64);
            if (kind is NormKind.Batch or NormKind.EquinoxBatch) norm.eval();
            TestUtil.Values(kind.Apply(norm, x, valid)).Should().Equal(TestUtil.Values(kind.Apply(norm, x)), kind.ToString());
        }
    }
}
