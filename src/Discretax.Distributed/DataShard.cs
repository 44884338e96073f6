namespace Discretax.Distributed;

/// <summary>
/// Splits a data set of <c>count</c> examples among the ranks for one epoch, as <c>DistributedSampler</c> does with
/// <c>drop_last</c>: the epoch's order is one permutation <c>pi</c> of <c>[0, count)</c>, the same on every rank (a
/// function of the seed and the epoch only); rank r of W takes <c>pi[r], pi[r + W], pi[r + 2W], ...</c>, <c>count / W</c>
/// (rounded down) indices. The shards of one epoch are disjoint and of equal size, so every rank takes the same number
/// of steps (a rank with one batch more would wait alone in its all-reduce); the <c>count mod W</c> examples at the end
/// of the permutation sit the epoch out, other ones each epoch when shuffling.
/// </summary>
public static class DataShard
{
    /// <summary>
    /// The indices rank <paramref name="rank"/> of <paramref name="worldSize"/> trains on in epoch
    /// <paramref name="epoch"/>, in the order to visit them.
    /// </summary>
    /// <param name="count">The examples in the data set, at least <paramref name="worldSize"/>.</param>
    /// <param name="epoch">The epoch (any integer; each gives another permutation).</param>
    /// <param name="seed">The seed of the permutations (the same on every rank).</param>
    /// <param name="rank">This process's rank, in <c>[0, worldSize)</c>.</param>
    /// <param name="worldSize">The number of processes, at least 1.</param>
    /// <param name="shuffle">Permute (default); false: <c>pi</c> is the identity, rank r takes <c>r, r + W, ...</c>.</param>
    /// <returns><c>count / worldSize</c> distinct indices in <c>[0, count)</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size or the rank is out of range.</exception>
    public static long[] Indices(long count, int epoch, long seed, int rank, int worldSize, bool shuffle = true)
    {
        if (worldSize < 1)
            throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, $"Expected at least 1 process; got {worldSize}.");
        if (rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Expected a rank in [0, {worldSize}); got {rank}.");
        if (count < worldSize)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Expected at least one example per process ({worldSize}); got {count}.");
        long perRank = count / worldSize;
        var result = new long[perRank];
        if (!shuffle)
        {
            for (long i = 0; i < perRank; i++) result[i] = rank + i * worldSize;
            return result;
        }
        var order = Permutation(count, epoch, seed);
        for (long i = 0; i < perRank; i++) result[i] = order[rank + i * worldSize];
        return result;
    }

    /// <summary>
    /// The epoch's permutation of <c>[0, count)</c>: Fisher-Yates driven by SplitMix64 seeded with a mix of
    /// <paramref name="seed"/> and <paramref name="epoch"/>; the same on every machine and .NET version.
    /// </summary>
    internal static long[] Permutation(long count, int epoch, long seed)
    {
        var order = new long[count];
        for (long i = 0; i < count; i++) order[i] = i;
        ulong state = Mix((ulong)seed) ^ Mix(0xD1B54A32D192ED03UL + (ulong)(uint)epoch);
        for (long i = count - 1; i > 0; i--)
        {
            state += 0x9E3779B97F4A7C15UL;
            ulong r = Mix(state);
            // Lemire's multiply-shift map to [0, i]: bias below (i + 1) / 2^64, nothing a shuffle can show.
            long j = (long)(ulong)(((UInt128)r * (ulong)(i + 1)) >> 64);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>SplitMix64's output function.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
