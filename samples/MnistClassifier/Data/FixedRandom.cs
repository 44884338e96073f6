namespace MnistClassifier.Data;

/// <summary>
/// A small random generator whose sequence is fixed forever (SplitMix64, Steele et al. 2014), so that the
/// embedded subset and the permuted layout can be reproduced exactly by any later version of the program,
/// unlike <see cref="Random"/>, whose algorithm .NET may change.
/// </summary>
public sealed class FixedRandom
{
    private ulong state;

    /// <summary>Creates the generator.</summary>
    /// <param name="seed">The seed.</param>
    public FixedRandom(ulong seed) => state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform integer in [0, <paramref name="bound"/>), without modulo bias.</summary>
    /// <param name="bound">The exclusive upper bound (at least 1).</param>
    public int Next(int bound)
    {
        if (bound < 1) throw new ArgumentOutOfRangeException(nameof(bound), bound, $"Expected a bound of at least 1; got {bound}.");
        ulong b = (ulong)bound;
        ulong limit = ulong.MaxValue - ulong.MaxValue % b;
        ulong r;
        do r = NextUInt64(); while (r >= limit);
        return (int)(r % b);
    }

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher-Yates).</summary>
    /// <param name="items">The items.</param>
    public void Shuffle<T>(T[] items)
    {
        ArgumentNullException.ThrowIfNull(items);
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
