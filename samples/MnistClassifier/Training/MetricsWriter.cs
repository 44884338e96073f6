using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MnistClassifier.Training;

/// <summary>Writes per-epoch metrics as CSV (a <c>.csv</c> path) or JSON (a <c>.json</c> path).</summary>
public static class MetricsWriter
{
    /// <summary>The CSV header, in the order of <see cref="EpochMetrics"/>'s fields.</summary>
    public const string CsvHeader = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,learning_rate,train_seconds,images_per_second,tokens_per_second";

    /// <summary>Throws an <see cref="ArgumentException"/> unless <paramref name="path"/> ends in .csv or .json.</summary>
    /// <param name="path">The metrics file.</param>
    public static void CheckPath(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not ".csv" and not ".json")
            throw new ArgumentException($"Expected a metrics file ending in .csv or .json; got '{path}'.", nameof(path));
    }

    /// <summary>Writes (overwrites) the file with all epochs so far.</summary>
    /// <param name="path">The metrics file, .csv or .json.</param>
    /// <param name="epochs">The epochs.</param>
    public static void Write(string path, IReadOnlyList<EpochMetrics> epochs)
    {
        CheckPath(path);
        ArgumentNullException.ThrowIfNull(epochs);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        File.WriteAllText(path, Path.GetExtension(path).Equals(".csv", StringComparison.OrdinalIgnoreCase) ? ToCsv(epochs) : ToJson(epochs));
    }

    /// <summary>The CSV text: <see cref="CsvHeader"/> then one line per epoch, invariant culture.</summary>
    /// <param name="epochs">The epochs.</param>
    public static string ToCsv(IReadOnlyList<EpochMetrics> epochs)
    {
        var sb = new StringBuilder().Append(CsvHeader).Append('\n');
        foreach (var m in epochs)
        {
            sb.Append(string.Join(",", new[]
            {
                m.Epoch.ToString(CultureInfo.InvariantCulture), F(m.TrainLoss), F(m.TrainAccuracy), F(m.TestLoss), F(m.TestAccuracy),
                F(m.LearningRate), F(m.TrainSeconds), F(m.ImagesPerSecond), F(m.TokensPerSecond),
            })).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>The JSON text: an array of objects with camelCase names.</summary>
    /// <param name="epochs">The epochs.</param>
    public static string ToJson(IReadOnlyList<EpochMetrics> epochs) =>
        JsonSerializer.Serialize(epochs, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
