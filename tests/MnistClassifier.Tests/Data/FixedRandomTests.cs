using MnistClassifier.Data;

namespace MnistClassifier.Tests.Data;

public class FixedRandomTests
{
    [Fact]
    public void Matches_the_SplitMix64_reference_outputs_for_seed_0()
    {
        // Reference: Vigna's splitmix64.c with x = 0 gives these first three outputs.
        var r = new FixedRandom(0);
        r.NextUInt64().Should().Be(0xE220A8397B1DCDAFUL);
        r.NextUInt64().Should().Be(0x6E789E6AA1B965F4UL);
        r.NextUInt64().Should().Be(0x06C45D188009454FUL);
    }

    [Fact]
    public void Next_stays_in_bounds_and_shuffle_keeps_the_items()
    {
        var r = new FixedRandom(42);
        Enumerable.Range(0, 1000).Select(_ => r.Next(7)).Should().OnlyContain(v => v >= 0 && v < 7).And.Contain(0).And.Contain(6);
        var items = Enumerable.Range(0, 50).ToArray();
        r.Shuffle(items);
        items.Order().Should().Equal(Enumerable.Range(0, 50));
        ((Action)(() => r.Next(0))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("bound");
    }

    [Fact]
    public void Balanced_subset_takes_the_same_number_of_each_class_without_repeats()
    {
        var (images, labels) = TestData.Synthetic(200);
        var set = new LabeledImages(images, labels);
        var subset = set.BalancedSubset(50, seed: 3);
        subset.Count.Should().Be(50);
        subset.Labels.GroupBy(l => l).Should().HaveCount(10).And.OnlyContain(g => g.Count() == 5);
        // Every picked image is a distinct image of the source with its own label.
        var picked = Enumerable.Range(0, 50).Select(i => subset.Images.Image(i).ToArray()).ToList();
        picked.Select(p => string.Join(",", p)).Distinct().Should().HaveCount(50);
        for (int i = 0; i < 50; i++)
        {
            int source = Enumerable.Range(0, 200).Single(j => images.Image(j).SequenceEqual(picked[i]));
            subset.Labels[i].Should().Be(labels[source]);
        }
        set.BalancedSubset(50, seed: 3).Labels.Should().Equal(subset.Labels, "the same seed draws the same subset");
        ((Action)(() => set.BalancedSubset(55, 3))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("count");
    }
}
