using System.Globalization;
using System.Text.RegularExpressions;

namespace Discretax.Tests.Docs;

/// <summary>
/// Runs the README's Quickstart (<see cref="ReadmeQuickstart"/>) and reads what it printed. It seeds the global
/// generator, which parallel tests share, so the checks hold for any draw.
/// </summary>
public class ReadmeQuickstartTests
{
    [Fact]
    public void TheQuickstartTrainsAndItsStreamedOutputEqualsTheFullForward()
    {
        var lines = ReadmeQuickstart.Run();
        lines.Should().HaveCount(6, string.Join("\n", lines));
        lines.Take(4).Select(l => l[..l.IndexOf(':', StringComparison.Ordinal)]).Should().Equal("step 25", "step 50", "step 75", "step 100");
        foreach (var l in lines.Take(4)) Number(l[l.IndexOf(':', StringComparison.Ordinal)..]).Should().BeInRange(0, 10);

        lines[4].Should().StartWith("training accuracy ");
        Number(lines[4]).Should().BeGreaterThan(60, "better than chance after 100 steps (in percent)");

        lines[5].Should().StartWith("streamed in two pieces vs full forward: max |diff| = ");
        Number(lines[5][lines[5].IndexOf('=', StringComparison.Ordinal)..]).Should().BeLessThan(1e-4);
    }

    /// <summary>The first number in <paramref name="text"/>, read with '.' or ',' as the decimal separator.</summary>
    private static double Number(string text)
    {
        var m = Regex.Match(text, @"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?");
        m.Success.Should().BeTrue($"'{text}' holds a number");
        return double.Parse(m.Value.Replace(',', '.'), CultureInfo.InvariantCulture);
    }
}
