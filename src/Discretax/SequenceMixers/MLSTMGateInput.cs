namespace Discretax.SequenceMixers;

/// <summary>
/// Which features feed the input and forget gates of <see cref="MLSTMSequenceMixer"/> (xlstm-jax's
/// <c>mLSTMLayerConfig.gate_input</c>). Each gate is a dense layer from these features to one pre-activation per
/// head. (<see cref="MLSTMV1SequenceMixer"/> always feeds its gates with the layer input.)
/// </summary>
public enum MLSTMGateInput
{
    /// <summary><c>"qkv"</c> (the default, as in the paper): the concatenation <c>[q, k, v]</c>, <c>2 Dqk + Dv</c> features.</summary>
    Qkv,

    /// <summary><c>"x_mlstm"</c>: the mLSTM branch of the up-projection (the features v is projected from).</summary>
    XMlstm,

    /// <summary><c>"x_mlstm_conv"</c>: the causal convolution's output, before the activation.</summary>
    XMlstmConv,

    /// <summary><c>"x_mlstm_conv_act"</c>: SiLU of the convolution's output (the features q and k are projected from).</summary>
    XMlstmConvAct,
}
