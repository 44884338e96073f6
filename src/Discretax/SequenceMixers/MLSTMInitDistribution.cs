namespace Discretax.SequenceMixers;

/// <summary>
/// The distribution the projection weights of <see cref="MLSTMSequenceMixer"/> and <see cref="MLSTMV1SequenceMixer"/>
/// are drawn from (xlstm-jax's <c>init_distribution</c>), always with mean 0 and the standard deviation the init function asks for
/// (<c>small</c>: <c>sqrt(2 / (5 E))</c>; <c>wang</c>: <c>2 / numBlocks / sqrt(E)</c>). Gate and norm parameters
/// have their own fixed inits.
/// </summary>
public enum MLSTMInitDistribution
{
    /// <summary><c>"normal"</c> (the default): <c>N(0, std^2)</c>.</summary>
    Normal,

    /// <summary><c>"truncated_normal"</c>: <c>N(0, std^2)</c> truncated to <c>[-2 std, 2 std]</c> (as JAX's
    /// <c>truncated_normal(stddev)</c>, with no correction of the spread for the truncation).</summary>
    TruncatedNormal,

    /// <summary><c>"uniform"</c>: <c>U(-sqrt(3) std, sqrt(3) std)</c>, which has standard deviation std.</summary>
    Uniform,
}
