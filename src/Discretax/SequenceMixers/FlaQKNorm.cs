namespace Discretax.SequenceMixers;

/// <summary>The normalization of each head's query and key in <see cref="FlaDeltaNetSequenceMixer"/> (fla's <c>qk_norm</c>).</summary>
public enum FlaQKNorm
{
    /// <summary>fla's <c>l2norm</c>, <c>u / sqrt(sum(u^2) + 1e-6)</c> (fla's <c>"l2"</c>, the default; inside fla's
    /// kernel, <c>use_qk_l2norm_in_kernel</c>).</summary>
    L2 = 0,

    /// <summary>Division by the sum, <c>u / sum(u)</c> (fla's <c>"sum"</c>, its <c>sum_norm</c>); meant for positive
    /// feature maps (<see cref="FlaQKActivation.Relu"/>, <see cref="FlaQKActivation.Elu"/>): a sum of 0 gives
    /// non-finite values, as in fla.</summary>
    Sum = 1,
}
