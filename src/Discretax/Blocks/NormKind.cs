namespace Discretax.Blocks;

/// <summary>The normalization of a block (<see cref="StandardBlock"/>, <see cref="MLSTMBlock"/>), made by <see cref="Norms.Create"/>.</summary>
public enum NormKind
{
    /// <summary>
    /// Batch normalization with statistics per channel over batch and time, no affine parameters, eps 1e-5,
    /// running averages with momentum 0.01 (discretax's default). In eval mode it uses the running
    /// statistics, so it acts per time step and streams exactly.
    /// </summary>
    Batch,

    /// <summary>Layer normalization over the features with a learned gain and bias, eps 1e-5: equinox's
    /// <c>LayerNorm</c> as discretax's blocks use it (and PyTorch's <c>nn.LayerNorm</c> default).</summary>
    Layer,

    /// <summary>
    /// Batch normalization exactly as discretax's <c>StandardBlock</c> builds it (equinox's <c>BatchNorm(mode="ema",
    /// channelwise_affine=False)</c>, <see cref="Layers.EquinoxBatchNorm"/>): statistics per channel over batch and time,
    /// no affine parameters, eps 1e-5, and in training the batch is normalized with the running statistics after
    /// updating them with it (momentum 0.99, biased variance; the first step takes the batch's own). Eval mode uses
    /// the running statistics, so it streams exactly.
    /// </summary>
    EquinoxBatch,

    /// <summary>RMS normalization over the features (<see cref="Layers.RMSNorm"/>), with a learned gain.</summary>
    Rms,

    /// <summary>Layer normalization over the features with a learned gain and no bias, eps 1e-5: xLSTM's
    /// <c>LayerNorm</c> (xlstm-jax / NX-AI xlstm, <c>bias=False</c>), the default of <see cref="MLSTMBlock"/>.</summary>
    XLSTMLayer,
}
