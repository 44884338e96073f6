using MnistClassifier.Data;

namespace MnistClassifier.Tests.Data;

public class DataSourceTests
{
    [Fact]
    public void The_data_option_comes_first()
    {
        using var given = new TempDir();
        using var debian = new TempDir();
        TestData.WriteSet(debian.Path, 10, 10, gzip: true);
        var source = DataSource.Resolve(given.Path, debian.Path);
        source.Directory.Should().Be(Path.GetFullPath(given.Path));
        source.ClassNames.Should().Equal(DataSource.DigitClassNames);
    }

    [Fact]
    public void Debian_directory_is_used_when_it_holds_all_four_files_else_the_embedded_subset()
    {
        using var debian = new TempDir();
        using var embedded = new TempDir();
        TestData.WriteSet(debian.Path, 10, 10, gzip: true);
        DataSource.Resolve(null, debian.Path, embedded.Path).Directory.Should().Be(debian.Path);
        File.Delete(Path.Combine(debian.Path, "t10k-labels-idx1-ubyte.gz"));
        TestData.WriteSet(embedded.Path, 10, 10, gzip: false);
        var source = DataSource.Resolve(null, debian.Path, embedded.Path);
        source.Directory.Should().Be(embedded.Path);
        source.ClassNames.Should().Equal(DataSource.FashionClassNames);
    }

    [Fact]
    public void Missing_data_directory_and_missing_embedded_subset_give_clear_errors()
    {
        using var dir = new TempDir();
        var missing = Path.Combine(dir.Path, "nope");
        ((Action)(() => DataSource.Resolve(missing))).Should().Throw<DataFileException>().WithMessage($"{missing}: directory not found (given with --data)");
        ((Action)(() => DataSource.Resolve(null, null, dir.Path))).Should().Throw<DataFileException>().WithMessage("*embedded Fashion-MNIST subset is missing*--data*");
    }

    [Fact]
    public void A_missing_file_in_the_data_directory_is_named()
    {
        using var dir = new TempDir();
        TestData.WriteSet(dir.Path, 10, 10, gzip: false);
        File.Delete(Path.Combine(dir.Path, "train-labels-idx1-ubyte"));
        var act = () => MnistData.Load(DataSource.Resolve(dir.Path));
        act.Should().Throw<DataFileException>().WithMessage($"{Path.Combine(dir.Path, "train-labels-idx1-ubyte")}: file not found*");
    }

    [Fact]
    public void The_embedded_subset_is_found_next_to_the_binary_and_is_class_balanced()
    {
        var data = TestData.Embedded;
        data.Source.Directory.Should().StartWith(AppContext.BaseDirectory);
        data.Train.Count.Should().Be(6000);
        data.Test.Count.Should().Be(1000);
        data.Train.Images.Rows.Should().Be(28);
        data.Train.Images.Columns.Should().Be(28);
        data.Train.Labels.GroupBy(l => l).Should().HaveCount(10).And.OnlyContain(g => g.Count() == 600);
        data.Test.Labels.GroupBy(l => l).Should().HaveCount(10).And.OnlyContain(g => g.Count() == 100);
    }
}
