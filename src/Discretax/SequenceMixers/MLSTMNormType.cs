namespace Discretax.SequenceMixers;

/// <summary>
/// The multi-head normalization applied to the mLSTM cell's output (xlstm-jax's <c>norm_type</c>, the
/// <c>outnorm</c> of the cell): each head's <c>Dv</c> features are normalized on their own, with a learned
/// per-feature gain and no bias, eps = <c>normEps</c> (1e-6), statistics in float32 at least.
/// </summary>
public enum MLSTMNormType
{
    /// <summary>Layer normalization per head: <c>(h - mean(h)) / sqrt(var(h) + eps) * weight</c> (xlstm-jax's <c>"layernorm"</c>, the default).</summary>
    LayerNorm,

    /// <summary>RMS normalization per head: <c>h / sqrt(mean(h^2) + eps) * weight</c> (xlstm-jax's <c>"rmsnorm"</c>).</summary>
    RMSNorm,
}
