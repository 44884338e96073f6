using MnistClassifier.Data;
using MnistClassifier.Models;
using static TorchSharp.torch;

namespace MnistClassifier.Tests.Models;

public class ModelCatalogTests
{
    [Fact]
    public void Names_are_unique_and_the_default_is_registered()
    {
        ModelCatalog.Names.Should().OnlyHaveUniqueItems().And.Contain(ModelCatalog.DefaultName);
        ModelCatalog.Get(ModelCatalog.DefaultName.ToUpperInvariant()).Name.Should().Be(ModelCatalog.DefaultName);
    }

    [Fact]
    public void Unknown_model_lists_the_known_ones()
    {
        var act = () => ModelCatalog.Get("transformer");
        act.Should().Throw<ArgumentException>().WithMessage($"Unknown model 'transformer'; expected one of: *{ModelCatalog.DefaultName}*");
    }

    [Theory]
    [InlineData(SequenceLayout.Rows, 28, 28)]
    [InlineData(SequenceLayout.Pixels, 784, 1)]
    public void Every_model_maps_sequences_to_log_probabilities(SequenceLayout layout, int length, int features)
    {
        var g = new Generator(5);
        foreach (var name in ModelCatalog.Names)
        {
            using var net = ModelCatalog.Build(new NetworkSpec(name, layout, 8, 2, 0.0, features, length));
            net.eval();
            using var x = randn(new long[] { 3, length, features }, generator: g);
            using var y = net.forward(x);
            y.shape.Should().Equal(3, 10);
            (y.exp().sum(1) - 1).abs().max().item<float>().Should().BeLessThan(1e-5f);
        }
    }

    [Fact]
    public void Invalid_specs_are_refused()
    {
        var ok = new NetworkSpec(ModelCatalog.DefaultName, SequenceLayout.Rows, 8, 1, 0.1, 28, 28);
        ((Action)(() => ModelCatalog.Build(ok with { Hidden = 0 }))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("Hidden");
        ((Action)(() => ModelCatalog.Build(ok with { DropRate = 1 }))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("DropRate");
    }
}
