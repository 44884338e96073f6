namespace Discretax.SequenceMixers;

/// <summary>
/// The init function of the down-projection <c>proj_down</c> of <see cref="MLSTMSequenceMixer"/> and
/// <see cref="MLSTMV1SequenceMixer"/> (and of <see cref="ChannelMixers.GatedFeedForward"/>'s <c>proj_down</c>):
/// xlstm-jax's <c>output_init_fn</c> (<c>shared/init.py</c>, <c>create_common_init_fn</c>), drawn from the chosen
/// <see cref="MLSTMInitDistribution"/>. E is the layer's input size, <c>numBlocks</c> the model's block count.
/// </summary>
public enum MLSTMOutputInit
{
    /// <summary><c>"wang"</c> (the default; Wang's init from GPT-NeoX for the last layer of a residual branch):
    /// standard deviation <c>2 / numBlocks / sqrt(E)</c>.</summary>
    Wang,

    /// <summary><c>"small"</c> (Nguyen and Salazar 2019, "Transformers without Tears"): standard deviation
    /// <c>sqrt(2 / (5 E))</c>.</summary>
    Small,

    /// <summary><c>"wang2"</c>: Wang's init with twice the block count (a block with two residual branches),
    /// standard deviation <c>2 / (2 numBlocks) / sqrt(E) = 1 / numBlocks / sqrt(E)</c>.</summary>
    Wang2,

    /// <summary><c>"zeros"</c>: all zeros (the branch starts as the identity of the residual; the distribution does
    /// not apply).</summary>
    Zeros,
}
