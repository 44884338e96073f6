namespace Discretax.Distributed.Tests;

/// <summary><see cref="DataShard"/>: disjoint, equal-sized shards, the same on every rank for a seed and epoch.</summary>
public sealed class DataShardTests
{
    [Theory]
    [InlineData(10, 1)]
    [InlineData(10, 2)]
    [InlineData(10, 3)]
    [InlineData(7, 7)]
    [InlineData(1000, 4)]
    public void TheShardsOfAnEpochAreDisjointEqualSizedAndInRange(long count, int world)
    {
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var shards = Enumerable.Range(0, world).Select(r => DataShard.Indices(count, epoch, seed: 42, r, world)).ToArray();
            shards.Should().AllSatisfy(s => s.Should().HaveCount((int)(count / world)));
            var all = shards.SelectMany(s => s).ToArray();
            all.Should().OnlyHaveUniqueItems().And.OnlyContain(i => i >= 0 && i < count);
            // Only the last count mod W indices of the epoch's permutation sit it out.
            all.Should().BeEquivalentTo(DataShard.Permutation(count, epoch, 42).Take((int)(count / world * world)));
        }
    }

    [Fact]
    public void ShardsDependOnlyOnSeedAndEpoch()
    {
        DataShard.Indices(100, 3, 5, 1, 4).Should().Equal(DataShard.Indices(100, 3, 5, 1, 4));
        DataShard.Indices(100, 3, 5, 1, 4).Should().NotEqual(DataShard.Indices(100, 4, 5, 1, 4), "another epoch is another order");
        DataShard.Indices(100, 3, 5, 1, 4).Should().NotEqual(DataShard.Indices(100, 3, 6, 1, 4), "another seed is another order");
        // The generator is the library's own (SplitMix64), so this order holds on every machine and .NET version.
        DataShard.Permutation(8, 0, 7).Should().Equal(2, 5, 3, 4, 1, 7, 0, 6);
    }

    [Fact]
    public void WithoutShufflingRankRTakesEveryWthExample()
    {
        DataShard.Indices(10, 0, 0, 1, 3, shuffle: false).Should().Equal(1, 4, 7);
        DataShard.Indices(10, 5, 0, 0, 3, shuffle: false).Should().Equal(0, 3, 6);
    }

    [Fact]
    public void SizesAndRanksOutOfRangeAreRefused()
    {
        FluentActions.Invoking(() => DataShard.Indices(10, 0, 0, 0, 0)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "worldSize");
        FluentActions.Invoking(() => DataShard.Indices(10, 0, 0, 2, 2)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "rank");
        FluentActions.Invoking(() => DataShard.Indices(10, 0, 0, -1, 2)).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "rank");
        FluentActions.Invoking(() => DataShard.Indices(1, 0, 0, 0, 2)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "count").WithMessage("Expected at least one example per process (2); got 1.*");
    }
}
