using TextGenerator.Data;

namespace TextGenerator.Tests;

public class WindowPackingTests
{
    [Fact]
    public void Every_token_is_in_exactly_one_window_in_order_and_the_last_window_is_partial()
    {
        var tokens = Enumerable.Range(0, 23).Select(i => (long)i).ToArray();
        var windows = WindowPacking.Pack(tokens, 5);
        windows.Select(w => w.Length).Should().Equal(5, 5, 5, 5, 3);
        windows.SelectMany(w => w).Should().Equal(tokens);
    }

    [Fact]
    public void An_exact_multiple_gives_full_windows_and_a_last_single_token_is_dropped()
    {
        WindowPacking.Pack(Enumerable.Range(0, 10).Select(i => (long)i).ToArray(), 5).Select(w => w.Length).Should().Equal(5, 5);
        WindowPacking.Pack(Enumerable.Range(0, 11).Select(i => (long)i).ToArray(), 5).Select(w => w.Length).Should().Equal(5, 5);
    }

    [Fact]
    public void Batches_pad_the_partial_window_with_end_of_text_and_give_its_length()
    {
        var windows = WindowPacking.Pack(Enumerable.Range(0, 14).Select(i => (long)i).ToArray(), 4);
        var batches = WindowPacking.Batches(windows, 3).ToList();
        batches.Select(b => b.Lengths.Length).Should().Equal(3, 1);
        batches[0].Lengths.Should().Equal(4, 4, 4);
        batches[1].Lengths.Should().Equal(2);
        var one = WindowPacking.Batches(windows, 4).Single();
        one.Lengths.Should().Equal(4, 4, 4, 2);
        one.Tokens[3, 0].Should().Be(12);
        one.Tokens[3, 1].Should().Be(13);
        one.Tokens[3, 2].Should().Be(Discretax.Text.ByteTokenizer.EndOfText);
        one.Tokens[3, 3].Should().Be(Discretax.Text.ByteTokenizer.EndOfText);
    }
}
