using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace SampleSupport;

/// <summary>
/// Parsers for the options' values that report a bad value as one line naming the option as the user typed it, in
/// the form <c>--epochs abc must be a whole number</c>. They replace System.CommandLine's own conversion errors
/// (several lines, or, read from a validator before the conversion error is reported, an exception).
/// </summary>
public static class OptionValues
{
    /// <summary>The option's name as the user typed it (an alias such as <c>-m</c> included).</summary>
    /// <param name="r">The argument's parse result.</param>
    public static string Typed(ArgumentResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return (r.Parent as OptionResult)?.IdentifierToken?.Value ?? r.Argument.Name;
    }

    /// <summary>Accepts a whole number of at least <paramref name="min"/>.</summary>
    /// <param name="option">The option.</param>
    /// <param name="min">The smallest value accepted.</param>
    public static Option<int> WholeNumber(this Option<int> option, int min)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.CustomParser = r => ParseWhole(r, min) ?? 0;
        return option;
    }

    /// <summary>Accepts a whole number of at least <paramref name="min"/>; absent: null.</summary>
    /// <param name="option">The option.</param>
    /// <param name="min">The smallest value accepted.</param>
    public static Option<int?> WholeNumber(this Option<int?> option, int min)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.CustomParser = r => ParseWhole(r, min);
        return option;
    }

    /// <summary>Accepts any whole number that fits 64 bits.</summary>
    /// <param name="option">The option.</param>
    public static Option<long> WholeNumber(this Option<long> option)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.CustomParser = r =>
        {
            string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)) return v;
            r.AddError($"{Typed(r)} {text} must be a whole number");
            return 0;
        };
        return option;
    }

    /// <summary>Accepts any whole number from 0 that fits 64 bits.</summary>
    /// <param name="option">The option.</param>
    public static Option<ulong> WholeNumber(this Option<ulong> option)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.CustomParser = r =>
        {
            string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v)) return v;
            r.AddError($"{Typed(r)} {text} must be a whole number of at least 0");
            return 0;
        };
        return option;
    }

    /// <summary>Accepts a finite number for which <paramref name="accept"/> holds.</summary>
    /// <param name="option">The option.</param>
    /// <param name="accept">The range check.</param>
    /// <param name="requirement">What <paramref name="accept"/> asks for, after "must be" (e.g. "a positive number").</param>
    public static Option<double> Number(this Option<double> option, Func<double, bool> accept, string requirement)
    {
        ArgumentNullException.ThrowIfNull(option);
        ArgumentNullException.ThrowIfNull(accept);
        option.CustomParser = r =>
        {
            string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
                r.AddError($"{Typed(r)} {text} must be a number ({requirement})");
            else if (!accept(v))
                r.AddError($"{Typed(r)} {text} must be {requirement}");
            else
                return v;
            return 0;
        };
        return option;
    }

    /// <summary>Accepts one of <paramref name="values"/>, ignoring case; the value is the listed spelling.</summary>
    /// <param name="option">The option.</param>
    /// <param name="values">The accepted values.</param>
    public static Option<string> OneOf(this Option<string> option, params string[] values)
    {
        ArgumentNullException.ThrowIfNull(option);
        ArgumentNullException.ThrowIfNull(values);
        option.CustomParser = r =>
        {
            string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
            var match = values.FirstOrDefault(v => string.Equals(v, text, StringComparison.OrdinalIgnoreCase));
            if (match is not null) return match;
            r.AddError($"{Typed(r)} {text} must be one of: {string.Join(", ", values)}");
            return values[0];
        };
        option.CompletionSources.Add(values);
        option.HelpName ??= string.Join("|", values);
        return option;
    }

    private static int? ParseWhole(ArgumentResult r, int min)
    {
        string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v))
            r.AddError($"{Typed(r)} {text} must be a whole number of at least {min}");
        else if (v < min)
            r.AddError($"{Typed(r)} {text} must be at least {min}");
        else
            return v;
        return null;
    }
}
