namespace Discretax.SequenceMixers;

/// <summary>
/// The stabilizer <c>m_0</c> with which an mLSTM layer starts a fresh sequence (no state passed in): the
/// recurrence <c>m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)</c> and the output
/// <c>h_t = C_t^T q~_t / (max(|n_t . q~_t|, exp(-m_t)) + eps)</c> depend on it only through the <c>eps</c> term: in
/// unstabilized terms <c>h_t = C~_t^T q~_t / (max(|n~_t . q~_t|, 1) + eps exp(m_t))</c>, and <c>m_t</c> differs between
/// the two starts exactly when every log weight <c>D_tj = f'_{j+1} + ... + f'_t + i_j</c> is below
/// <c>b_t = f'_1 + ... + f'_t</c>. A state passed in carries its own <c>m</c>; a streamed continuation equals the
/// forward of the whole sequence with either start.
/// </summary>
public enum MLSTMStabilizerStart
{
    /// <summary><c>m_0 = 0</c> (with <c>C_0 = 0</c>, <c>n_0 = 0</c>): the recurrent form, mlstm_kernels' chunkwise,
    /// recurrent and step kernels (xLSTM-7B), xlstm-jax's recurrent form; the default.</summary>
    Zero,

    /// <summary><c>m_0 = -inf</c> (with <c>C_0 = 0</c>, <c>n_0 = 0</c>), so <c>m_t = max_{j&lt;=t} D_tj</c>: the
    /// parallel form <c>parallel_stabilized_simple</c> of NX-AI xlstm's PyTorch <c>mLSTMCell.forward</c> (whose row
    /// maximum <c>max_log_D</c> leaves out the <c>b_t</c> term of an <c>m_0 = 0</c> start).</summary>
    NegativeInfinity,
}
