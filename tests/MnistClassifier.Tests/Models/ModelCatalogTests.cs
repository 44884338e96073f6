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
    public void Lru_starts_with_long_memory_on_long_sequences_only()
    {
        static double[] Moduli(NetworkSpec spec)
        {
            using var net = ModelCatalog.Build(spec);
            var lru = (Discretax.Models.LRU)net.named_children().Single(c => c.name == "model").module;
            var block = (Discretax.Blocks.StandardBlock)lru.blocks[0];
            using var lambda = ((Discretax.SequenceMixers.LRUSequenceMixer)block.sequence_mixer).Lambda();
            using var modulus = lambda.abs().to_type(ScalarType.Float64);
            return modulus.data<double>().ToArray();
        }
        var pixels = Moduli(new NetworkSpec("lru", SequenceLayout.Pixels, 8, 1, 0.0, 1, 784));
        pixels.Should().OnlyContain(r => r >= ModelCatalog.LongSequenceRMin - 1e-6 && r <= ModelCatalog.LongSequenceRMax + 1e-6);
        // 64 moduli uniform in area on [0, 1]: the chance that none is below 0.9 is 0.19^64.
        var rows = Moduli(new NetworkSpec("lru", SequenceLayout.Rows, 8, 1, 0.0, 28, 28));
        rows.Should().Contain(r => r < ModelCatalog.LongSequenceRMin);
    }

    [Fact]
    public void Block_discretax_gives_discretaxs_norm_and_activation_to_every_standard_block_model()
    {
        foreach (var entry in ModelCatalog.All.Where(e => e.StandardBlocks))
        {
            var spec = new NetworkSpec(entry.Name, SequenceLayout.Rows, 8, 1, 0.0, 28, 28, Block: BlockStyles.Discretax);
            using var net = ModelCatalog.Build(spec);
            var blocks = net.modules().OfType<Discretax.Blocks.StandardBlock>().ToList();
            blocks.Should().NotBeEmpty(entry.Name);
            blocks.Should().OnlyContain(b => b.Norm == Discretax.Blocks.NormKind.EquinoxBatch && b.Activation == Discretax.ChannelMixers.Activation.GELUTanh, entry.Name);
            using var library = ModelCatalog.Build(spec with { Block = BlockStyles.Library });
            library.modules().OfType<Discretax.Blocks.StandardBlock>().Should().OnlyContain(b => b.Norm == Discretax.Blocks.NormKind.Batch, entry.Name);
            spec.Describe().Should().EndWith(", discretax blocks");
        }
        var mlstm = new NetworkSpec("mlstm", SequenceLayout.Rows, 8, 1, 0.0, 28, 28, Block: BlockStyles.Discretax);
        ((Action)(() => ModelCatalog.Build(mlstm))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("Block");
    }

    [Fact]
    public void Deltanet_uses_flas_short_convolutions()
    {
        using var net = ModelCatalog.Build(new NetworkSpec("deltanet", SequenceLayout.Rows, 8, 2, 0.0, 28, 28));
        net.state_dict().Keys.Should().Contain(new[] { "model.blocks.0.sequence_mixer.q_conv1d.weight", "model.blocks.1.sequence_mixer.v_conv1d.weight" });
    }

    [Fact]
    public void Invalid_specs_are_refused()
    {
        var ok = new NetworkSpec(ModelCatalog.DefaultName, SequenceLayout.Rows, 8, 1, 0.1, 28, 28);
        ((Action)(() => ModelCatalog.Build(ok with { Hidden = 0 }))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("Hidden");
        ((Action)(() => ModelCatalog.Build(ok with { DropRate = 1 }))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("DropRate");
    }

    // The parameter counts docs/sample.md states for the defaults (hidden 64, 2 blocks), as the program prints them.
    // pixels and permuted have 1,728 fewer: the encoder maps 1 feature instead of 28 to the hidden size.
    [Theory]
    [InlineData("lru", 52_362)]
    [InlineData("deltanet", 53_258)]
    [InlineData("gated-deltanet", 87_058)]
    [InlineData("mamba2", 87_714)]
    [InlineData("s4d", 35_594)]
    [InlineData("mlstm", 62_810)]
    [InlineData("linoss", 52_362)]
    [InlineData("s5", 35_786)]
    [InlineData("conv-baseline", 19_594)]
    public void Default_parameter_counts_are_the_documented_ones(string model, long rows)
    {
        using var rowsNet = ModelCatalog.Build(new NetworkSpec(model, SequenceLayout.Rows, 64, 2, 0.1, 28, 28));
        Discretax.Utilities.ParameterSummary.Count(rowsNet).Should().Be(rows);
        using var pixelsNet = ModelCatalog.Build(new NetworkSpec(model, SequenceLayout.Pixels, 64, 2, 0.1, 1, 784));
        Discretax.Utilities.ParameterSummary.Count(pixelsNet).Should().Be(rows - 27 * 64);
    }

    [Fact]
    public void Describe_uses_the_singular_for_one_block()
    {
        var spec = new NetworkSpec("lru", SequenceLayout.Rows, 8, 1, 0.1, 28, 28);
        spec.Describe().Should().Be("lru, rows (28 steps x 28), hidden 8, 1 block, dropout 0.1");
        (spec with { Blocks = 2 }).Describe().Should().Contain("hidden 8, 2 blocks,");
    }
}
