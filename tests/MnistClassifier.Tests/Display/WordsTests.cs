using MnistClassifier.Display;

namespace MnistClassifier.Tests.Display;

public class WordsTests
{
    [Theory]
    [InlineData(1, "epoch", null, "1 epoch")]
    [InlineData(2, "epoch", null, "2 epochs")]
    [InlineData(0, "thread", null, "0 threads")]
    [InlineData(1000, "test image", null, "1,000 test images")]
    [InlineData(1, "class", "classes", "1 class")]
    [InlineData(3, "class", "classes", "3 classes")]
    public void Count_is_singular_for_one_only(long n, string singular, string? plural, string expected) =>
        Words.Count(n, singular, plural).Should().Be(expected);
}
