namespace Discretax.SequenceMixers;

/// <summary>
/// The feature map on the queries and keys of <see cref="FlaDeltaNetSequenceMixer"/> (fla's <c>qk_activation</c>).
/// SiLU is applied right after the projections (inside the short convolutions when there are some); the others after
/// the split into heads. The values always get SiLU, whatever this option says.
/// </summary>
public enum FlaQKActivation
{
    /// <summary><c>silu(u) = u sigmoid(u)</c> (fla's <c>"silu"</c>, the default).</summary>
    Silu = 0,

    /// <summary><c>max(u, 0)</c> (fla's <c>"relu"</c>).</summary>
    Relu = 1,

    /// <summary><c>elu(u) + 1</c>, positive (fla's <c>"elu"</c>, its <c>elu_p1</c>).</summary>
    Elu = 2,

    /// <summary>No feature map (fla's <c>"identity"</c>).</summary>
    Identity = 3,
}
