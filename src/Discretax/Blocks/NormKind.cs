namespace Discretax.Blocks;

/// <summary>The normalization of a <see cref="StandardBlock"/>.</summary>
public enum NormKind
{
    /// <summary>
    /// Batch normalization with statistics per channel over batch and time, no affine parameters, eps 1e-5,
    /// running averages with momentum 0.01 (discretax's default). In eval mode it uses the running
    /// statistics, so it acts per time step and streams exactly.
    /// </summary>
    Batch,

    /// <summary>Layer normalization over the features, with a learned gain and bias.</summary>
    Layer,

    /// <summary>RMS normalization over the features (<see cref="Layers.RMSNorm"/>), with a learned gain.</summary>
    Rms,
}
