using TextGenerator.Training;

namespace TextGenerator.Display;

/// <summary>
/// Draws the training curves to a PNG with ScottPlot: the training loss of every step (nats, left axis) and the
/// held-out bits per byte after each epoch (right axis), against optimizer steps.
/// </summary>
internal static class CurvePlot
{
    /// <summary>Builds the plot.</summary>
    public static ScottPlot.Plot Create(IReadOnlyList<double> stepLosses, IReadOnlyList<EpochResult> epochs, string title)
    {
        var plot = new ScottPlot.Plot();
        var train = plot.Add.Scatter(Enumerable.Range(1, stepLosses.Count).Select(i => (double)i).ToArray(), stepLosses.ToArray());
        train.LegendText = "train loss (nats)";
        train.MarkerSize = 0;
        var held = plot.Add.Scatter(epochs.Select(e => (double)e.Step).ToArray(), epochs.Select(e => e.BitsPerByte).ToArray());
        held.LegendText = "held-out bits/byte";
        held.Axes.YAxis = plot.Axes.Right;
        held.LinePattern = ScottPlot.LinePattern.Dashed;
        held.MarkerSize = 8;
        plot.Title(title, size: 16);
        plot.XLabel("step");
        plot.YLabel("train loss (nats/token)");
        plot.Axes.Right.Label.Text = "held-out bits/byte";
        plot.ShowLegend(ScottPlot.Edge.Right);
        return plot;
    }

    /// <summary>Writes the PNG (its folder is created).</summary>
    public static void Save(string path, IReadOnlyList<double> stepLosses, IReadOnlyList<EpochResult> epochs, string title,
        int width = 1000, int height = 500)
    {
        var plot = Create(stepLosses, epochs, title);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        plot.SavePng(path, width, height);
    }
}
