using MnistClassifier.Display;
using MnistClassifier.Training;

namespace MnistClassifier.Tests.Display;

public class CurvePlotTests
{
    private static List<EpochMetrics> Epochs(int n) => Enumerable.Range(1, n)
        .Select(e => new EpochMetrics(e, 2.0 / e, 0.5 + 0.05 * e, 2.1 / e, 0.45 + 0.05 * e, 1e-3, 1.0, 100, 2800)).ToList();

    [Fact]
    public void Title_names_the_model_the_data_set_and_the_latest_test_accuracy()
    {
        var epochs = Epochs(3);
        CurvePlot.Title("lru", "embedded Fashion-MNIST subset (6,000 train / 1,000 test, class-balanced)", epochs[^1], 20)
            .Should().Be("lru on embedded Fashion-MNIST subset: test accuracy 60.00% after epoch 3/20");
        // A long one breaks after the colon (the full data set's one-line title was cut off at both ends of the PNG).
        CurvePlot.Title("gated-deltanet", "full Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)", epochs[^1], 5)
            .Should().Be("gated-deltanet on full Fashion-MNIST from Debian's dataset-fashion-mnist:\ntest accuracy 60.00% after epoch 3/5");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public void Epoch_ticks_are_whole_numbers_and_the_legend_is_outside_the_data_area(int n)
    {
        var plot = CurvePlot.Create(Epochs(n), "title");
        using (plot.GetImage(1000, 500)) { }
        var ticks = plot.Axes.Bottom.TickGenerator.Ticks.Where(t => t.IsMajor).Select(t => t.Position).ToList();
        ticks.Should().NotBeEmpty();
        ticks.Should().OnlyContain(p => p == Math.Round(p));
        plot.Legend.IsVisible.Should().BeFalse("the legend inside the data area is off");
        plot.Axes.GetPanels().OfType<ScottPlot.Panels.LegendPanel>().Should().ContainSingle().Which.Edge.Should().Be(ScottPlot.Edge.Right);
        plot.Axes.Title.Label.Text.Should().Be("title");
    }

    [Fact]
    public void Save_writes_a_png()
    {
        using var dir = new TempDir();
        var path = dir.File("sub/curves.png");
        CurvePlot.Save(path, Epochs(2), "t");
        File.ReadAllBytes(path).Take(4).Should().Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' });
    }
}
