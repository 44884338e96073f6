namespace Discretax.SequenceMixers;

/// <summary>
/// How the xLSTM-7B architecture (<see cref="Models.XLSTMLarge"/>) stores its projections (xlstm_large's <c>weight_mode</c>);
/// both compute the same function.
/// </summary>
public enum XLSTMWeightMode
{
    /// <summary><c>"single"</c>: separate matrices <c>q</c>, <c>k</c>, <c>v</c>, <c>ogate_preact</c>, <c>igate_preact</c>,
    /// <c>fgate_preact</c> and, in the feed-forward, <c>proj_up_gate</c>, <c>proj_up</c> (the released checkpoints).</summary>
    Single,

    /// <summary><c>"fused"</c>: <c>qkv_opreact [2 Dqk + 2 Dv, E]</c> (rows q, k, v, o), <c>ifgate_preact [2 NH, E]</c>
    /// (rows i, f) and <c>proj_up_gate_z [2 P, E]</c> (rows gate, z).</summary>
    Fused,
}
