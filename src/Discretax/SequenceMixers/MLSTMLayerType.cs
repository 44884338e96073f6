namespace Discretax.SequenceMixers;

/// <summary>
/// Which of xlstm-jax's two mLSTM layers the <see cref="Models.MLSTM"/> model builds in its blocks
/// (<c>mLSTMLayerConfig.layer_type</c>): <see cref="MLSTMSequenceMixer"/> or <see cref="MLSTMV1SequenceMixer"/>.
/// </summary>
public enum MLSTMLayerType
{
    /// <summary>
    /// <c>"mlstm"</c> (the default; xlstm-jax's <c>mLSTMLayer</c> + <c>mLSTMInnerLayer</c>, the same layer as NX-AI
    /// xlstm's PyTorch <c>mLSTMLayer</c>): the paper's "mLSTM block" in Mamba style. Up-projection to an inner size
    /// (<c>projFactor</c> times the input, rounded up to a multiple of 64) split into <c>x_mlstm</c> and <c>z</c>;
    /// causal depthwise convolution and SiLU on <c>x_mlstm</c>; q and k from block-diagonal (head-wise) projections
    /// of the convolved features, v from <c>x_mlstm</c>; the cell; the multi-head norm; a learnable skip of the
    /// convolved features; the output gate <c>silu(z)</c>; the down-projection. The layer is <see cref="MLSTMSequenceMixer"/>.
    /// </summary>
    MLSTM,

    /// <summary>
    /// <c>"mlstm_v1"</c> (xlstm-jax's <c>mLSTMLayerV1</c>, the "simple" layer of the large xLSTM models): no
    /// up-projection, no convolution, no learnable skip. Dense q, k (<c>qkDimFactor * E</c> features), v and an
    /// output gate o (<c>vDimFactor * E</c> features) straight from the input; the gates from the input; the cell;
    /// the multi-head norm; <c>sigmoid(o) * h</c>; the down-projection.
    /// The layer is <see cref="MLSTMV1SequenceMixer"/>, which has no <c>projFactor</c>, <c>conv1dKernelSize</c>,
    /// <c>qkvProjBlocksize</c> or <c>gateInput</c>.
    /// </summary>
    MLSTMV1,
}
