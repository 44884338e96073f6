using System.IO.Compression;
using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;

namespace Discretax.Tests.Interop;

/// <summary>
/// The torch.save reader beyond the plain state dict: nested training checkpoints flatten to dotted names, and
/// pickles that need Python objects (a whole module, code) or archives without their storages are refused, naming
/// the file and what is wrong.
/// </summary>
public class PyTorchCheckpointTests
{
    [Fact]
    public void NestedCheckpointFlattensToDottedNamesAndSkipsNonTensors()
    {
        using var sd = PyTorchCheckpoint.Read(Fixture("nested.pt"));
        sd.Names.Should().Equal("model.w", "model.b", "history.0", "history.1");
        TestUtil.Values(sd["model.w"]).Should().Equal(1.0, -1.0);
        TestUtil.Values(sd["model.b"]).Should().Equal(0.5);
        Longs(sd["history.0"]).Should().Equal(1, 2);
        Longs(sd["history.1"]).Should().Equal(3);
    }

    [Fact]
    public void AWholePickledModuleIsRefusedNamingThePythonClass()
    {
        var act = () => PyTorchCheckpoint.Read(Fixture("module.pt"));
        act.Should().Throw<CheckpointFormatException>()
           .WithMessage("*module.pt*refers to the Python object '__main__.Tiny'*weights_only*state_dict()*");
    }

    /// <summary>A zip archive like torch.save's with the given pickle and storage files.</summary>
    private static string Archive(string dir, byte[] pickle, params (string Name, byte[] Data)[] files)
    {
        string path = Path.Combine(dir, "crafted.pt");
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var s = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open()) s.Write(pickle);
        foreach (var (name, data) in files)
            using (var s = zip.CreateEntry("archive/" + name, CompressionLevel.NoCompression).Open()) s.Write(data);
        return path;
    }

    [Fact]
    public void APickleThatCallsCodeIsRefusedBeforeAnythingRuns()
    {
        // The classic payload: os.system("echo pwned"), protocol 2.
        byte[] pickle = [0x80, 2, .. "cos\nsystem\n"u8, (byte)'X', 10, 0, 0, 0, .. "echo pwned"u8, 0x85, (byte)'R', (byte)'.'];
        string dir = TempDir();
        var act = () => PyTorchCheckpoint.Read(Archive(dir, pickle));
        act.Should().Throw<CheckpointFormatException>().WithMessage("*crafted.pt*archive/data.pkl*'os.system'*");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void AMissingOrShortStorageIsRefusedNamingTheTensor()
    {
        string dir = TempDir();
        string path = Path.Combine(dir, "damaged.pt");
        File.Copy(Fixture("tensors.pt"), path);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
            zip.GetEntry("tensors/data/0")!.Delete();                       // the storage of 'f32', the first tensor
        var missing = () => PyTorchCheckpoint.Read(path);
        missing.Should().Throw<CheckpointFormatException>().WithMessage("*tensor 'f32'*tensors/data/0 is missing*")
               .Which.TensorName.Should().Be("f32");

        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
            using (var s = zip.CreateEntry("tensors/data/0").Open()) s.Write(new byte[20]);   // 6 float32 need 24
        var shortStorage = () => PyTorchCheckpoint.Read(path);
        shortStorage.Should().Throw<CheckpointFormatException>().WithMessage("*tensor 'f32'*has 20 bytes*need 24*");
        Directory.Delete(dir, true);
    }

    [Fact]
    public void FilesOfOtherKindsAreRefused()
    {
        string dir = TempDir();
        string text = Path.Combine(dir, "notes.pt");
        File.WriteAllText(text, "hello");
        var a = () => PyTorchCheckpoint.Read(text);
        a.Should().Throw<CheckpointFormatException>().WithMessage("*notes.pt*Not a torch.save file*");

        string noPickle = Path.Combine(dir, "empty.pt");
        using (var zip = ZipFile.Open(noPickle, ZipArchiveMode.Create))
            using (zip.CreateEntry("x/version").Open()) { }
        var b = () => PyTorchCheckpoint.Read(noPickle);
        b.Should().Throw<CheckpointFormatException>().WithMessage("*no data.pkl*");

        var c = () => PyTorchCheckpoint.Read(Path.Combine(dir, "absent.pt"));
        c.Should().Throw<FileNotFoundException>();
        Directory.Delete(dir, true);
    }
}
