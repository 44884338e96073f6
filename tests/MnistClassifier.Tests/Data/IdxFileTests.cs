using System.IO.Compression;
using MnistClassifier.Data;

namespace MnistClassifier.Tests.Data;

public class IdxFileTests
{
    // An IDX3 file of 2 images of 2x3, written byte by byte (big-endian header), independent of IdxFile's writer.
    private static readonly byte[] TwoImages =
    {
        0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
        1, 2, 3, 4, 5, 6,
        250, 251, 252, 253, 254, 255,
    };

    private static readonly byte[] ThreeLabels = { 0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9 };

    private static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_images_raw_and_gzipped_whatever_the_name(bool gzip)
    {
        using var dir = new TempDir();
        var path = dir.File("images.bin"); // the name says nothing: gzip is recognized by its magic bytes
        File.WriteAllBytes(path, gzip ? Gzip(TwoImages) : TwoImages);
        var images = IdxFile.ReadImages(path);
        images.Count.Should().Be(2);
        images.Rows.Should().Be(2);
        images.Columns.Should().Be(3);
        images.Image(0).ToArray().Should().Equal(1, 2, 3, 4, 5, 6);
        images.Image(1).ToArray().Should().Equal(250, 251, 252, 253, 254, 255);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_labels_raw_and_gzipped(bool gzip)
    {
        using var dir = new TempDir();
        var path = dir.File("labels" + (gzip ? ".gz" : ""));
        File.WriteAllBytes(path, gzip ? Gzip(ThreeLabels) : ThreeLabels);
        IdxFile.ReadLabels(path).Should().Equal(7, 0, 9);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Writer_output_reads_back_and_raw_form_is_the_hand_written_bytes(bool gzip)
    {
        using var dir = new TempDir();
        var images = new IdxImages(2, 2, 3, TwoImages[16..]);
        IdxFile.WriteImages(dir.File("i"), images, gzip);
        IdxFile.WriteLabels(dir.File("l"), new byte[] { 7, 0, 9 }, gzip);
        if (!gzip)
        {
            File.ReadAllBytes(dir.File("i")).Should().Equal(TwoImages);
            File.ReadAllBytes(dir.File("l")).Should().Equal(ThreeLabels);
        }
        IdxFile.ReadImages(dir.File("i")).Pixels.Should().Equal(images.Pixels);
        IdxFile.ReadLabels(dir.File("l")).Should().Equal(7, 0, 9);
    }

    [Fact]
    public void Wrong_magic_names_the_file_and_both_numbers()
    {
        using var dir = new TempDir();
        var path = dir.File("train-images-idx3-ubyte");
        File.WriteAllBytes(path, ThreeLabels); // a label file where images are expected
        var act = () => IdxFile.ReadImages(path);
        act.Should().Throw<DataFileException>()
            .Where(e => e.FilePath == path)
            .WithMessage($"{path}: wrong magic number 0x00000801, expected 0x00000803*");
        var labels = dir.File("labels");
        File.WriteAllBytes(labels, TwoImages);
        ((Action)(() => IdxFile.ReadLabels(labels))).Should().Throw<DataFileException>().WithMessage("*wrong magic number 0x00000803, expected 0x00000801*");
    }

    [Fact]
    public void Truncated_images_say_how_many_bytes_were_announced_and_found()
    {
        using var dir = new TempDir();
        var path = dir.File("t.gz");
        File.WriteAllBytes(path, Gzip(TwoImages[..^2]));
        var act = () => IdxFile.ReadImages(path);
        act.Should().Throw<DataFileException>().WithMessage($"{path}: truncated: the header announces 2 images of 2x3 (12 bytes) but only 10 bytes follow");
    }

    [Fact]
    public void Truncated_header_and_truncated_labels_are_reported()
    {
        using var dir = new TempDir();
        var path = dir.File("h");
        File.WriteAllBytes(path, TwoImages[..10]);
        ((Action)(() => IdxFile.ReadImages(path))).Should().Throw<DataFileException>().WithMessage($"{path}: truncated: the IDX3 header needs 16 bytes, the file has 10");
        File.WriteAllBytes(path, new byte[] { 0, 0 });
        ((Action)(() => IdxFile.ReadImages(path))).Should().Throw<DataFileException>().WithMessage("*truncated*");
        File.WriteAllBytes(path, ThreeLabels[..^1]);
        ((Action)(() => IdxFile.ReadLabels(path))).Should().Throw<DataFileException>().WithMessage($"{path}: truncated: the header announces 3 labels but only 2 bytes follow");
    }

    [Fact]
    public void Trailing_bytes_are_reported_as_corrupt()
    {
        using var dir = new TempDir();
        var path = dir.File("x");
        File.WriteAllBytes(path, ThreeLabels.Append((byte)1).ToArray());
        ((Action)(() => IdxFile.ReadLabels(path))).Should().Throw<DataFileException>().WithMessage("*corrupt: the header announces 3 labels but 4 bytes follow");
    }

    [Fact]
    public void Corrupt_gzip_and_missing_file_are_reported()
    {
        using var dir = new TempDir();
        var path = dir.File("bad.gz");
        var gz = Gzip(TwoImages);
        for (int i = 10; i < gz.Length; i++) gz[i] ^= 0x5A; // keep the gzip magic, scramble the stream
        File.WriteAllBytes(path, gz);
        ((Action)(() => IdxFile.ReadImages(path))).Should().Throw<DataFileException>().Where(e => e.FilePath == path);
        var missing = dir.File("none");
        ((Action)(() => IdxFile.ReadImages(missing))).Should().Throw<DataFileException>().WithMessage($"{missing}: file not found");
    }

    [Fact]
    public void Label_count_not_matching_image_count_names_the_label_file()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("i"), TwoImages);
        File.WriteAllBytes(dir.File("l"), ThreeLabels);
        var act = () => LabeledImages.Read(dir.File("i"), dir.File("l"));
        act.Should().Throw<DataFileException>().WithMessage($"{dir.File("l")}: has 3 labels but i has 2 images");
    }

    [Fact]
    public void A_label_outside_the_classes_is_reported()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("i"), TwoImages);
        File.WriteAllBytes(dir.File("l"), new byte[] { 0, 0, 8, 1, 0, 0, 0, 2, 3, 12 });
        var act = () => LabeledImages.Read(dir.File("i"), dir.File("l"));
        act.Should().Throw<DataFileException>().WithMessage("*label 1 is 12, expected a class in [0, 10)");
    }
}
