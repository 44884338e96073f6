using MnistClassifier.Data;
using MnistClassifier.Models;

namespace MnistClassifier.Tests.Models;

public class CheckpointTests
{
    private static readonly NetworkSpec Spec = new(ModelCatalog.DefaultName, SequenceLayout.Rows, Hidden: 8, Blocks: 1, DropRate: 0.0, InputFeatures: 28, SequenceLength: 28);

    [Fact]
    public void Spec_round_trips_through_the_side_file()
    {
        using var dir = new TempDir();
        var path = dir.File("m.pt");
        using (var net = ModelCatalog.Build(Spec)) Checkpoint.Save(path, net, Spec);
        File.Exists(Checkpoint.SpecPath(path)).Should().BeTrue();
        File.ReadAllText(Checkpoint.SpecPath(path)).Should().Contain("\"layout\": \"rows\"");
        Checkpoint.ReadSpec(path).Should().Be(Spec);
    }

    [Fact]
    public void Weights_of_another_shape_give_a_clear_error()
    {
        using var dir = new TempDir();
        var path = dir.File("m.pt");
        using (var net = ModelCatalog.Build(Spec)) Checkpoint.Save(path, net, Spec);
        // The side file now claims hidden 16: the weights (hidden 8) do not fit.
        File.WriteAllText(Checkpoint.SpecPath(path), File.ReadAllText(Checkpoint.SpecPath(path)).Replace("\"hidden\": 8", "\"hidden\": 16"));
        var act = () => Checkpoint.Load(path);
        act.Should().Throw<CheckpointException>().WithMessage($"{path}: the weights do not fit the model it describes (*hidden 16*");
    }

    [Fact]
    public void Missing_checkpoint_missing_side_file_and_unknown_model_are_reported()
    {
        using var dir = new TempDir();
        var path = dir.File("m.pt");
        ((Action)(() => Checkpoint.Load(path))).Should().Throw<CheckpointException>().WithMessage($"{path}: checkpoint not found");
        using (var net = ModelCatalog.Build(Spec)) Checkpoint.Save(path, net, Spec);
        var json = File.ReadAllText(Checkpoint.SpecPath(path));
        File.WriteAllText(Checkpoint.SpecPath(path), json.Replace(ModelCatalog.DefaultName, "no-such-model"));
        ((Action)(() => Checkpoint.Load(path))).Should().Throw<CheckpointException>().WithMessage("*invalid model description*Unknown model 'no-such-model'*");
        File.WriteAllText(Checkpoint.SpecPath(path), "{ not json");
        ((Action)(() => Checkpoint.Load(path))).Should().Throw<CheckpointException>().WithMessage("*not a valid model description*");
        File.Delete(Checkpoint.SpecPath(path));
        ((Action)(() => Checkpoint.Load(path))).Should().Throw<CheckpointException>().WithMessage("*no m.pt.json beside it*");
    }

    [Fact]
    public void Explicit_options_that_differ_from_the_checkpoint_are_refused()
    {
        Checkpoint.CheckRequested("m.pt", Spec, new Dictionary<string, string> { ["--model"] = ModelCatalog.DefaultName.ToUpperInvariant(), ["--hidden"] = "8" });
        var act = () => Checkpoint.CheckRequested("m.pt", Spec, new Dictionary<string, string> { ["--hidden"] = "32" });
        act.Should().Throw<CheckpointException>().WithMessage("m.pt: was saved with --hidden 8, but --hidden 32 was asked for*");
        ((Action)(() => Checkpoint.CheckRequested("m.pt", Spec, new Dictionary<string, string> { ["--layout"] = "pixels" })))
            .Should().Throw<CheckpointException>().WithMessage("*--layout rows*--layout pixels*");
    }
}
