using Discretax.Encoders;
using Discretax.Heads;
using Discretax.Models;
using static TorchSharp.torch;

namespace Discretax.Tests.Docs;

/// <summary>
/// Runs every snippet of docs/howto.md (through <see cref="HowToSnippets"/>) and checks what it computes. The
/// snippets draw from the global generator, so these tests assert properties that hold for any draw.
/// </summary>
public class HowToTests
{
    [Fact]
    public void ALoadedModelGivesTheSavedModelsOutputsBitForBit()
    {
        var r = HowToSnippets.SaveLoad();
        r.After.Should().Equal(r.Before);
        r.RestoredKeys.Should().Be(r.Keys);
        r.FileDeleted.Should().BeTrue();
    }

    [Fact]
    public void TheDeviceSnippetPicksTheCpuWithoutCudaAndContinuesTheStreamThere()
    {
        var r = HowToSnippets.Device();
        r.Device.Should().Be(torch.cuda.is_available() ? "cuda" : "cpu");
        r.OutputDevice.Should().StartWith(r.Device);
        r.StateDevice.Should().StartWith(r.Device);
        r.MaxDiffToFullForward.Should().BeLessThan(1e-5, "two streamed halves equal one full forward (float32)");
    }

    [Fact]
    public void ABFloat16ModelReturnsFloat32ForFloat32InputAndKeepsItsStateWide()
    {
        var r = HowToSnippets.BFloat16();
        r.ParameterDType.Should().Be(ScalarType.BFloat16);
        r.OutputDType.Should().Be(ScalarType.Float32);
        r.StateDType.Should().Be(ScalarType.BFloat16);
        r.StateTensorDTypes.Should().NotBeEmpty().And.OnlyContain(d => d == ScalarType.ComplexFloat32 || d == ScalarType.Float32);
        r.RelRmsToFloat32.Should().BeLessThan(0.1, "bfloat16 parameters and activations, float32 states");
    }

    /// <summary>Step-by-step decoding predicts what the full forward over the prompt and the fed-back steps predicts.</summary>
    [Fact]
    public void DecodingStepByStepEqualsTheFullForwardOverWhatWasFedIn()
    {
        var r = HowToSnippets.StreamDecode();
        r.PromptShape.Should().Equal(1, 8, 3);
        r.ContinuationShape.Should().Equal(1, 16, 3);
        r.MaxDiffToFullForward.Should().BeLessThan(1e-4);
    }

    [Fact]
    public void TruncatedBpttTrainsEveryWindowAndCarriesADetachedState()
    {
        var r = HowToSnippets.Tbptt();
        r.Losses.Should().HaveCount(10).And.OnlyContain(l => float.IsFinite(l));
        r.StateDetached.Should().BeTrue();
        r.StateBatch.Should().Be(8);
        r.EveryParameterHasGrad.Should().BeTrue();
    }

    /// <summary>What the text says Detach prevents: without it, the second window's backward reaches the first's freed graph.</summary>
    [Fact]
    public void WithoutDetachTheSecondWindowsBackwardFails()
    {
        var g = new Generator(11);
        using var net = new SequenceNetwork(
            ("encoder", new LinearEncoder(1, 8)),
            ("model", new LRU(8, numBlocks: 1, stateDim: 4)),
            ("head", new RegressionHead(8, 1, reduce: false)));
        using var series = randn(new long[] { 2, 41, 1 }, generator: g).cumsum(1);
        net.train();
        var (y1, s1) = net.Stream(series.narrow(1, 0, 20));
        nn.functional.mse_loss(y1, series.narrow(1, 1, 20)).backward();
        var (y2, s2) = net.Stream(series.narrow(1, 20, 20), s1);
        var act = () => nn.functional.mse_loss(y2, series.narrow(1, 21, 20)).backward();
        act.Should().Throw<System.Runtime.InteropServices.ExternalException>().WithMessage("*backward through the graph a second time*");
        foreach (var d in new IDisposable[] { y1, s1, y2, s2 }) d.Dispose();
    }

    [Fact]
    public void FrozenFeaturesArePooledPerSequenceAndOnlyTheHeadStaysTrainable()
    {
        var r = HowToSnippets.Features();
        r.Shape.Should().Equal(16, 32);
        r.RequiresGrad.Should().BeFalse();
        r.Trainable.Should().Be(r.HeadParameters).And.Be(32 * 10 + 10);
        r.MaxDiffToManualMean.Should().BeLessThan(1e-6);
    }

    [Fact]
    public void ANewHeadTrainsWhileTheFrozenEncoderAndModelKeepParametersAndStatistics()
    {
        var r = HowToSnippets.NewHead();
        r.FrozenUnchanged.Should().BeTrue("frozen parameters and the batch-norm statistics of the model in eval mode stay as they were");
        r.HeadGotGradients.Should().BeTrue();
        r.Trainable.Should().Be(r.HeadParameters).And.Be(32 * 3 + 3);
        r.OutputShape.Should().Equal(16, 3);
    }

    [Fact]
    public void ParameterCountsNamesAndKeysAgree()
    {
        var r = HowToSnippets.Parameters();
        r.Total.Should().Be(r.SumOfNumel).And.BePositive();
        r.Trainable.Should().Be(r.Total);
        r.Tree.Should().StartWith("lru (LRU): ").And.EndWith($"Total parameters: {r.Total.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)}\n");
        r.Shapes.Should().Contain("blocks.0.sequence_mixer.nu_log [4]");
        r.Keys.Should().Contain(r.Shapes.Select(s => s[..s.IndexOf(' ', StringComparison.Ordinal)]));
        r.Keys.Count.Should().BeGreaterThan(r.Shapes.Count, "state_dict also holds the batch-norm buffers");
    }

    [Fact]
    public void APaddedBatchWithLengthsPredictsWhatOneSequenceAtATimePredicts()
    {
        var r = HowToSnippets.VariableLength();
        r.Sequences.Should().Be(4);
        r.PredictionShape.Should().Equal(4, 3);
        r.MaxDiffToOneAtATime.Should().BeLessThan(1e-5);
    }
}
