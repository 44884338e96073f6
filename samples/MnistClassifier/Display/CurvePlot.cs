using MnistClassifier.Training;

namespace MnistClassifier.Display;

/// <summary>Draws the training curves (loss on the left axis, accuracy in % on the right) to a PNG with ScottPlot.</summary>
public static class CurvePlot
{
    /// <summary>Writes the PNG.</summary>
    /// <param name="path">The PNG file (overwritten; its directory is created).</param>
    /// <param name="epochs">The epochs so far (at least one).</param>
    /// <param name="title">The plot's title.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    public static void Save(string path, IReadOnlyList<EpochMetrics> epochs, string title, int width = 900, int height = 500)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        if (epochs.Count == 0) throw new ArgumentException("Expected at least one epoch to plot; got none.", nameof(epochs));
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);

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

        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel("loss (NLL)");
        plot.Axes.Right.Label.Text = "accuracy (%)";
        plot.ShowLegend(ScottPlot.Alignment.MiddleRight);
        plot.SavePng(path, width, height);
    }
}
