using System.Text.Json;
using MnistClassifier.Training;

namespace MnistClassifier.Tests.Training;

public class MetricsTests
{
    private static readonly EpochMetrics[] Epochs =
    {
        new(1, 0.5, 0.8, 0.6, 0.75, 1e-3, 2.5, 2400, 67200),
        new(2, 0.25, 0.9, 0.4, 0.85, 5e-4, 2.0, 3000, 84000),
    };

    [Fact]
    public void Csv_has_the_header_and_one_invariant_line_per_epoch()
    {
        using var dir = new TempDir();
        var path = dir.File("sub/m.csv");
        MetricsWriter.Write(path, Epochs);
        File.ReadAllLines(path).Should().Equal(
            MetricsWriter.CsvHeader,
            "1,0.5,0.8,0.6,0.75,0.001,2.5,2400,67200",
            "2,0.25,0.9,0.4,0.85,0.0005,2,3000,84000");
    }

    [Fact]
    public void Json_round_trips()
    {
        using var dir = new TempDir();
        var path = dir.File("m.json");
        MetricsWriter.Write(path, Epochs);
        var back = JsonSerializer.Deserialize<EpochMetrics[]>(File.ReadAllText(path), new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase });
        back.Should().Equal(Epochs);
        File.ReadAllText(path).Should().Contain("\"testAccuracy\": 0.85");
    }

    [Fact]
    public void Other_extensions_are_refused()
    {
        ((Action)(() => MetricsWriter.Write("m.txt", Epochs))).Should().Throw<ArgumentException>().WithMessage("*.csv or .json*m.txt*");
    }

    [Fact]
    public void Evaluation_result_counts_accuracy_per_class()
    {
        var r = new EvaluationResult(0.3, new long[,] { { 3, 1, 0 }, { 0, 2, 0 }, { 1, 1, 2 } });
        r.Count.Should().Be(10);
        r.Accuracy.Should().BeApproximately(0.7, 1e-12);
        r.ClassAccuracy(0).Should().BeApproximately(0.75, 1e-12);
        r.ClassAccuracy(1).Should().Be(1.0);
        r.ClassAccuracy(2).Should().BeApproximately(0.5, 1e-12);
        r.Support(2).Should().Be(4);
    }
}
