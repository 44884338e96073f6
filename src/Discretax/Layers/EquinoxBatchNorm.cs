using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// Batch normalization as equinox's <c>BatchNorm(mode="ema")</c> computes it, the norm of discretax's
/// <c>StandardBlock</c> (<c>channelwise_affine=False</c>, <c>momentum=0.99</c>, <c>eps=1e-5</c>): statistics per
/// feature over every row (batch and time), and in training the input is normalized with the <b>running</b>
/// statistics after they are updated with the batch:
/// <code>
/// m_b, v_b = mean(x), mean((x - m_b)^2)                     (per feature; v_b biased)
/// first step:  mean, var = m_b, v_b
/// later:       mean = (1 - momentum) m_b + momentum running_mean,   var = (1 - momentum) v_b + momentum running_var
/// running_mean, running_var = mean, var                      (stored detached)
/// y = (x - mean) / sqrt(var + eps)
/// </code>
/// Gradients flow through <c>m_b</c> and <c>v_b</c> only (weight 1 on the first step, <c>1 - momentum</c> after), as
/// in JAX where the running statistics are state, not parameters. In eval mode <c>y = (x - running_mean) /
/// sqrt(running_var + eps)</c>. Before the first training step the running statistics are 0 and 1 (equinox leaves
/// them uninitialized). <c>momentum</c> follows equinox's convention (the weight of the old statistic), the opposite of
/// PyTorch's.
/// </summary>
/// <remarks>
/// This differs from PyTorch's <c>BatchNorm1d</c> (<see cref="Blocks.NormKind.Batch"/>) in three ways: training batches
/// are normalized with the updated running statistics instead of their own, the running variance is the biased one,
/// and the first step sets the running statistics instead of averaging them with 0 and 1. Buffers:
/// <c>running_mean</c>, <c>running_var</c> <c>[features]</c> and <c>num_batches_tracked</c> (int64, the steps taken;
/// 0 means the next training step is the first). The input is <c>[..., features]</c> (features last).
/// </remarks>
public sealed class EquinoxBatchNorm : nn.Module<Tensor, Tensor>
{
    /// <summary>Creates the norm.</summary>
    /// <param name="features">The number of features (the last dimension).</param>
    /// <param name="eps">Added to the variance; must be positive.</param>
    /// <param name="momentum">The weight of the old running statistics, in [0, 1) (equinox's convention; 0.99 in discretax).</param>
    public EquinoxBatchNorm(long features, double eps = 1e-5, double momentum = 0.99) : base(nameof(EquinoxBatchNorm))
    {
        Check.AtLeast(features, 1);
        Check.PositiveFinite(eps);
        if (!(momentum >= 0 && momentum < 1))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, $"Expected a momentum in [0, 1); got {momentum}.");
        Features = features;
        Eps = eps;
        Momentum = momentum;
        register_buffer("running_mean", zeros(features));
        register_buffer("running_var", ones(features));
        register_buffer("num_batches_tracked", tensor(0L));
    }

    /// <summary>The number of features.</summary>
    public long Features { get; }

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps { get; }

    /// <summary>The weight of the old running statistics (equinox's convention).</summary>
    public double Momentum { get; }

    /// <summary>The running mean <c>[features]</c>.</summary>
    public Tensor RunningMean => Buffer("running_mean");

    /// <summary>The running (biased) variance <c>[features]</c>.</summary>
    public Tensor RunningVar => Buffer("running_var");

    /// <summary>The training steps taken (0: the next one sets the running statistics).</summary>
    public long StepsTaken => Buffer("num_batches_tracked").to(ScalarType.Int64).item<long>();

    /// <summary>Normalizes <paramref name="x"/> <c>[..., features]</c>, updating the running statistics in training mode.</summary>
    /// <param name="x">The input, real floating point, features last.</param>
    /// <returns>The normalized input, same shape and dtype.</returns>
    public override Tensor forward(Tensor x)
    {
        Check.PerPosition(x, Features);
        using var scope = NewDisposeScope();
        var dtype = Precision.StateDType(x.dtype);
        var rows = Precision.As(x, dtype).reshape(-1, Features);
        var runningMean = Buffer("running_mean");
        var runningVar = Buffer("running_var");
        Check.SameDevice(runningMean, x, "the module's buffers", nameof(x));
        Tensor mean, variance;
        if (training)
        {
            if (rows.shape[0] == 0) throw new ArgumentException($"Expected at least one row to compute batch statistics from; got shape {Check.Shape(x)}.", nameof(x));
            var batchMean = rows.mean(new long[] { 0 });
            var batchVar = (rows - batchMean).square().mean(new long[] { 0 }).clamp_min(0);
            var steps = Buffer("num_batches_tracked");
            var first = steps.eq(0);
            var oldMean = Precision.As(runningMean, dtype);
            var oldVar = Precision.As(runningVar, dtype);
            mean = where(first, batchMean, batchMean * (1 - Momentum) + oldMean * Momentum);
            variance = where(first, batchVar, batchVar * (1 - Momentum) + oldVar * Momentum);
            using (no_grad())
            {
                runningMean.copy_(mean.detach());
                runningVar.copy_(variance.detach());
                steps.add_(1);
            }
        }
        else
        {
            mean = Precision.As(runningMean, dtype);
            variance = Precision.As(runningVar, dtype);
        }
        var y = ((rows - mean) / (variance + Eps).sqrt()).reshape(x.shape);
        return Precision.As(y, x.dtype).MoveToOuterDisposeScope();
    }

    // The registered buffer, looked up by name: after .to(...) the module holds new tensors under the same names.
    private Tensor Buffer(string name) => get_buffer(name)!;
}
