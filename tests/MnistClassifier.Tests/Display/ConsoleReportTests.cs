using MnistClassifier.Data;
using MnistClassifier.Display;
using MnistClassifier.Training;
using Spectre.Console;

namespace MnistClassifier.Tests.Display;

public class ConsoleReportTests
{
    private static string Render(Spectre.Console.Rendering.IRenderable r)
    {
        var (console, writer) = PlainConsole.Create();
        console.Write(r);
        return writer.ToString();
    }

    [Fact]
    public void Image_text_uses_two_characters_per_pixel_from_dark_to_bright()
    {
        // 2 rows x 3 columns: 0 -> ramp[0] = ' ', 29 -> ramp[29 * 9 / 255] = ramp[1] = '.', 128 -> ramp[4] = '=', 255 -> '@'.
        var images = new IdxImages(1, 2, 3, new byte[] { 0, 128, 255, 255, 0, 29 });
        var lines = Render(ConsoleReport.ImageText(images, 0)).Split('\n');
        lines[0].Should().Be("  ==@@");
        lines[1].Should().Be("@@  ..");
    }

    [Fact]
    public void Tables_show_per_class_accuracy_and_the_confusion_counts()
    {
        var result = new EvaluationResult(0.3, new long[,] { { 3, 1 }, { 0, 2 } });
        var perClass = Render(ConsoleReport.PerClassTable(result, new[] { "cat", "dog" }));
        perClass.Should().Contain("0 cat").And.Contain("75.0 %").And.Contain("100.0 %").And.Contain("83.33 %");
        var confusion = Render(ConsoleReport.ConfusionTable(result, new[] { "cat", "dog" }));
        confusion.Should().Contain("1 dog");
        var top = Render(ConsoleReport.TopClasses(new[] { 0.1, 0.7, 0.2 }, new[] { "a", "b", "c" }, trueLabel: 2, k: 2));
        top.Should().Contain("1 b").And.Contain("70").And.Contain("2 c (true)").And.NotContain("0 a");
    }

    [Fact]
    public void Epoch_table_keeps_one_line_per_epoch_in_80_columns_with_the_units_in_the_headers()
    {
        var epochs = Enumerable.Range(1, 3)
            .Select(e => new EpochMetrics(e * 40, 0.1234, 0.9876, 0.2345, 1.0, 1.5e-3, 1234.5, 99999, 2_799_972)).ToList();
        var (console, writer) = PlainConsole.Create(width: 80);
        console.Write(ConsoleReport.EpochTable(epochs));
        var lines = writer.ToString().TrimEnd('\n').Split('\n');
        lines.Should().OnlyContain(l => l.Length <= 80);
        lines.Should().HaveCount(3 + 6, "title, top border, two header lines, separator, one line per epoch, bottom border");
        lines.Should().Contain(l => l.Contains("acc %")).And.NotContain(l => l.Trim('│', ' ') == "%");
        lines.Where(l => l.Contains("2799972")).Should().HaveCount(3)
            .And.OnlyContain(l => l.Contains("98.76") && l.Contains("100.00") && l.Contains("1.5e-3") && l.Contains("1234.5"));
    }
}
