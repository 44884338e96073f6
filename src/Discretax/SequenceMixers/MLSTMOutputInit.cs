namespace Discretax.SequenceMixers;

/// <summary>
/// The init function of the down-projection <c>proj_down</c> of <see cref="MLSTMSequenceMixer"/> and
/// <see cref="MLSTMV1SequenceMixer"/> (xlstm-jax's
/// <c>output_init_fn</c>), drawn from the chosen <see cref="MLSTMInitDistribution"/>. E is the layer's input size.
/// </summary>
public enum MLSTMOutputInit
{
    /// <summary><c>"wang"</c> (the default; Wang's init from GPT-NeoX for the last layer of a residual branch):
    /// standard deviation <c>2 / numBlocks / sqrt(E)</c>.</summary>
    Wang,

    /// <summary><c>"small"</c> (Nguyen and Salazar 2019, "Transformers without Tears"): standard deviation
    /// <c>sqrt(2 / (5 E))</c>.</summary>
    Small,
}
