using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Interop;

/// <summary>
/// Hugging Face directories beyond the fixtures: the file preference, a directory without config.json, and sharded
/// indexes that disagree with their shards or point outside the directory, refused naming the file and tensor.
/// </summary>
public class HuggingFaceCheckpointTests
{
    /// <summary>A copy of the sharded fixture with <paramref name="index"/> as its index.</summary>
    private static string Sharded(string index)
    {
        string dir = TempDir();
        foreach (var f in Directory.GetFiles(Fixture("tiny_sharded"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index);
        return dir;
    }

    private const string Shard1 = "model-00001-of-00002.safetensors", Shard2 = "model-00002-of-00002.safetensors";

    [Fact]
    public void SafeTensorsIsPreferredAndConfigIsOptional()
    {
        string dir = TempDir();
        File.Copy(Fixture("tiny", "pytorch_model.bin"), Path.Combine(dir, "pytorch_model.bin"));
        using (var bin = HuggingFaceCheckpoint.Load(dir))
        {
            Path.GetFileName(bin.Files.Single()).Should().Be("pytorch_model.bin");
            bin.Config.Should().BeNull();
        }
        File.Copy(Fixture("tiny", "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        using (var st = HuggingFaceCheckpoint.Load(dir))
            Path.GetFileName(st.Files.Single()).Should().Be("model.safetensors");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void DirectoriesWithoutWeightsAreRefused()
    {
        string dir = TempDir();
        var none = () => HuggingFaceCheckpoint.Load(dir);
        none.Should().Throw<FileNotFoundException>().WithMessage("*holds none of model.safetensors, model.safetensors.index.json, pytorch_model.bin*");
        Directory.Delete(dir);
        var absent = () => HuggingFaceCheckpoint.Load(dir);
        absent.Should().Throw<DirectoryNotFoundException>();
    }

    [Fact]
    public void AnIndexNameMissingFromItsShardIsRefused()
    {
        string dir = Sharded($$$"""{"weight_map": {"proj.weight": "{{{Shard1}}}", "proj.bias": "{{{Shard1}}}", "norm.weight": "{{{Shard2}}}", "norm.bias": "{{{Shard2}}}", "head.weight": "{{{Shard2}}}"}}""");
        var act = () => HuggingFaceCheckpoint.Load(dir);
        act.Should().Throw<CheckpointFormatException>().WithMessage($"*{Shard2}: tensor 'head.weight': *puts the tensor in this shard, which lacks it*");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void AShardTensorTheIndexDoesNotListThereIsRefused()
    {
        string dir = Sharded($$$"""{"weight_map": {"proj.weight": "{{{Shard1}}}", "proj.bias": "{{{Shard1}}}", "norm.weight": "{{{Shard2}}}"}}""");
        var act = () => HuggingFaceCheckpoint.Load(dir);
        act.Should().Throw<CheckpointFormatException>().WithMessage($"*index.json: tensor 'norm.bias': The shard '{Shard2}' holds the tensor, but the weight map does not list it*");
        Directory.Delete(dir, true);
    }

    [Theory]
    [InlineData("../model-00001-of-00002.safetensors", "*not a file name in the model directory*")]
    [InlineData("absent.safetensors", "*Its shard 'absent.safetensors' does not exist*")]
    public void ShardsOutsideTheDirectoryOrAbsentAreRefused(string shard, string message)
    {
        string dir = Sharded($$$"""{"weight_map": {"proj.weight": "{{{shard}}}"}}""");
        var act = () => HuggingFaceCheckpoint.Load(dir);
        act.Should().Throw<CheckpointFormatException>().WithMessage(message).Which.TensorName.Should().Be("proj.weight");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void MalformedIndexAndConfigAreRefused()
    {
        string dir = Sharded("""{"metadata": {}}""");
        var noMap = () => HuggingFaceCheckpoint.Load(dir);
        noMap.Should().Throw<CheckpointFormatException>().WithMessage("*index.json: The index has no weight_map object*");
        File.Copy(Fixture("tiny_sharded", "model.safetensors.index.json"), Path.Combine(dir, "model.safetensors.index.json"), overwrite: true);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"hidden_size\": ");
        var badConfig = () => HuggingFaceCheckpoint.Load(dir);
        badConfig.Should().Throw<CheckpointFormatException>().WithMessage("*config.json: config.json is not valid JSON*");
        Directory.Delete(dir, true);
    }
}
