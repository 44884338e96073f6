using MnistClassifier.Data;
using MnistClassifier.Models;
using MnistClassifier.Training;
using static TorchSharp.torch;

namespace MnistClassifier.Tests.Training;

public class TrainerSmokeTests
{
    public static TheoryData<string> ModelNames()
    {
        var data = new TheoryData<string>();
        foreach (var name in ModelCatalog.Names) data.Add(name);
        return data;
    }

    [Theory]
    [MemberData(nameof(ModelNames))]
    public void Every_model_learns_64_embedded_images_and_save_then_load_gives_identical_predictions(string model)
    {
        var set = TestData.Embedded.Train.Take(64);
        var spec = new NetworkSpec(model, SequenceLayout.Rows, Hidden: 16, Blocks: 1, DropRate: 0.1, InputFeatures: 28, SequenceLength: 28);
        using var net = ModelCatalog.Build(spec);
        using var x = SequenceEncoding.ToTensor(set.Images, SequenceLayout.Rows);
        using var y = SequenceEncoding.LabelsToTensor(set.Labels);
        var options = new TrainingOptions(Epochs: 8, BatchSize: 16, LearningRate: 1e-2, WeightDecay: 0.01, Seed: 7);
        using var trainer = new Trainer(net, options, trainCount: 64);

        var losses = new List<double>();
        for (int epoch = 1; epoch <= options.Epochs; epoch++)
        {
            var (loss, accuracy, _) = trainer.TrainEpoch(x, y, epoch);
            double.IsFinite(loss).Should().BeTrue();
            accuracy.Should().BeInRange(0, 1);
            losses.Add(loss);
        }
        trainer.Step.Should().Be(32, "8 epochs of 4 batches");
        // Mean training loss over an epoch: the last epoch's is well below the first's (chance is ln 10 = 2.30).
        losses[^1].Should().BeLessThan(0.8 * losses[0], $"the loss should fall; epochs gave {string.Join(", ", losses.Select(l => l.ToString("F3")))}");

        using var dir = new TempDir();
        var path = dir.File("model.pt");
        Checkpoint.Save(path, net, spec);
        using var before = Trainer.Predict(net, x, 32);
        var (loaded, loadedSpec) = Checkpoint.Load(path);
        using (loaded)
        {
            loadedSpec.Should().Be(spec);
            using var after = Trainer.Predict(loaded, x, 32);
            after.shape.Should().Equal(64, 10);
            (before - after).abs().max().item<double>().Should().Be(0, "the loaded model predicts exactly what the saved one did");
        }
        // Probabilities sum to one per image.
        (before.sum(1) - 1).abs().max().item<double>().Should().BeLessThan(1e-5);
    }

    [Fact]
    public void Evaluate_counts_a_confusion_matrix_matching_the_predictions()
    {
        var set = TestData.Embedded.Test.Take(40);
        var spec = new NetworkSpec(ModelCatalog.DefaultName, SequenceLayout.Rows, 8, 1, 0.0, 28, 28);
        using var net = ModelCatalog.Build(spec);
        using var x = SequenceEncoding.ToTensor(set.Images, SequenceLayout.Rows);
        using var y = SequenceEncoding.LabelsToTensor(set.Labels);
        var result = Trainer.Evaluate(net, x, y, 10, batchSize: 16);
        using var p = Trainer.Predict(net, x, 7);
        var predicted = p.argmax(1).data<long>().ToArray();
        result.Count.Should().Be(40);
        for (int t = 0; t < 10; t++)
            for (int c = 0; c < 10; c++)
                result.Confusion[t, c].Should().Be(Enumerable.Range(0, 40).Count(i => set.Labels[i] == t && predicted[i] == c));
        // The loss is the mean negative log-probability of the true class, computed here in float64 by hand.
        var probs = p.data<double>().ToArray();
        double nll = Enumerable.Range(0, 40).Average(i => -Math.Log(probs[i * 10 + set.Labels[i]]));
        result.Loss.Should().BeApproximately(nll, 1e-9);
    }

    [Fact]
    public void Training_options_and_data_are_validated()
    {
        ((Action)(() => new TrainingOptions(Epochs: 0).Validate())).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("Epochs");
        ((Action)(() => new TrainingOptions(WarmupFraction: 2).Validate())).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("WarmupFraction");
        var spec = new NetworkSpec(ModelCatalog.DefaultName, SequenceLayout.Rows, 8, 1, 0.0, 28, 28);
        using var net = ModelCatalog.Build(spec);
        using var trainer = new Trainer(net, new TrainingOptions(Epochs: 1, BatchSize: 4), 8);
        using var x = zeros(8, 28, 28);
        using var badLabels = zeros(new long[] { 7 }, ScalarType.Int64);
        ((Action)(() => trainer.TrainEpoch(x, badLabels, 1))).Should().Throw<ArgumentException>().WithParameterName("labels").WithMessage("*[8]*[7]*");
    }
}
