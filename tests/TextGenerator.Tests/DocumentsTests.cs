using System.Text;
using TextGenerator.Data;

namespace TextGenerator.Tests;

public class DocumentsTests
{
    [Fact]
    public void Percent_records_are_documents_with_a_trailing_record_kept_and_empty_ones_dropped()
    {
        var docs = Documents.Split("first line\nsecond line\n%\n%\n  \n%\nsecond\r\n%\nlast without separator\n");
        docs.Should().Equal("first line\nsecond line", "second", "last without separator");
    }

    [Fact]
    public void A_record_may_hold_blank_lines_when_the_file_has_percent_lines()
    {
        Documents.Split("a\n\nb\n%\nc\n").Should().Equal("a\n\nb", "c");
    }

    [Fact]
    public void Without_percent_lines_paragraphs_are_documents()
    {
        Documents.Split("para one\nstill one\n\n\n   \npara two\n\npara three").Should().Equal("para one\nstill one", "para two", "para three");
    }

    [Fact]
    public void An_inline_percent_is_not_a_separator()
    {
        Documents.Split("100% sure\n\nnext").Should().Equal("100% sure", "next");
    }

    [Fact]
    public void A_missing_file_is_an_error()
    {
        var act = () => Documents.ReadFile("/nonexistent/file.txt");
        act.Should().Throw<TextDataException>().WithMessage("--text /nonexistent/file.txt: no such file");
    }

    [Fact]
    public void Fortunes_are_read_from_plain_files_only()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a"), "one\n%\ntwo\n%\n");
        File.WriteAllText(dir.File("a.dat"), "not\n%\nread\n");
        File.WriteAllText(dir.File("b.u8"), "not read\n");
        Directory.CreateDirectory(dir.File("off"));
        File.WriteAllText(Path.Combine(dir.File("off"), "c"), "not read either\n");
        File.WriteAllText(dir.File("z"), "three\n");
        Documents.ReadFortunes(dir.Path).Should().Equal("one", "two", "three");
    }

    [Fact]
    public void A_missing_fortunes_folder_names_the_package_and_text()
    {
        var act = () => Documents.ReadFortunes("/nonexistent/fortunes");
        act.Should().Throw<TextDataException>().Which.Hint.Should().Contain("apt-get install fortunes").And.Contain("--text FILE");
    }

    [Fact]
    public void The_corpus_splits_by_document_and_appends_end_of_text()
    {
        var docs = Enumerable.Range(0, 20).Select(i => $"doc {i}").ToList();
        var corpus = Corpus.Build(docs, seed: 1);
        corpus.TrainDocuments.Should().Be(18);
        corpus.HeldOutDocuments.Should().Be(2);
        corpus.Train.Count(t => t == Discretax.Text.ByteTokenizer.EndOfText).Should().Be(18);
        corpus.HeldOut.Count(t => t == Discretax.Text.ByteTokenizer.EndOfText).Should().Be(2);
        (corpus.Train.Length + corpus.HeldOut.Length).Should().Be(docs.Sum(d => Encoding.UTF8.GetByteCount(d) + 1));
        Corpus.Build(docs, seed: 1).Train.Should().Equal(corpus.Train, "the same seed gives the same split");
    }
}
