namespace MnistClassifier.Training;

/// <summary>
/// Linear warm-up then cosine decay, per optimizer step s = 0, 1, ..., S-1 with W warm-up steps and peak rate p:
/// <c>lr(s) = p (s + 1) / W</c> for s &lt; W, else
/// <c>lr(s) = m + (p - m) (1 + cos(pi (s - W) / max(1, S - W))) / 2</c>, where m = <c>minFactor</c> * p.
/// So the first step uses p / W, step W uses p, and the rate falls towards m at the last step.
/// </summary>
public sealed class LearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="peak">The peak rate p (positive).</param>
    /// <param name="totalSteps">All steps S of the run (at least 1).</param>
    /// <param name="warmupSteps">The warm-up steps W in [0, S].</param>
    /// <param name="minFactor">The final rate as a fraction of the peak, in [0, 1].</param>
    public LearningRateSchedule(double peak, int totalSteps, int warmupSteps, double minFactor = 0.0)
    {
        if (!(peak > 0) || double.IsInfinity(peak)) throw new ArgumentOutOfRangeException(nameof(peak), peak, $"Expected a positive learning rate; got {peak}.");
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, $"Expected at least 1 step; got {totalSteps}.");
        if (warmupSteps < 0 || warmupSteps > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, $"Expected warm-up steps in [0, {totalSteps}]; got {warmupSteps}.");
        if (!(minFactor >= 0 && minFactor <= 1)) throw new ArgumentOutOfRangeException(nameof(minFactor), minFactor, $"Expected a factor in [0, 1]; got {minFactor}.");
        Peak = peak;
        TotalSteps = totalSteps;
        WarmupSteps = warmupSteps;
        MinFactor = minFactor;
    }

    /// <summary>The peak rate p.</summary>
    public double Peak { get; }

    /// <summary>All steps S.</summary>
    public int TotalSteps { get; }

    /// <summary>The warm-up steps W.</summary>
    public int WarmupSteps { get; }

    /// <summary>The final rate as a fraction of the peak.</summary>
    public double MinFactor { get; }

    /// <summary>The rate of step <paramref name="step"/> (steps past the end keep the final rate).</summary>
    /// <param name="step">The 0-based step.</param>
    public double At(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, $"Expected a step of at least 0; got {step}.");
        if (step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps));
        double min = MinFactor * Peak;
        return min + (Peak - min) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
