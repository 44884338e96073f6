using System.Text;

namespace TextGenerator.Data;

/// <summary>
/// Reads the documents to train on: the <c>%</c>-separated records of a fortune-style file, or the blank-line
/// separated paragraphs of any other text; or, without <c>--text</c>, every fortune file of Debian's <c>fortunes</c>
/// package.
/// </summary>
internal static class Documents
{
    /// <summary>Where Debian's <c>fortunes</c> package puts its files.</summary>
    public const string DebianFortunes = "/usr/share/games/fortunes";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The documents of a text: if some line holds only <c>%</c>, the records between such lines; else the
    /// paragraphs between blank lines (lines of only white space). Line ends become <c>\n</c>; each document is
    /// trimmed of leading and trailing line breaks; empty documents are dropped; a last record without a closing
    /// <c>%</c> is kept.
    /// </summary>
    /// <param name="text">The text.</param>
    public static List<string> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Replace("\r\n", "\n").Replace('\r', '\n').Split('\n');
        bool records = lines.Any(l => l.TrimEnd() == "%");
        var documents = new List<string>();
        var current = new List<string>();
        void Flush()
        {
            var doc = string.Join("\n", current).Trim('\n');
            if (doc.Trim().Length > 0) documents.Add(doc);
            current.Clear();
        }
        foreach (var line in lines)
        {
            bool separator = records ? line.TrimEnd() == "%" : line.Trim().Length == 0;
            if (separator) Flush();
            else current.Add(line);
        }
        Flush();
        return documents;
    }

    /// <summary>The documents of the file at <paramref name="path"/> (see <see cref="Split"/>).</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="TextDataException">The file is missing, unreadable, not UTF-8, or holds no text.</exception>
    public static List<string> ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) throw new TextDataException($"--text {path} is a folder; give a text file");
        if (!File.Exists(path)) throw new TextDataException($"--text {path}: no such file");
        var docs = Split(ReadUtf8(path, "--text "));
        if (docs.Count == 0) throw new TextDataException($"--text {path} is empty: it holds no text to train on");
        return docs;
    }

    /// <summary>
    /// The fortunes of every plain file directly in <paramref name="folder"/> (not in subfolders; files ending in
    /// <c>.dat</c> or <c>.u8</c> skipped), in file-name order, each file split into its <c>%</c> records.
    /// </summary>
    /// <param name="folder">The fortunes folder (<see cref="DebianFortunes"/> normally).</param>
    /// <exception cref="TextDataException">The folder is missing, or holds no fortunes.</exception>
    public static List<string> ReadFortunes(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        const string hint = "install Debian's fortunes (sudo apt-get install fortunes) or pass --text FILE";
        if (!Directory.Exists(folder))
            throw new TextDataException($"no --text FILE given and no fortunes in {folder}", hint);
        var docs = new List<string>();
        foreach (var file in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
        {
            if (file.EndsWith(".dat", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".u8", StringComparison.OrdinalIgnoreCase)) continue;
            docs.AddRange(Split(ReadUtf8(file, "")));
        }
        if (docs.Count == 0) throw new TextDataException($"no --text FILE given and {folder} holds no fortunes", hint);
        return docs;
    }

    private static string ReadUtf8(string path, string prefix)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TextDataException($"{prefix}{path} cannot be read: {e.Message}", inner: e);
        }
        try
        {
            var text = StrictUtf8.GetString(bytes);
            return text.Length > 0 && text[0] == '\uFEFF' ? text[1..] : text;
        }
        catch (DecoderFallbackException e)
        {
            throw new TextDataException($"{prefix}{path} is not UTF-8 text (invalid byte sequence at byte {e.Index}); convert it, e.g. iconv -f latin1 -t utf-8", inner: e);
        }
    }
}
