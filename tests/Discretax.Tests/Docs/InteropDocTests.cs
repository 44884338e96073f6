using Discretax.Interop;
using static TorchSharp.torch;

namespace Discretax.Tests.Docs;

/// <summary>
/// docs/interop.md: its C# blocks equal the regions of InteropSnippets.cs, the import/export snippet does what the
/// page says (PyTorch's output, the checkpoint's names on export), and the strict error it prints is the real one.
/// The page is linked from the README and the docfx table of contents.
/// </summary>
public class InteropDocTests
{
    private const string Page = "docs/interop.md";
    private const string Code = "tests/Discretax.Tests/Docs/InteropSnippets.cs";

    private static string Fixture(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Fixtures", "interop", .. parts]);

    [Fact]
    public void EverySnippetEqualsItsRegionAndEveryCSharpBlockIsASnippet()
    {
        var page = DocSnippets.ReadRepositoryFile(Page);
        var all = DocSnippets.MarkedBlocks(page, "snippet");
        // The fla and xLSTM sections' snippets are InteropFlaDocTests' and InteropXLSTMDocTests'.
        var snippets = all.Where(s => !s.Key.StartsWith("fla-", StringComparison.Ordinal) && !s.Key.StartsWith("xlstm-", StringComparison.Ordinal))
            .ToDictionary(s => s.Key, s => s.Value);
        snippets.Keys.Should().BeEquivalentTo("interop-usings", "import-export");
        DocSnippets.Differences(snippets, DocSnippets.Regions(DocSnippets.ReadRepositoryFile(Code)), Page, Code).Should().BeNull();
        var marked = all.Values.Select(b => b.Line).ToHashSet();
        DocSnippets.FencedBlocks(page).Where(b => b.Language is "csharp" or "cs" && !marked.Contains(b.Line))
            .Select(b => $"line {b.Line}").Should().BeEmpty();
    }

    [Fact]
    public void TheImportExportSnippetGivesPyTorchsOutputAndExportsTheCheckpointsNames()
    {
        using var scope = NewDisposeScope();
        using var io = SafeTensors.Read(Fixture("tiny", "io.safetensors"));
        string output = Path.Combine(Path.GetTempPath(), "discretax-doc-" + Guid.NewGuid().ToString("N") + ".safetensors");
        var r = InteropSnippets.ImportExport(Fixture("tiny"), output, io["input"]);
        File.Delete(output);
        r.Loaded.Should().Equal("linear.weight", "linear.bias", "ln.weight", "ln.bias");
        r.Exported.Should().BeEquivalentTo("proj.weight", "proj.bias", "norm.weight", "norm.bias");
        TestUtil.RelRms(tensor(r.Output), io["output"].to(ScalarType.Float64).flatten()).Should().BeLessThan(1e-5);
    }

    [Fact]
    public void ThePrintedStrictErrorIsTheRealOne()
    {
        var outputs = DocSnippets.MarkedBlocks(DocSnippets.ReadRepositoryFile(Page), "output");
        outputs.Keys.Should().BeEquivalentTo("strict-error");
        DocSnippets.Normalize(outputs["strict-error"].Code).Should().Be(DocSnippets.Normalize(InteropSnippets.StrictError(Fixture("tiny"))));
    }

    [Fact]
    public void ThePageIsListedWithTheOtherDocs()
    {
        DocSnippets.ReadRepositoryFile("README.md").Should().Contain("(docs/interop.md)");
        DocSnippets.ReadRepositoryFile("docs/api/articles/toc.yml").Should().Contain("href: ../../interop.md");
    }
}
