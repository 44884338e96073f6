using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Text;

/// <summary>
/// A byte-level tokenizer: a text is its UTF-8 bytes, id <c>b</c> for byte <c>b</c> (<c>0..255</c>), plus one special
/// id, <see cref="EndOfText"/> = 256, that marks where a text ends (<see cref="VocabSize"/> = 257). Every string has an
/// encoding and no training or vocabulary file is needed, at the cost of longer sequences (one id per byte: a Latin
/// letter is 1 id, <c>é</c> 2, <c>中</c> 3, an emoji 4).
/// <para>Encoding uses <see cref="Encoding.UTF8"/>: a lone surrogate in the string (not valid Unicode) is encoded as the
/// replacement character U+FFFD (bytes <c>EF BF BD</c>). Decoding an invalid UTF-8 byte sequence (a stray continuation
/// byte, a truncated multi-byte character, as a sampled model may produce) gives U+FFFD for each maximal invalid
/// subsequence, never an exception.</para>
/// </summary>
public static class ByteTokenizer
{
    /// <summary>The id that marks the end of a text: 256, one past the byte ids.</summary>
    public const long EndOfText = 256;

    /// <summary>The number of ids: the 256 bytes and <see cref="EndOfText"/>.</summary>
    public const long VocabSize = 257;

    private static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    /// <summary>The ids of <paramref name="text"/>: its UTF-8 bytes, then <see cref="EndOfText"/> if asked.</summary>
    /// <param name="text">The text (may be empty).</param>
    /// <param name="appendEndOfText">Whether to append <see cref="EndOfText"/>.</param>
    public static long[] Encode(string text, bool appendEndOfText = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = Utf8.GetBytes(text);
        var ids = new long[bytes.Length + (appendEndOfText ? 1 : 0)];
        for (int i = 0; i < bytes.Length; i++) ids[i] = bytes[i];
        if (appendEndOfText) ids[^1] = EndOfText;
        return ids;
    }

    /// <summary>
    /// The text of <paramref name="ids"/>. With <paramref name="stopAtEndOfText"/> (the default) the text ends at the
    /// first <see cref="EndOfText"/> (it and everything after it are dropped), as a generated continuation ends at its
    /// stop token. Without it, every <see cref="EndOfText"/> is skipped and the pieces between them are decoded one by
    /// one and joined (so a multi-byte character is never spliced across an end-of-text). Invalid UTF-8 decodes as
    /// U+FFFD (see the class remarks).
    /// </summary>
    /// <param name="ids">Ids in <c>[0, 257)</c>.</param>
    /// <param name="stopAtEndOfText">Stop at the first end-of-text (true) or skip every end-of-text (false).</param>
    /// <exception cref="ArgumentOutOfRangeException">An id outside <c>[0, 257)</c>; the parameter is <c>ids</c>.</exception>
    public static string Decode(IEnumerable<long> ids, bool stopAtEndOfText = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var piece = new List<byte>();
        foreach (var id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Expected ids in [0, {VocabSize}); got {id}.");
            if (id == EndOfText)
            {
                if (stopAtEndOfText) break;
                text.Append(Utf8.GetString(piece.ToArray()));
                piece.Clear();
                continue;
            }
            piece.Add((byte)id);
        }
        text.Append(Utf8.GetString(piece.ToArray()));
        return text.ToString();
    }

    /// <summary><see cref="Encode"/> as an int64 tensor <c>[L]</c>.</summary>
    /// <param name="text">The text.</param>
    /// <param name="appendEndOfText">Whether to append <see cref="EndOfText"/>.</param>
    /// <param name="device">The tensor's device (the CPU by default).</param>
    public static Tensor EncodeToTensor(string text, bool appendEndOfText = false, Device? device = null)
    {
        var ids = Encode(text, appendEndOfText);
        return tensor(ids, new long[] { ids.Length }, ScalarType.Int64, device);
    }

    /// <summary>
    /// Several texts as one right-padded batch (docs/variable-length.md): <c>Tokens</c> int64 <c>[B, L]</c> with text b
    /// in <c>Tokens[b, :Lengths[b]]</c> and <paramref name="padId"/> after it, and <c>Lengths</c> int64 <c>[B]</c>,
    /// ready for <c>CausalLM.forward(tokens, lengths)</c> and <c>CausalLM.Loss</c>.
    /// </summary>
    /// <param name="texts">The texts (at least one; each must encode to at least one id).</param>
    /// <param name="appendEndOfText">Whether to append <see cref="EndOfText"/> to each text.</param>
    /// <param name="padId">The id at padded steps (ignored by the models; <see cref="EndOfText"/> by default).</param>
    /// <param name="device">The tensors' device (the CPU by default).</param>
    public static (Tensor Tokens, Tensor Lengths) EncodeBatch(IReadOnlyList<string> texts, bool appendEndOfText = false,
        long padId = EndOfText, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("Expected at least one text.", nameof(texts));
        var encoded = new long[texts.Count][];
        for (int b = 0; b < texts.Count; b++)
        {
            if (texts[b] is null) throw new ArgumentException($"Text {b} is null.", nameof(texts));
            encoded[b] = Encode(texts[b], appendEndOfText);
            if (encoded[b].Length == 0)
                throw new ArgumentException($"Text {b} is empty (a sequence needs at least one id).", nameof(texts));
        }
        int length = encoded.Max(e => e.Length);
        var flat = new long[texts.Count * length];
        Array.Fill(flat, padId);
        for (int b = 0; b < encoded.Length; b++) Array.Copy(encoded[b], 0, flat, b * length, encoded[b].Length);
        var lengths = encoded.Select(e => (long)e.Length).ToArray();
        return (tensor(flat, new long[] { texts.Count, length }, ScalarType.Int64, device),
            tensor(lengths, new long[] { lengths.Length }, ScalarType.Int64, device));
    }
}
