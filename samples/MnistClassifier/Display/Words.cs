using System.Globalization;

namespace MnistClassifier.Display;

/// <summary>Counts in words: <c>1 epoch</c>, <c>2 epochs</c>.</summary>
public static class Words
{
    /// <summary><paramref name="n"/> and the noun, singular for 1 (and -1), else plural; thousands separated (<c>1,000 images</c>).</summary>
    /// <param name="n">The count.</param>
    /// <param name="singular">The noun in the singular.</param>
    /// <param name="plural">The noun in the plural (null: <paramref name="singular"/> + "s").</param>
    public static string Count(long n, string singular, string? plural = null)
    {
        ArgumentNullException.ThrowIfNull(singular);
        return string.Create(CultureInfo.InvariantCulture, $"{n:N0} {(Math.Abs(n) == 1 ? singular : plural ?? singular + "s")}");
    }
}
