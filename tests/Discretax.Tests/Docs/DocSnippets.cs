using System.Text.RegularExpressions;

namespace Discretax.Tests.Docs;

/// <summary>
/// Reads the code snippets of the docs and the C# regions they must equal, so that a snippet in a markdown page is
/// compiled and run by a test and cannot rot.
/// <para>
/// Markdown: a snippet is a fenced <c>```csharp</c> block preceded by a line <c>&lt;!-- snippet: NAME --&gt;</c>
/// (blank lines may sit between the two). An output is a fenced block of any language preceded by
/// <c>&lt;!-- output: NAME --&gt;</c>: text that a test compares with what the code computes.
/// </para>
/// <para>
/// C#: a region is the lines between <c>// snippet: NAME</c> and <c>// end snippet</c>. A name may have several
/// regions in one file (for example the using directives at the top and the statements in a method); they are
/// joined in file order with one blank line between them.
/// </para>
/// <para>
/// Both sides are normalized the same way: trailing whitespace removed, leading and trailing blank lines dropped,
/// and the common indentation of each part removed (tabs count as one column; the docs use spaces). Everything
/// else, blank lines and comments inside included, must be equal.
/// </para>
/// </summary>
public static partial class DocSnippets
{
    [GeneratedRegex(@"^\s*<!--\s*(snippet|output):\s*([A-Za-z0-9_.-]+)\s*-->\s*$")]
    private static partial Regex MarkerLine();

    [GeneratedRegex(@"^\s*//\s*snippet:\s*([A-Za-z0-9_.-]+)\s*$")]
    private static partial Regex RegionStart();

    [GeneratedRegex(@"^\s*//\s*end snippet\s*$")]
    private static partial Regex RegionEnd();

    /// <summary>The repository root: the first folder above the test binaries that holds Discretax.sln.</summary>
    public static string RepositoryRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "Discretax.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("The repository root (Discretax.sln) was not found above the test binaries.");
    }

    /// <summary>The text of a file of the repository, with '\n' line ends.</summary>
    /// <param name="relativePath">The path from the repository root, with '/'.</param>
    public static string ReadRepositoryFile(string relativePath) =>
        File.ReadAllText(Path.Combine(RepositoryRoot(), relativePath)).Replace("\r\n", "\n", StringComparison.Ordinal);

    /// <summary>A fenced code block of a markdown page: its info string (language), its content and its line.</summary>
    public sealed record CodeBlock(string Language, string Code, int Line);

    /// <summary>Every fenced code block of <paramref name="markdown"/>, in order (``` or ~~~ fences, any length).</summary>
    /// <param name="markdown">The page.</param>
    public static IReadOnlyList<CodeBlock> FencedBlocks(string markdown)
    {
        var lines = Lines(markdown);
        var blocks = new List<CodeBlock>();
        for (int i = 0; i < lines.Length; i++)
        {
            var open = Regex.Match(lines[i], @"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)");
            if (!open.Success) continue;
            string fence = open.Groups[2].Value;
            int start = i + 1, end = start;
            while (end < lines.Length && !Regex.IsMatch(lines[end], $@"^\s*{Regex.Escape(fence)}{Regex.Escape(fence[..1])}*\s*$")) end++;
            if (end == lines.Length) throw new FormatException($"The code block opened at line {i + 1} is not closed.");
            blocks.Add(new CodeBlock(open.Groups[3].Value, string.Join("\n", lines[start..end]), i + 1));
            i = end;
        }
        return blocks;
    }

    /// <summary>
    /// The marked blocks of <paramref name="markdown"/> of one kind (<c>snippet</c> or <c>output</c>), by name:
    /// each marker must be followed by a fenced block (for snippets a <c>csharp</c> one), and a name may be used once.
    /// </summary>
    /// <param name="markdown">The page.</param>
    /// <param name="kind"><c>snippet</c> or <c>output</c>.</param>
    public static IReadOnlyDictionary<string, CodeBlock> MarkedBlocks(string markdown, string kind)
    {
        var lines = Lines(markdown);
        var blocks = FencedBlocks(markdown);
        var result = new Dictionary<string, CodeBlock>();
        for (int i = 0; i < lines.Length; i++)
        {
            var m = MarkerLine().Match(lines[i]);
            if (!m.Success || m.Groups[1].Value != kind) continue;
            string name = m.Groups[2].Value;
            int next = i + 1;
            while (next < lines.Length && string.IsNullOrWhiteSpace(lines[next])) next++;
            var block = blocks.FirstOrDefault(b => b.Line == next + 1)
                ?? throw new FormatException($"The {kind} marker '{name}' at line {i + 1} is not followed by a fenced code block.");
            if (kind == "snippet" && block.Language != "csharp")
                throw new FormatException($"Snippet '{name}' at line {i + 1} is a '{block.Language}' block; snippets are csharp.");
            if (!result.TryAdd(name, block)) throw new FormatException($"The {kind} name '{name}' is used twice (line {i + 1}).");
        }
        return result;
    }

    /// <summary>
    /// The one <c>csharp</c> block of the section of <paramref name="markdown"/> headed <paramref name="heading"/>
    /// (from that heading line to the next heading of the same or a higher level).
    /// </summary>
    /// <param name="markdown">The page.</param>
    /// <param name="heading">The heading line, e.g. <c>## Quickstart</c>.</param>
    public static CodeBlock SectionCSharpBlock(string markdown, string heading)
    {
        var lines = Lines(markdown);
        int level = heading.TakeWhile(c => c == '#').Count();
        int start = Array.FindIndex(lines, l => l.TrimEnd() == heading);
        if (start < 0) throw new FormatException($"No heading '{heading}'.");
        int end = start + 1;
        bool inFence = false;
        for (; end < lines.Length; end++)
        {
            if (Regex.IsMatch(lines[end], @"^\s*(`{3,}|~{3,})")) inFence = !inFence;
            var h = Regex.Match(lines[end], "^(#+) ");
            if (!inFence && h.Success && h.Groups[1].Length <= level) break;
        }
        var inSection = FencedBlocks(markdown).Where(b => b.Line > start + 1 && b.Line <= end && b.Language == "csharp").ToList();
        if (inSection.Count != 1)
            throw new FormatException($"The section '{heading}' has {inSection.Count} csharp blocks; expected exactly one.");
        return inSection[0];
    }

    /// <summary>
    /// The regions of a C# source, by name: the parts of each name normalized and joined in file order with one
    /// blank line. Throws on a nested, unterminated or unopened region.
    /// </summary>
    /// <param name="source">The C# source text.</param>
    public static IReadOnlyDictionary<string, string> Regions(string source)
    {
        var parts = new Dictionary<string, List<string>>();
        var order = new List<string>();
        var lines = Lines(source);
        string? open = null;
        int openLine = 0;
        var current = new List<string>();
        for (int i = 0; i < lines.Length; i++)
        {
            var start = RegionStart().Match(lines[i]);
            if (start.Success)
            {
                if (open is not null) throw new FormatException($"Region '{start.Groups[1].Value}' at line {i + 1} opens inside region '{open}' (line {openLine}).");
                open = start.Groups[1].Value;
                openLine = i + 1;
                current = new List<string>();
                continue;
            }
            if (RegionEnd().IsMatch(lines[i]))
            {
                if (open is null) throw new FormatException($"'// end snippet' at line {i + 1} closes no region.");
                if (!parts.TryGetValue(open, out var list)) { parts[open] = list = new List<string>(); order.Add(open); }
                list.Add(Normalize(string.Join("\n", current)));
                open = null;
                continue;
            }
            if (open is not null) current.Add(lines[i]);
        }
        if (open is not null) throw new FormatException($"Region '{open}' opened at line {openLine} is not closed.");
        return order.ToDictionary(n => n, n => string.Join("\n\n", parts[n]));
    }

    /// <summary>
    /// Trailing whitespace removed from every line, leading and trailing blank lines dropped, and the indentation
    /// common to the non-blank lines removed.
    /// </summary>
    /// <param name="code">The code.</param>
    public static string Normalize(string code)
    {
        var lines = Lines(code).Select(l => l.TrimEnd()).ToList();
        while (lines.Count > 0 && lines[0].Length == 0) lines.RemoveAt(0);
        while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        int indent = lines.Where(l => l.Length > 0).Select(l => l.TakeWhile(char.IsWhiteSpace).Count()).DefaultIfEmpty(0).Min();
        return string.Join("\n", lines.Select(l => l.Length == 0 ? l : l[indent..]));
    }

    /// <summary>
    /// A message listing every difference between the markdown snippets and the C# regions (missing on either side,
    /// or different, with the first differing line), or null when they agree.
    /// </summary>
    /// <param name="markdown">The snippets of the page, by name.</param>
    /// <param name="regions">The regions of the C# file, by name.</param>
    /// <param name="page">The page's path, for the message.</param>
    /// <param name="file">The C# file's path, for the message.</param>
    public static string? Differences(IReadOnlyDictionary<string, CodeBlock> markdown, IReadOnlyDictionary<string, string> regions, string page, string file)
    {
        var problems = new List<string>();
        foreach (var name in markdown.Keys.Except(regions.Keys))
            problems.Add($"snippet '{name}' of {page} (line {markdown[name].Line}) has no region '// snippet: {name}' in {file}");
        foreach (var name in regions.Keys.Except(markdown.Keys))
            problems.Add($"region '{name}' of {file} has no '<!-- snippet: {name} -->' block in {page}");
        foreach (var name in markdown.Keys.Intersect(regions.Keys))
        {
            var doc = Lines(Normalize(markdown[name].Code));
            var code = Lines(regions[name]);
            int i = 0;
            while (i < doc.Length && i < code.Length && doc[i] == code[i]) i++;
            if (i == doc.Length && i == code.Length) continue;
            problems.Add($"snippet '{name}' differs at its line {i + 1}:\n  {page}: {(i < doc.Length ? doc[i] : "(ends)")}\n  {file}: {(i < code.Length ? code[i] : "(ends)")}");
        }
        return problems.Count == 0 ? null : string.Join("\n", problems);
    }

    private static string[] Lines(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
}
