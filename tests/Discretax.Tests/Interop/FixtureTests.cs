using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// The files PyTorch 1.13 wrote (tools/interop/make_fixtures.py) read back with exactly the values the script wrote:
/// formulas exact in each dtype, written down again here.
/// </summary>
public class FixtureTests
{
    /// <summary>The tensors of make_fixtures.py's <c>mixed_tensors</c>, in its order, as shape, dtype and values (as doubles).</summary>
    private static readonly (string Name, long[] Shape, ScalarType DType, double[] Values)[] Mixed =
    [
        ("f32", [2, 3], ScalarType.Float32, Enumerable.Range(0, 6).Select(i => i * 0.25 - 0.5).ToArray()),
        ("f64", [4], ScalarType.Float64, Enumerable.Range(0, 4).Select(i => i / 3.0).ToArray()),
        ("f16", [3, 2], ScalarType.Float16, Enumerable.Range(0, 6).Select(i => (i - 2.5) * 0.125).ToArray()),
        ("bf16", [5], ScalarType.BFloat16, Enumerable.Range(0, 5).Select(i => i * -1.5 + 2).ToArray()),
        ("i64", [3], ScalarType.Int64, [-3, 0, (1L << 40) + 1]),
        ("i32", [2, 2], ScalarType.Int32, [-7, 8, 1 << 30, int.MinValue]),
        ("u8", [3], ScalarType.Byte, [0, 1, 255]),
        ("bool", [3], ScalarType.Bool, [1, 0, 1]),
        // arange(12).reshape(3, 4).t(): element [r, c] is c * 4 + r.
        ("transposed", [4, 3], ScalarType.Float32, Enumerable.Range(0, 12).Select(k => (double)(k % 3 * 4 + k / 3)).ToArray()),
        ("view", [4], ScalarType.Float32, [3, 4, 5, 6]),
        ("strided", [5], ScalarType.Float32, [0, 2, 4, 6, 8]),
        ("scalar", [], ScalarType.Float32, [7.5]),
    ];

    /// <summary>The two tensors only the safetensors fixture has (dtypes torch.save's fixture leaves out).</summary>
    private static readonly (string Name, long[] Shape, ScalarType DType, double[] Values)[] SafeTensorsOnly =
    [
        ("i16", [3], ScalarType.Int16, [-32768, 0, 32767]),
        ("i8", [3], ScalarType.Int8, [-128, 5, 127]),
    ];

    private static void ShouldHoldExactly(StateDict sd, (string Name, long[] Shape, ScalarType DType, double[] Values) e)
    {
        sd.Should().ContainKey(e.Name);
        var t = sd[e.Name];
        t.dtype.Should().Be(e.DType, e.Name);
        t.shape.Should().Equal(e.Shape, e.Name);
        t.is_contiguous().Should().BeTrue(e.Name);
        t.device_type.Should().Be(DeviceType.CPU);
        // Exact: every value is representable in its dtype (int64 values compared as integers).
        if (e.DType == ScalarType.Int64) Longs(t).Should().Equal(e.Values.Select(v => (long)v), e.Name);
        else TestUtil.Values(t).Should().Equal(e.Values, e.Name);
    }

    [Fact]
    public void TorchSaveFileHoldsEveryDtypeTransposedAndViewTensorsExactlyInPickleOrder()
    {
        using var sd = PyTorchCheckpoint.Read(Fixture("tensors.pt"));
        sd.Names.Should().Equal(Mixed.Select(m => m.Name));
        foreach (var e in Mixed) ShouldHoldExactly(sd, e);
        sd.Metadata.Should().BeEmpty();
    }

    [Fact]
    public void TensorsThatSharedAStorageInTheFileOwnTheirMemory()
    {
        using var sd = PyTorchCheckpoint.Read(Fixture("tensors.pt"));
        // 'view' (base[3:7]) and 'strided' (base[::2]) were one storage in the file; writing one leaves the other.
        sd["view"].fill_(-1);
        TestUtil.Values(sd["strided"]).Should().Equal(0, 2, 4, 6, 8);
    }

    [Fact]
    public void SafeTensorsFileHoldsEveryDtypeExactlyWithItsMetadata()
    {
        using var sd = SafeTensors.Read(Fixture("tensors.safetensors"));
        sd.Names.Should().BeEquivalentTo(Mixed.Concat(SafeTensorsOnly).Select(m => m.Name));
        foreach (var e in Mixed.Concat(SafeTensorsOnly)) ShouldHoldExactly(sd, e);
        sd.Metadata.Should().Equal(new Dictionary<string, string> { ["format"] = "pt", ["source"] = "tools/interop/make_fixtures.py" });
        // The header's order is the file's order: the reference writer's (element size down, then name).
        sd.Names.Should().StartWith(["f64", "i64", "f32", "i32"]).And.EndWith(["bool", "i8", "u8"]);
    }

    [Fact]
    public void CheckpointReadTellsTheFormatsApartByContentAndFiltersNames()
    {
        using var pt = Checkpoint.Read(Fixture("tensors.pt"), include: n => n.StartsWith('f'));
        pt.Names.Should().Equal("f32", "f64", "f16");
        using var st = Checkpoint.Read(Fixture("tensors.safetensors"), include: n => n == "bf16");
        st.Names.Should().Equal("bf16");
        using var dir = Checkpoint.Read(Fixture("tiny_sharded"));
        dir.Names.Should().BeEquivalentTo("proj.weight", "proj.bias", "norm.weight", "norm.bias");
    }

    [Fact]
    public void LegacyTorchSaveFormatIsRefusedWithWhatToDo()
    {
        var act = () => PyTorchCheckpoint.Read(Fixture("legacy.pt"));
        act.Should().Throw<CheckpointFormatException>()
           .WithMessage("*legacy.pt*legacy torch.save format*before 1.6*re-save*")
           .Which.FilePath.Should().EndWith("legacy.pt");
    }

    [Theory]
    [InlineData("tiny", "model.safetensors")]
    [InlineData("tiny_sharded", "model.safetensors.index.json")]
    [InlineData("tiny_bin", "pytorch_model.bin")]
    public void HuggingFaceDirectoriesGiveTheSameWeightsAndTheirConfig(string directory, string weightFile)
    {
        using var hf = HuggingFaceCheckpoint.Load(Fixture(directory));
        Path.GetFileName(hf.Files[0]).Should().Be(weightFile);
        hf.Tensors.Names.Should().BeEquivalentTo("proj.weight", "proj.bias", "norm.weight", "norm.bias");
        hf.Tensors["proj.weight"].shape.Should().Equal(6, 4);
        hf.Tensors["norm.bias"].shape.Should().Equal(6);
        hf.Config.Should().NotBeNull();
        hf.Config!.Value.GetProperty("hidden_size").GetInt32().Should().Be(6);
        hf.Config.Value.GetProperty("layer_norm_eps").GetDouble().Should().Be(1e-5);

        // Bit for bit the weights of the single-file directory (one set of weights written three ways).
        using var reference = SafeTensors.Read(Fixture("tiny", "model.safetensors"));
        foreach (var (name, t) in reference) Same(hf.Tensors[name], t).Should().BeTrue(name);
    }

    [Fact]
    public void ShardedDirectoryReadsBothShardsAndOnlyTheNeededOnesWithAFilter()
    {
        using (var hf = HuggingFaceCheckpoint.Load(Fixture("tiny_sharded")))
        {
            // Shards in the order of their first name in the (sorted) weight map: norm.bias comes first.
            hf.Files.Select(Path.GetFileName).Should().Equal("model.safetensors.index.json",
                "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors");
            hf.Tensors.Names.Should().Equal("norm.bias", "norm.weight", "proj.bias", "proj.weight");
            hf.Tensors.Metadata["format"].Should().Be("pt");
        }
        using var onlyNorm = HuggingFaceCheckpoint.Load(Fixture("tiny_sharded"), include: n => n.StartsWith("norm.", StringComparison.Ordinal));
        onlyNorm.Files.Select(Path.GetFileName).Should().Equal("model.safetensors.index.json", "model-00002-of-00002.safetensors");
        onlyNorm.Tensors.Names.Should().BeEquivalentTo("norm.weight", "norm.bias");
    }
}
