using System.Globalization;
using MnistClassifier.Training;

namespace MnistClassifier.Display;

/// <summary>
/// Draws the training curves (loss on the left axis, accuracy in % on the right) to a PNG with ScottPlot: whole
/// epochs on the x axis, the legend to the right of the data area (outside the curves), and a title naming the model,
/// the data set and the latest test accuracy.
/// </summary>
public static class CurvePlot
{
    /// <summary>
    /// The title, e.g. <c>lru on embedded Fashion-MNIST subset: test accuracy 85.10% after epoch 20/20</c>; of the
    /// data set's description only the part before a parenthesis. A title longer than <see cref="MaxTitleLine"/>
    /// characters breaks after the colon, so that it fits the default 1000-pixel width at the title's font size.
    /// </summary>
    /// <param name="model">The model's name.</param>
    /// <param name="dataset">The data set's description (<see cref="Data.DataSource.Description"/>).</param>
    /// <param name="last">The latest epoch.</param>
    /// <param name="totalEpochs">The epochs of the whole run.</param>
    public static string Title(string model, string dataset, EpochMetrics last, int totalEpochs)
    {
        ArgumentNullException.ThrowIfNull(last);
        ArgumentNullException.ThrowIfNull(dataset);
        int paren = dataset.IndexOf(" (", StringComparison.Ordinal);
        if (paren > 0) dataset = dataset[..paren];
        string head = $"{model} on {dataset}:";
        string tail = string.Create(CultureInfo.InvariantCulture, $"test accuracy {last.TestAccuracy * 100:F2}% after epoch {last.Epoch}/{totalEpochs}");
        return head.Length + 1 + tail.Length <= MaxTitleLine ? $"{head} {tail}" : $"{head}\n{tail}";
    }

    /// <summary>The longest title line that fits 1000 pixels at the title's 16-point font (about 11 pixels a character).</summary>
    public const int MaxTitleLine = 80;

    /// <summary>Builds the plot.</summary>
    /// <param name="epochs">The epochs so far (at least one).</param>
    /// <param name="title">The plot's title.</param>
    public static ScottPlot.Plot Create(IReadOnlyList<EpochMetrics> epochs, string title)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        if (epochs.Count == 0) throw new ArgumentException("Expected at least one epoch to plot; got none.", nameof(epochs));
        var plot = new ScottPlot.Plot();
        double[] x = epochs.Select(m => (double)m.Epoch).ToArray();
        var trainLoss = plot.Add.Scatter(x, epochs.Select(m => m.TrainLoss).ToArray());
        trainLoss.LegendText = "train loss";
        var testLoss = plot.Add.Scatter(x, epochs.Select(m => m.TestLoss).ToArray());
        testLoss.LegendText = "test loss";
        var trainAcc = plot.Add.Scatter(x, epochs.Select(m => m.TrainAccuracy * 100).ToArray());
        trainAcc.LegendText = "train accuracy (%)";
        trainAcc.Axes.YAxis = plot.Axes.Right;
        trainAcc.LinePattern = ScottPlot.LinePattern.Dashed;
        var testAcc = plot.Add.Scatter(x, epochs.Select(m => m.TestAccuracy * 100).ToArray());
        testAcc.LegendText = "test accuracy (%)";
        testAcc.Axes.YAxis = plot.Axes.Right;
        testAcc.LinePattern = ScottPlot.LinePattern.Dashed;

        plot.Title(title, size: 16);
        plot.XLabel("epoch");
        plot.YLabel("loss (NLL)");
        plot.Axes.Right.Label.Text = "accuracy (%)";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.Axes.Bottom.MinorTickStyle.Length = 0;
        plot.ShowLegend(ScottPlot.Edge.Right);
        return plot;
    }

    /// <summary>Writes the PNG.</summary>
    /// <param name="path">The PNG file (overwritten; its directory is created).</param>
    /// <param name="epochs">The epochs so far (at least one).</param>
    /// <param name="title">The plot's title.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    public static void Save(string path, IReadOnlyList<EpochMetrics> epochs, string title, int width = 1000, int height = 500)
    {
        var plot = Create(epochs, title);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        plot.SavePng(path, width, height);
    }
}
