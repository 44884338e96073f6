using Discretax.Text;

namespace TextGenerator.Data;

/// <summary>
/// The documents as token streams: each encoded with <see cref="ByteTokenizer"/> plus <see cref="ByteTokenizer.EndOfText"/>,
/// shuffled by document with the seed, split 90/10 by document into train and held-out, each part concatenated.
/// </summary>
/// <param name="Train">The training tokens, documents concatenated.</param>
/// <param name="HeldOut">The held-out tokens, documents concatenated.</param>
/// <param name="TrainDocuments">The number of training documents.</param>
/// <param name="HeldOutDocuments">The number of held-out documents.</param>
internal sealed record Corpus(long[] Train, long[] HeldOut, int TrainDocuments, int HeldOutDocuments)
{
    /// <summary>The held-out share of the documents.</summary>
    public const double HeldOutFraction = 0.1;

    /// <summary>Builds the corpus; with a single document, it is both train and held-out.</summary>
    /// <param name="documents">The documents (at least one).</param>
    /// <param name="seed">The shuffling seed.</param>
    public static Corpus Build(IReadOnlyList<string> documents, long seed)
    {
        ArgumentNullException.ThrowIfNull(documents);
        if (documents.Count == 0) throw new ArgumentException("Expected at least one document.", nameof(documents));
        var order = Enumerable.Range(0, documents.Count).ToArray();
        new Random(unchecked((int)seed ^ (int)(seed >> 32))).Shuffle(order);
        int heldOut = documents.Count == 1 ? 0 : Math.Max(1, (int)Math.Round(documents.Count * HeldOutFraction));
        var held = order.Take(heldOut).ToArray();
        var train = order.Skip(heldOut).ToArray();
        if (held.Length == 0) held = train;
        long[] Concat(int[] ids) => ids.SelectMany(i => ByteTokenizer.Encode(documents[i], appendEndOfText: true)).ToArray();
        return new Corpus(Concat(train), Concat(held), train.Length, held.Length);
    }
}
