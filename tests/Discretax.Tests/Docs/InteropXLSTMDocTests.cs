using Discretax.Interop;
using static Discretax.Tests.Interop.InteropTestUtil;
using static TorchSharp.torch;

namespace Discretax.Tests.Docs;

/// <summary>
/// The xLSTM code of docs/interop.md equals <see cref="InteropXLSTMSnippets"/> and runs on the fixtures NX-AI's own code
/// wrote (tools/interop/make_xlstm_fixtures.py).
/// </summary>
public class InteropXLSTMDocTests
{
    private const string Page = "docs/interop.md";
    private const string Code = "tests/Discretax.Tests/Docs/InteropXLSTMSnippets.cs";

    [Fact]
    public void EveryXLSTMSnippetOfThePageEqualsItsRegion()
    {
        var snippets = DocSnippets.MarkedBlocks(DocSnippets.ReadRepositoryFile(Page), "snippet")
            .Where(s => s.Key.StartsWith("xlstm-", StringComparison.Ordinal)).ToDictionary(s => s.Key, s => s.Value);
        snippets.Keys.Should().BeEquivalentTo("xlstm-layer", "xlstm-large");
        DocSnippets.Differences(snippets, DocSnippets.Regions(DocSnippets.ReadRepositoryFile(Code)), Page, Code).Should().BeNull();
    }

    /// <summary>The layer snippet reproduces the reference's output (relative RMS below 1e-5, float32) and saves a file that loads back.</summary>
    [Fact]
    public void TheLayerSnippetMatchesTheReference()
    {
        using var scope = NewDisposeScope();
        string dir = Fixture("xlstm", "mlstm_layer");
        string output = Path.Combine(Path.GetTempPath(), "discretax-xlstm-doc-" + Guid.NewGuid().ToString("N") + ".safetensors");
        using var io = SafeTensors.Read(Path.Combine(dir, "io.safetensors"));
        try
        {
            var y = InteropXLSTMSnippets.LayerRoundTrip(Path.Combine(dir, "state_dict.pt"), output, io["x"]);
            TestUtil.RelRms(y, io["y"]).Should().BeLessThan(1e-5);
            using var saved = SafeTensors.Read(output);
            saved.Names.Should().Contain("proj_up.weight");
        }
        finally { File.Delete(output); }
    }

    [Fact]
    public void TheLargeSnippetGeneratesAndSaves()
    {
        string output = Path.Combine(Path.GetTempPath(), "discretax-xlstm-doc-" + Guid.NewGuid().ToString("N"));
        try
        {
            var next = InteropXLSTMSnippets.LargeGenerate(Fixture("xlstm", "xlstm_large"), output, new long[] { 0, 5, 9 });
            next.Should().NotBeEmpty().And.HaveCountLessThanOrEqualTo(32);
            File.Exists(Path.Combine(output, "config.json")).Should().BeTrue();
            File.Exists(Path.Combine(output, "model.safetensors")).Should().BeTrue();
        }
        finally { if (Directory.Exists(output)) Directory.Delete(output, recursive: true); }
    }
}
