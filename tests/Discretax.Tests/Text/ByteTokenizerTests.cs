using Discretax.Text;
using static TorchSharp.torch;

namespace Discretax.Tests.Text;

public class ByteTokenizerTests
{
    [Theory]
    [InlineData("")]
    [InlineData("Hello, world!\n")]
    [InlineData("café, 中文, 🙂 and 👩‍💻")]
    public void RoundTripsTextAndKeepsIdsInTheByteRange(string text)
    {
        var ids = ByteTokenizer.Encode(text);
        ids.Should().HaveCount(System.Text.Encoding.UTF8.GetByteCount(text));
        ids.All(id => id >= 0 && id < 256).Should().BeTrue();
        ByteTokenizer.Decode(ids).Should().Be(text);
        ByteTokenizer.Decode(ByteTokenizer.Encode(text, appendEndOfText: true)).Should().Be(text);
    }

    [Fact]
    public void EncodesNonAsciiAsItsUtf8Bytes()
    {
        ByteTokenizer.Encode("é").Should().Equal(0xC3, 0xA9);
        ByteTokenizer.Encode("中").Should().Equal(0xE4, 0xB8, 0xAD);
        ByteTokenizer.Encode("🙂").Should().Equal(0xF0, 0x9F, 0x99, 0x82);
        ByteTokenizer.VocabSize.Should().Be(257);
        ByteTokenizer.EndOfText.Should().Be(256);
    }

    [Fact]
    public void EndOfTextIsAppendedAndEndsOrIsSkippedOnDecode()
    {
        ByteTokenizer.Encode("ab", appendEndOfText: true).Should().Equal(97, 98, 256);
        long[] ids = { 97, 256, 98, 256 };
        ByteTokenizer.Decode(ids).Should().Be("a", "decoding stops at the first end-of-text by default");
        ByteTokenizer.Decode(ids, stopAtEndOfText: false).Should().Be("ab");
        // Skipping decodes each piece alone: the two halves of é around an end-of-text are two invalid pieces.
        ByteTokenizer.Decode(new long[] { 0xC3, 256, 0xA9 }, stopAtEndOfText: false).Should().Be("\uFFFD\uFFFD");
    }

    [Fact]
    public void InvalidUtf8DecodesAsTheReplacementCharacter()
    {
        ByteTokenizer.Decode(new long[] { 0x61, 0x80, 0x62 }).Should().Be("a\uFFFDb", "a stray continuation byte");
        ByteTokenizer.Decode(new long[] { 0xE4, 0xB8 }).Should().Be("\uFFFD", "a truncated character");
        ByteTokenizer.Decode(new long[] { 0xFF }).Should().Be("\uFFFD");
        ByteTokenizer.Encode("\uD800").Should().Equal(0xEF, 0xBF, 0xBD);
    }

    [Fact]
    public void DecodeRefusesIdsOutsideTheVocabulary()
    {
        var act = () => ByteTokenizer.Decode(new long[] { 97, 257 });
        act.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("ids");
        var act2 = () => ByteTokenizer.Decode(new long[] { -1 });
        act2.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("ids");
    }

    [Fact]
    public void EncodesToTensorsAndPaddedBatches()
    {
        using var t = ByteTokenizer.EncodeToTensor("hé", appendEndOfText: true);
        t.dtype.Should().Be(ScalarType.Int64);
        t.data<long>().ToArray().Should().Equal(104, 0xC3, 0xA9, 256);

        var (tokens, lengths) = ByteTokenizer.EncodeBatch(new[] { "abc", "d" }, padId: 0);
        using (tokens)
        using (lengths)
        {
            tokens.shape.Should().Equal(2, 3);
            tokens.data<long>().ToArray().Should().Equal(97, 98, 99, 100, 0, 0);
            lengths.data<long>().ToArray().Should().Equal(3, 1);
        }
        var act = () => ByteTokenizer.EncodeBatch(new[] { "a", "" });
        act.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("texts");
    }
}
