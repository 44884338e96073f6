namespace TextGenerator.Data;

/// <summary>
/// Packs a token stream into windows of <c>context</c> tokens: window i is <c>tokens[i*context .. (i+1)*context)</c>,
/// the last one shorter when the stream does not divide evenly. Documents are simply concatenated, so a window may
/// cross a document boundary at an end-of-text token and a long document continues in the next window (a first
/// version: the model sees the end-of-text and learns that a new document starts after it).
/// </summary>
internal static class WindowPacking
{
    /// <summary>The windows of <paramref name="tokens"/>; a last window of a single token is dropped (it predicts nothing).</summary>
    /// <param name="tokens">The token stream.</param>
    /// <param name="context">The window length (at least 2).</param>
    public static List<long[]> Pack(IReadOnlyList<long> tokens, int context)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (context < 2) throw new ArgumentOutOfRangeException(nameof(context), context, "Expected a context of at least 2 tokens.");
        var windows = new List<long[]>();
        for (int start = 0; start < tokens.Count; start += context)
        {
            int length = Math.Min(context, tokens.Count - start);
            var w = new long[length];
            for (int i = 0; i < length; i++) w[i] = tokens[start + i];
            windows.Add(w);
        }
        if (windows.Count > 0 && windows[^1].Length < 2) windows.RemoveAt(windows.Count - 1);
        return windows;
    }

    /// <summary>
    /// Groups windows into batches of <paramref name="batchSize"/> (the last one may be smaller), as a right-padded
    /// token matrix and lengths: the last partial window is padded with end-of-text and its length given.
    /// </summary>
    /// <param name="windows">The windows.</param>
    /// <param name="batchSize">Windows per batch.</param>
    public static IEnumerable<(long[,] Tokens, long[] Lengths)> Batches(IReadOnlyList<long[]> windows, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(windows);
        for (int start = 0; start < windows.Count; start += batchSize)
        {
            var part = windows.Skip(start).Take(batchSize).ToArray();
            int length = part.Max(w => w.Length);
            var tokens = new long[part.Length, length];
            var lengths = new long[part.Length];
            for (int b = 0; b < part.Length; b++)
            {
                lengths[b] = part[b].Length;
                for (int t = 0; t < length; t++) tokens[b, t] = t < part[b].Length ? part[b][t] : Discretax.Text.ByteTokenizer.EndOfText;
            }
            yield return (tokens, lengths);
        }
    }
}
