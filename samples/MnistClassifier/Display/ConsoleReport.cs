using System.Globalization;
using MnistClassifier.Data;
using MnistClassifier.Training;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace MnistClassifier.Display;

/// <summary>The tables and pictures the program prints (Spectre.Console renderables).</summary>
public static class ConsoleReport
{
    /// <summary>Per class: its name, test images, correct ones and accuracy, with a bar.</summary>
    /// <param name="result">The evaluation.</param>
    /// <param name="classNames">The class names, in label order.</param>
    public static Table PerClassTable(EvaluationResult result, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(result);
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Test accuracy per class[/]");
        table.AddColumn("class");
        table.AddColumn(new TableColumn("images").RightAligned());
        table.AddColumn(new TableColumn("correct").RightAligned());
        table.AddColumn(new TableColumn("accuracy").RightAligned());
        table.AddColumn("");
        for (int c = 0; c < result.Classes; c++)
        {
            double acc = result.ClassAccuracy(c);
            string color = double.IsNaN(acc) ? "grey" : acc >= 0.9 ? "green" : acc >= 0.75 ? "yellow" : "red";
            int bar = double.IsNaN(acc) ? 0 : (int)Math.Round(acc * 20);
            table.AddRow(
                new Text($"{c} {Name(classNames, c)}"),
                new Text(result.Support(c).ToString(CultureInfo.InvariantCulture)),
                new Text(result.Confusion[c, c].ToString(CultureInfo.InvariantCulture)),
                new Markup($"[{color}]{(double.IsNaN(acc) ? "-" : acc.ToString("P1", CultureInfo.InvariantCulture))}[/]"),
                new Markup($"[{color}]{new string('█', bar)}[/][grey]{new string('·', 20 - bar)}[/]"));
        }
        table.AddRow(new Markup("[bold]all[/]"), new Text(result.Count.ToString(CultureInfo.InvariantCulture)),
            new Text(Enumerable.Range(0, result.Classes).Sum(c => result.Confusion[c, c]).ToString(CultureInfo.InvariantCulture)),
            new Markup($"[bold]{result.Accuracy.ToString("P2", CultureInfo.InvariantCulture)}[/]"), new Text(""));
        return table;
    }

    /// <summary>
    /// All epochs: train and test loss and accuracy, the learning rate at the epoch's end, seconds and throughput.
    /// The units are in the two-line headers and the cells are bare numbers, so the table is 80 columns wide at most
    /// and stays on one line per epoch in an 80-column terminal.
    /// </summary>
    /// <param name="epochs">The epochs.</param>
    public static Table EpochTable(IReadOnlyList<EpochMetrics> epochs)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Epochs[/]");
        foreach (var c in new[] { "epoch", "train\nloss", "train\nacc %", "test\nloss", "test\nacc %", "lr\n(end)", "train\ns", "img/s", "tok/s" })
            table.AddColumn(new TableColumn(c).RightAligned());
        foreach (var m in epochs)
            table.AddRow(m.Epoch.ToString(CultureInfo.InvariantCulture), F(m.TrainLoss, "F4"), F(m.TrainAccuracy * 100, "F2"), F(m.TestLoss, "F4"),
                $"[bold]{F(m.TestAccuracy * 100, "F2")}[/]", F(m.LearningRate, "0.0e0"), F(m.TrainSeconds, "F1"), F(m.ImagesPerSecond, "F0"),
                F(m.TokensPerSecond, "F0"));
        return table;
    }

    /// <summary>The confusion matrix: rows the true class, columns the predicted one; the diagonal in green.</summary>
    /// <param name="result">The evaluation.</param>
    /// <param name="classNames">The class names, in label order.</param>
    public static Table ConfusionTable(EvaluationResult result, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(result);
        var table = new Table().Border(TableBorder.Simple).Title("[bold]Confusion matrix[/] (rows: true class, columns: predicted)");
        table.AddColumn("true \\ predicted");
        for (int p = 0; p < result.Classes; p++) table.AddColumn(new TableColumn(p.ToString(CultureInfo.InvariantCulture)).RightAligned());
        long max = 1;
        for (int t = 0; t < result.Classes; t++)
            for (int p = 0; p < result.Classes; p++)
                if (t != p) max = Math.Max(max, result.Confusion[t, p]);
        for (int t = 0; t < result.Classes; t++)
        {
            var cells = new List<IRenderable> { new Text($"{t} {Name(classNames, t)}") };
            for (int p = 0; p < result.Classes; p++)
            {
                long v = result.Confusion[t, p];
                string style = t == p ? "green" : v == 0 ? "grey" : v * 2 >= max ? "red" : "yellow";
                cells.Add(new Markup($"[{style}]{v}[/]"));
            }
            table.AddRow(cells);
        }
        return table;
    }

    /// <summary>An image as a grid of grey cells.</summary>
    /// <param name="images">The images.</param>
    /// <param name="index">Which image.</param>
    public static Canvas ImageCanvas(IdxImages images, int index)
    {
        ArgumentNullException.ThrowIfNull(images);
        var pixels = images.Image(index);
        var canvas = new Canvas(images.Columns, images.Rows);
        for (int r = 0; r < images.Rows; r++)
            for (int c = 0; c < images.Columns; c++)
            {
                byte v = pixels[r * images.Columns + c];
                canvas.SetPixel(c, r, new Color(v, v, v));
            }
        return canvas;
    }

    /// <summary>
    /// An image as text for terminals without 256 colours: two characters per pixel from the ramp
    /// <c>" .:-=+*#%@"</c>, darkest (background) to brightest (ink).
    /// </summary>
    /// <param name="images">The images.</param>
    /// <param name="index">Which image.</param>
    public static Text ImageText(IdxImages images, int index)
    {
        ArgumentNullException.ThrowIfNull(images);
        const string ramp = " .:-=+*#%@";
        var pixels = images.Image(index);
        var sb = new System.Text.StringBuilder();
        for (int r = 0; r < images.Rows; r++)
        {
            for (int c = 0; c < images.Columns; c++)
            {
                char ch = ramp[pixels[r * images.Columns + c] * (ramp.Length - 1) / 255];
                sb.Append(ch).Append(ch);
            }
            sb.Append('\n');
        }
        return new Text(sb.ToString());
    }

    /// <summary>The image as grey cells where the console writes ANSI with 256 colours or more, else as <see cref="ImageText"/>.</summary>
    /// <param name="console">The console it is for.</param>
    /// <param name="images">The images.</param>
    /// <param name="index">Which image.</param>
    public static IRenderable Image(IAnsiConsole console, IdxImages images, int index)
    {
        ArgumentNullException.ThrowIfNull(console);
        var caps = console.Profile.Capabilities;
        return caps.Ansi && caps.ColorSystem >= ColorSystem.EightBit
            ? ImageCanvas(images, index)
            : ImageText(images, index);
    }

    /// <summary>The top <paramref name="k"/> classes with their probabilities, as a bar chart.</summary>
    /// <param name="probabilities">One probability per class.</param>
    /// <param name="classNames">The class names, in label order.</param>
    /// <param name="trueLabel">The true class (marked), or -1.</param>
    /// <param name="k">How many classes to show.</param>
    public static BarChart TopClasses(IReadOnlyList<double> probabilities, IReadOnlyList<string> classNames, int trueLabel, int k = 3)
    {
        ArgumentNullException.ThrowIfNull(probabilities);
        var chart = new BarChart().Width(60).WithMaxValue(100).Label($"[bold]Top {k} classes[/] (probability, %)");
        foreach (var (p, c) in probabilities.Select((p, c) => (p, c)).OrderByDescending(t => t.p).Take(k))
        {
            var label = $"{c} {Name(classNames, c)}{(c == trueLabel ? " (true)" : "")}";
            chart.AddItem(Markup.Escape(label), Math.Round(p * 100, 1), c == trueLabel ? Color.Green : Color.Yellow);
        }
        return chart;
    }

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    private static string Name(IReadOnlyList<string> names, int c) => Markup.Escape(c < names.Count ? names[c] : c.ToString(CultureInfo.InvariantCulture));
}
