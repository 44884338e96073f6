using SampleSupport;
using System.Globalization;
using System.Text.RegularExpressions;
using MnistClassifier.Models;

namespace MnistClassifier.Cli;

/// <summary>
/// Translates the library's refusal of a model's settings (an <see cref="ArgumentException"/> naming a constructor
/// parameter, e.g. DeltaNet's <c>numHeads</c>) into an <see cref="OptionException"/> naming the option the user typed.
/// </summary>
public static partial class LibraryErrors
{
    /// <summary>The constructor parameters that <c>--hidden</c> sets, under the names the library's modules use.</summary>
    private static readonly HashSet<string> HiddenNames = new(StringComparer.OrdinalIgnoreCase)
        { "hidden", "hiddenSize", "inFeatures", "outFeatures", "dModel", "dim", "features", "channels" };

    /// <summary>The constructor parameters that <c>--blocks</c> sets.</summary>
    private static readonly HashSet<string> BlockNames = new(StringComparer.OrdinalIgnoreCase)
        { "blocks", "numBlocks", "numLayers", "layers", "depth" };

    /// <summary>The constructor parameters that <c>--dropout</c> sets.</summary>
    private static readonly HashSet<string> DropoutNames = new(StringComparer.OrdinalIgnoreCase) { "dropRate", "dropout", "p" };

    /// <summary>The error for the user, e.g. <c>--hidden 7 must be divisible by the heads (4) of deltanet</c>.</summary>
    /// <param name="e">The library's exception.</param>
    /// <param name="spec">What was being built.</param>
    public static OptionException Translate(ArgumentException e, NetworkSpec spec)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(spec);
        string model = spec.Model;
        string hidden = $"--hidden {spec.Hidden.ToString(CultureInfo.InvariantCulture)}";
        string name = e.ParamName ?? "";
        var heads = HeadsPattern().Match(e.Message);
        // A refused head size (Mamba2's headDim must divide expand * hidden) is told as the library says it, below.
        if (heads.Success || name.Equals("numHeads", StringComparison.OrdinalIgnoreCase))
        {
            string count = heads.Success ? $" ({heads.Groups[1].Value})" : "";
            return new OptionException("--hidden", $"{hidden} must be divisible by the heads{count} of {model}", e);
        }
        string library = Messages.OneLine(e);
        if (name == nameof(NetworkSpec.Block)) return new OptionException("--block", $"--block {spec.Block} does not apply to {model}: {library}", e);
        if (HiddenNames.Contains(name)) return new OptionException("--hidden", $"{hidden} is refused by {model}: {library}", e);
        if (BlockNames.Contains(name))
            return new OptionException("--blocks", $"--blocks {spec.Blocks.ToString(CultureInfo.InvariantCulture)} is refused by {model}: {library}", e);
        if (DropoutNames.Contains(name))
            return new OptionException("--dropout", $"--dropout {spec.DropRate.ToString(CultureInfo.InvariantCulture)} is refused by {model}: {library}", e);
        return new OptionException("--model",
            $"--model {model} refuses {hidden} --blocks {spec.Blocks.ToString(CultureInfo.InvariantCulture)}: {library}", e);
    }

    [GeneratedRegex(@"divisible by numHeads \((\d+)\)")]
    private static partial Regex HeadsPattern();
}
