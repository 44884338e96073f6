using Discretax.Interop;
using Discretax.Models;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

public class CausalLMCheckpointTests
{
    /// <summary>Each reference's fixture directory loads through the one entry point into its own model, with the same logits as the reference's own loader.</summary>
    [Theory]
    [InlineData("fla", "delta_net", typeof(DeltaNetForCausalLM))]
    [InlineData("fla", "gated_deltanet", typeof(GatedDeltaNetForCausalLM))]
    [InlineData("fla", "mamba2", typeof(Mamba2ForCausalLM))]
    [InlineData("xlstm", "xlstm_large", typeof(CausalLM))]
    public void EveryReferenceLoadsByItsModelType(string reference, string name, Type expected)
    {
        using var scope = NewDisposeScope();
        string dir = Fixture(reference, name);
        using var lm = CausalLMCheckpoint.Load(dir);
        lm.GetType().Should().Be(expected);
        using CausalLM direct = reference == "fla" ? FlaCheckpoint.Load(dir) : XLSTMCheckpoint.LoadLarge(dir);
        var ids = tensor(new long[] { 1, 5, 9, 2, 7 }).unsqueeze(0);
        TestUtil.MaxAbsDiff(lm.forward(ids), direct.forward(ids)).Should().Be(0);
        lm.training.Should().BeFalse();
    }

    [Fact]
    public void AnUnknownModelTypeOrNoConfigIsRefusedClearly()
    {
        string dir = Path.Combine(Path.GetTempPath(), "discretax-lm-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            ((Action)(() => CausalLMCheckpoint.Load(dir))).Should().Throw<FileNotFoundException>().WithMessage("*config.json*");
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"model_type\": \"rwkv7\"}");
            ((Action)(() => CausalLMCheckpoint.Load(dir))).Should().Throw<NotSupportedException>()
                .WithMessage("*rwkv7*delta_net*xlstm*");
            File.WriteAllText(Path.Combine(dir, "config.json"), "[1, 2]");
            ((Action)(() => CausalLMCheckpoint.Load(dir))).Should().Throw<CheckpointFormatException>().WithMessage("*model_type*");
        }
        finally { Directory.Delete(dir, recursive: true); }
        ((Action)(() => CausalLMCheckpoint.Load(dir))).Should().Throw<DirectoryNotFoundException>();
        CausalLMCheckpoint.SupportedModelTypes.Should().Contain(new[] { "delta_net", "gated_deltanet", "mamba2", "xlstm" });
    }
}
