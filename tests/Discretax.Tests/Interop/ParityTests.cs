using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// A torch.nn module (Linear(4, 6) then LayerNorm(6), random gains and biases) and its output on a fixed input,
/// both written by PyTorch 1.13: its weights, loaded from each of the three Hugging Face directories into the
/// TorchSharp equivalent, give PyTorch's output.
/// </summary>
public class ParityTests
{
    [Theory]
    [InlineData("tiny")]
    [InlineData("tiny_sharded")]
    [InlineData("tiny_bin")]
    public void LinearLayerNormMatchesPyTorch(string directory)
    {
        using var scope = NewDisposeScope();
        using var hf = HuggingFaceCheckpoint.Load(Fixture(directory));
        using var io = SafeTensors.Read(Fixture("tiny", "io.safetensors"));
        var eps = hf.Config!.Value.GetProperty("layer_norm_eps").GetDouble();
        var module = nn.Sequential(("proj", nn.Linear(4, 6)), ("norm", nn.LayerNorm(6, eps)));
        var result = Checkpoint.Load(module, hf.Tensors);
        result.Loaded.Should().HaveCount(4);
        module.eval();
        var y = module.forward(io["input"]);
        y.shape.Should().Equal(2, 3, 6);
        // float32 on both sides; only the order of the sums differs (about 1e-7 relative).
        TestUtil.RelRms(y, io["output"]).Should().BeLessThan(1e-5);
    }
}
