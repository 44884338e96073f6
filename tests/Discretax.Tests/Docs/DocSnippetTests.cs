namespace Discretax.Tests.Docs;

/// <summary>
/// The docs' code equals the code the tests compile and run: docs/howto.md against HowToSnippets.cs, the README's
/// Quickstart against ReadmeQuickstart.cs; and the reader of both (<see cref="DocSnippets"/>) works as documented.
/// </summary>
public class DocSnippetTests
{
    private const string HowToPage = "docs/howto.md";
    private const string HowToCode = "tests/Discretax.Tests/Docs/HowToSnippets.cs";
    private const string ReadmeCode = "tests/Discretax.Tests/Docs/ReadmeQuickstart.cs";

    [Fact]
    public void EverySnippetOfTheHowToEqualsItsRegionAndNoRegionIsMissingFromEitherSide()
    {
        var page = DocSnippets.ReadRepositoryFile(HowToPage);
        var snippets = DocSnippets.MarkedBlocks(page, "snippet");
        var regions = DocSnippets.Regions(DocSnippets.ReadRepositoryFile(HowToCode));
        snippets.Should().NotBeEmpty();
        DocSnippets.Differences(snippets, regions, HowToPage, HowToCode).Should().BeNull();
    }

    /// <summary>No csharp block of the how-to escapes the check: each one is a marked snippet.</summary>
    [Fact]
    public void EveryCSharpBlockOfTheHowToIsASnippet()
    {
        var page = DocSnippets.ReadRepositoryFile(HowToPage);
        var marked = DocSnippets.MarkedBlocks(page, "snippet").Values.Select(b => b.Line).ToHashSet();
        var unmarked = DocSnippets.FencedBlocks(page).Where(b => b.Language is "csharp" or "cs" or "c#" && !marked.Contains(b.Line));
        unmarked.Select(b => $"line {b.Line}").Should().BeEmpty("every C# block of {0} needs a '<!-- snippet: NAME -->' marker", HowToPage);
    }

    /// <summary>The parameter tree printed in the how-to is what <c>ParameterSummary.Tree</c> prints for that model.</summary>
    [Fact]
    public void ThePrintedParameterTreeIsTheSnippetsTree()
    {
        var outputs = DocSnippets.MarkedBlocks(DocSnippets.ReadRepositoryFile(HowToPage), "output");
        outputs.Keys.Should().BeEquivalentTo(new[] { "parameter-tree" });
        DocSnippets.Normalize(outputs["parameter-tree"].Code).Should().Be(DocSnippets.Normalize(HowToSnippets.Parameters().Tree));
    }

    [Fact]
    public void TheReadmeQuickstartEqualsItsRegion()
    {
        var block = DocSnippets.SectionCSharpBlock(DocSnippets.ReadRepositoryFile("README.md"), "## Quickstart");
        var snippets = new Dictionary<string, DocSnippets.CodeBlock> { ["readme-quickstart"] = block };
        var regions = DocSnippets.Regions(DocSnippets.ReadRepositoryFile(ReadmeCode));
        DocSnippets.Differences(snippets, regions, "README.md (## Quickstart)", ReadmeCode).Should().BeNull();
    }

    [Fact]
    public void TheReadmeLinksTheHowTo() =>
        DocSnippets.ReadRepositoryFile("README.md").Should().Contain("(docs/howto.md)");

    // The reader itself.

    [Fact]
    public void RegionsAreDedentedAndPartsOfOneNameAreJoinedWithABlankLine()
    {
        const string source = "// snippet: a\nusing X;\n// end snippet\nclass C {\n    void M() {\n        // snippet: a\n        var y = 1;\n\n        if (y > 0)\n            y++;   \n        // end snippet\n    }\n}\n";
        var regions = DocSnippets.Regions(source);
        regions.Should().ContainKey("a").WhoseValue.Should().Be("using X;\n\nvar y = 1;\n\nif (y > 0)\n    y++;");
    }

    [Theory]
    [InlineData("// snippet: a\nx;\n", "not closed")]
    [InlineData("x;\n// end snippet\n", "closes no region")]
    [InlineData("// snippet: a\n// snippet: b\n// end snippet\n", "opens inside region 'a'")]
    public void MalformedRegionsAreRefused(string source, string message)
    {
        var act = () => DocSnippets.Regions(source);
        act.Should().Throw<FormatException>().WithMessage($"*{message}*");
    }

    [Fact]
    public void MarkersFindTheirBlocksAndDifferencesNameBothSides()
    {
        const string page = "# T\n\n<!-- snippet: one -->\n\n```csharp\n  var a = 1;\n```\n\n<!-- snippet: two -->\n```csharp\nvar b = 2;\n```\n\n<!-- output: o -->\n```text\nhi\n```\n";
        var snippets = DocSnippets.MarkedBlocks(page, "snippet");
        snippets.Keys.Should().Equal("one", "two");
        snippets["one"].Line.Should().Be(5);
        DocSnippets.MarkedBlocks(page, "output")["o"].Code.Should().Be("hi");

        var regions = new Dictionary<string, string> { ["one"] = "var a = 1;", ["three"] = "var c = 3;" };
        var message = DocSnippets.Differences(snippets, regions, "page.md", "Code.cs");
        message.Should().Contain("snippet 'two' of page.md (line 10) has no region").And.Contain("region 'three' of Code.cs has no");
        regions["one"] = "var a = 2;";
        DocSnippets.Differences(snippets, regions, "page.md", "Code.cs").Should().Contain("snippet 'one' differs at its line 1");
    }

    [Theory]
    [InlineData("<!-- snippet: a -->\ntext\n", "not followed by a fenced code block")]
    [InlineData("<!-- snippet: a -->\n```bash\nls\n```\n", "snippets are csharp")]
    [InlineData("<!-- snippet: a -->\n```csharp\nx;\n```\n<!-- snippet: a -->\n```csharp\ny;\n```\n", "used twice")]
    [InlineData("<!-- snippet: a -->\n```csharp\nx;\n", "not closed")]
    public void MalformedMarkersAreRefused(string page, string message)
    {
        var act = () => DocSnippets.MarkedBlocks(page, "snippet");
        act.Should().Throw<FormatException>().WithMessage($"*{message}*");
    }

    [Fact]
    public void ASectionsCSharpBlockEndsAtTheNextHeadingOfItsLevel()
    {
        const string page = "## A\n```csharp\na;\n```\n### A.1\n```bash\n## not a heading\n```\n## B\n```csharp\nb;\n```\n";
        DocSnippets.SectionCSharpBlock(page, "## A").Code.Should().Be("a;");
        DocSnippets.SectionCSharpBlock(page, "## B").Code.Should().Be("b;");
        var act = () => DocSnippets.SectionCSharpBlock(page + "```csharp\nc;\n```\n", "## B");
        act.Should().Throw<FormatException>().WithMessage("*2 csharp blocks*");
    }
}
