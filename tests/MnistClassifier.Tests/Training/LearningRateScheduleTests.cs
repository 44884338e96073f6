using MnistClassifier.Training;

namespace MnistClassifier.Tests.Training;

public class LearningRateScheduleTests
{
    [Fact]
    public void Warm_up_is_linear_then_cosine_decays_to_zero()
    {
        // peak 1, 10 steps, 2 warm-up: steps 0, 1 ramp; steps 2..9 follow (1 + cos(pi (s - 2) / 8)) / 2.
        var s = new LearningRateSchedule(1.0, totalSteps: 10, warmupSteps: 2);
        s.At(0).Should().BeApproximately(0.5, 1e-12);
        s.At(1).Should().BeApproximately(1.0, 1e-12);
        s.At(2).Should().BeApproximately(1.0, 1e-12);
        s.At(4).Should().BeApproximately((1 + Math.Sqrt(0.5)) / 2, 1e-12);   // cos(pi/4)
        s.At(6).Should().BeApproximately(0.5, 1e-12);                        // cos(pi/2) = 0
        s.At(9).Should().BeApproximately(0.0380602337443566, 1e-12);         // (1 + cos(7 pi/8)) / 2
        s.At(10).Should().BeApproximately(0.0, 1e-12);                       // the end
        s.At(100).Should().BeApproximately(0.0, 1e-12);                      // past the end keeps the final rate
    }

    [Fact]
    public void Min_factor_raises_the_floor_and_no_warm_up_starts_at_the_peak()
    {
        var s = new LearningRateSchedule(2e-3, totalSteps: 5, warmupSteps: 0, minFactor: 0.1);
        s.At(0).Should().BeApproximately(2e-3, 1e-15);
        s.At(5).Should().BeApproximately(2e-4, 1e-15);
        s.At(2).Should().BeApproximately(2e-4 + 1.8e-3 * (1 + Math.Cos(Math.PI * 2 / 5)) / 2, 1e-15);
    }

    [Fact]
    public void Bad_arguments_throw_naming_them()
    {
        ((Action)(() => new LearningRateSchedule(0, 10, 1))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("peak");
        ((Action)(() => new LearningRateSchedule(1, 0, 0))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("totalSteps");
        ((Action)(() => new LearningRateSchedule(1, 10, 11))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("warmupSteps");
        ((Action)(() => new LearningRateSchedule(1, 10, 1, 1.5))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("minFactor");
        ((Action)(() => new LearningRateSchedule(1, 10, 1).At(-1))).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("step");
    }
}

public class TrainingOptionsTests
{
    [Theory]
    [InlineData(6000, 20)]
    [InlineData(60000, 2)]
    [InlineData(64, 1875)]
    [InlineData(500000, 1)]
    public void Auto_epochs_train_on_about_120000_images(int trainCount, int epochs)
    {
        TrainingOptions.AutoEpochs(trainCount).Should().Be(epochs);
    }

    [Fact]
    public void Steps_per_epoch_count_the_last_partial_batch()
    {
        new TrainingOptions(BatchSize: 64).StepsPerEpoch(6000).Should().Be(94);
        new TrainingOptions(BatchSize: 16).StepsPerEpoch(64).Should().Be(4);
    }
}
