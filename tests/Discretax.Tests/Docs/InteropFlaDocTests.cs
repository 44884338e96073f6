using static Discretax.Tests.Interop.InteropTestUtil;

namespace Discretax.Tests.Docs;

/// <summary>
/// The fla code of docs/interop.md equals <see cref="InteropFlaSnippets"/> and runs: on the DeltaNetForCausalLM and
/// Mamba2ForCausalLM fixtures that fla's own code wrote (tools/interop/make_fla_fixtures.py, make_fla_mamba2_fixtures.py).
/// </summary>
public class InteropFlaDocTests
{
    private const string Page = "docs/interop.md";
    private const string Code = "tests/Discretax.Tests/Docs/InteropFlaSnippets.cs";

    [Fact]
    public void EveryFlaSnippetOfThePageEqualsItsRegion()
    {
        // (That every C# block of the page is some snippet is InteropDocTests' check.)
        var snippets = DocSnippets.MarkedBlocks(DocSnippets.ReadRepositoryFile(Page), "snippet")
            .Where(s => s.Key.StartsWith("fla-", StringComparison.Ordinal)).ToDictionary(s => s.Key, s => s.Value);
        snippets.Keys.Should().BeEquivalentTo("fla-usings", "fla-generate", "fla-finetune", "fla-layer", "fla-mamba2");
        DocSnippets.Differences(snippets, DocSnippets.Regions(DocSnippets.ReadRepositoryFile(Code)), Page, Code).Should().BeNull();
    }

    [Fact]
    public void TheGenerateAndFineTuneExampleRunsOnFlasDeltaNetCheckpoint()
    {
        string output = TempDir();
        try
        {
            var r = InteropFlaSnippets.GenerateAndFineTune(Fixture("fla", "delta_net"), output);
            r.Type.Should().Be("DeltaNetForCausalLM");
            r.Continuation.Should().NotBeEmpty().And.HaveCountLessThanOrEqualTo(16).And.OnlyContain(t => t >= 0 && t < 64);
            r.Losses.Should().HaveCount(5);
            r.Losses[^1].Should().BeLessThan(r.Losses[0], "five AdamW steps on one sequence lower its loss");
            r.ReloadedMaxDiff.Should().Be(0, "the saved directory loads back to the same model");
            File.Exists(Path.Combine(output, "config.json")).Should().BeTrue();
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public void TheMamba2ExampleLoadsFlasMamba2AndOneOfItsMixers()
    {
        var r = InteropFlaSnippets.Mamba2(Fixture("fla", "mamba2"));
        r.Type.Should().Be("Mamba2ForCausalLM");
        r.Continuation.Should().HaveCount(8).And.OnlyContain(t => t >= 0 && t < 64);
        r.MixerLoaded.Should().Be(8);
        r.MixerMaxDiff.Should().Be(0, "the mixer loaded alone is the model's first mixer");
    }

    [Fact]
    public void TheLayerExampleLoadsOneLayerOfTheCheckpointStrictly()
    {
        var r = InteropFlaSnippets.Layer(Fixture("fla", "delta_net"));
        r.Loaded.Should().Be(9);
        r.OutputShape.Should().Equal(2, 10, 32);
    }
}
