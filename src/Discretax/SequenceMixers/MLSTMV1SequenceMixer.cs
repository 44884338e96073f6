using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The "simple" mLSTM layer of the large xLSTM models: xlstm-jax's <c>mLSTMLayerV1</c> (<c>layer_type = "mlstm_v1"</c>;
/// Beck et al. 2024, https://arxiv.org/abs/2405.04517), with no up-projection, no convolution and no learnable skip;
/// the cell runs on <see cref="MLSTMKernel.Chunked"/>. Shapes: <c>[B, L, E] -> [B, L, E]</c> (or unbatched
/// <c>[L, E]</c>). The Mamba-style layer with up-projection and convolution is <see cref="MLSTMSequenceMixer"/>.
/// </summary>
/// <remarks>
/// <para>With <c>Dqk = int(qkDimFactor E)</c> and <c>Dv = int(vDimFactor E)</c>:</para>
/// <code>
/// q, k, v, o     = dense_q(x), dense_k(x), dense_v(x), dense_o(x)   q, k: Dqk features; v, o: Dv features
/// i = cap(igate(x)), f = cap(fgate(x))                              one pre-activation per head; cap(a) = s tanh(a / s) if gateSoftCap = s
/// h              = mLSTM(q, k, v, i, f)                             NH heads of Dqk/NH and Dv/NH features (MLSTMKernel)
/// y              = dropout(proj_down(sigmoid(o) * outnorm(h)))
/// </code>
/// <para>The cell (per head, <c>q~ = q / sqrt(Dqk/NH)</c>): <c>m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)</c>,
/// <c>C_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T</c>, <c>n_t</c> likewise with <c>k_t</c>,
/// <c>h_t = C_t^T q~_t / (max(|n_t . q~_t|, exp(-m_t)) + 1e-6)</c>. outnorm is a <see cref="MultiHeadNorm"/> (layer or RMS
/// norm per head, weight only, eps <c>normEps</c>).</para>
/// <para>Init (xlstm-jax): <c>dense_q</c>, <c>dense_k</c>, <c>dense_v</c> from the small init <c>std = sqrt(2 / (5 E))</c>;
/// <c>dense_o</c> zero; <c>proj_down</c> from <c>outputInitFn</c> (Wang: <c>std = 2 / numBlocks / sqrt(E)</c>); both from
/// <c>initDistribution</c>; gate weights zero, forget-gate bias <c>linspace(3, 6, NH)</c>, input-gate bias
/// <c>N(0, 0.1^2)</c>; the norm gain one; linear biases zero.</para>
/// <para>Parameter names (<c>state_dict</c>) are xlstm-jax's: <c>dense_q</c>, <c>dense_k</c>, <c>dense_v</c>,
/// <c>dense_o</c>, <c>igate</c>, <c>fgate</c>, <c>outnorm</c>, <c>proj_down</c>. The layer shares <c>igate</c>, <c>fgate</c>,
/// <c>outnorm</c>, <c>proj_down</c>, their inits and the cell's computation with <see cref="MLSTMSequenceMixer"/> (an
/// internal cell that is not a module, so the names carry no prefix); those four fields are read-only.</para>
/// <para>Streaming state: an <see cref="MLSTMState"/> with the cell's (C, n, m) and no convolution state
/// (<see cref="MLSTMState.Conv"/> is null). Gates are computed in float32 at least; the cell's state is float32 for
/// float32/16 inputs.</para>
/// </remarks>
public sealed class MLSTMV1SequenceMixer : SequenceMixer
{
    /// <summary>The dense query projection <c>E -> Dqk</c>.</summary>
    public Linear dense_q;

    /// <summary>The dense key projection <c>E -> Dqk</c>.</summary>
    public Linear dense_k;

    /// <summary>The dense value projection <c>E -> Dv</c>.</summary>
    public Linear dense_v;

    /// <summary>The output-gate projection <c>E -> Dv</c> (zero at init).</summary>
    public Linear dense_o;

    /// <summary>The input-gate layer: E -> NH pre-activations (with bias).</summary>
    public readonly Linear igate;

    /// <summary>The forget-gate layer: E -> NH pre-activations (with bias).</summary>
    public readonly Linear fgate;

    /// <summary>The multi-head norm of the cell output (NH heads of <c>Dv / NH</c>).</summary>
    public readonly MultiHeadNorm outnorm;

    /// <summary>The down-projection <c>Dv -> E</c>.</summary>
    public readonly Linear proj_down;

    /// <summary>The dropout on the output.</summary>
    public FastDropout dropout;

    private readonly MLSTMCell _cell;

    /// <summary>Creates the layer.</summary>
    /// <param name="embeddingDim">The input and output size E.</param>
    /// <param name="numHeads">The number of mLSTM heads NH; must divide Dqk and Dv.</param>
    /// <param name="bias">Whether the projections (not the gates, which always have one) have biases.</param>
    /// <param name="dropout">Dropout probability on the output, in [0, 1).</param>
    /// <param name="qkDimFactor">Scales the query/key size: <c>Dqk = int(qkDimFactor E)</c>; &gt; 0.</param>
    /// <param name="vDimFactor">Scales the value size: <c>Dv = int(vDimFactor E)</c>; &gt; 0.</param>
    /// <param name="normType">The multi-head norm after the cell.</param>
    /// <param name="gateSoftCap">If set (&gt; 0), gate pre-activations become <c>cap * tanh(a / cap)</c>; null (default) leaves them as they are.</param>
    /// <param name="initDistribution">The distribution of the projection weights.</param>
    /// <param name="outputInitFn">The init of <c>proj_down</c>.</param>
    /// <param name="chunkSize">The chunk length of <see cref="MLSTMKernel.Chunked"/> (at least 1).</param>
    /// <param name="numBlocks">The number of blocks of the model this layer is part of (the Wang init uses it; xlstm-jax's <c>_num_blocks</c>, default 1).</param>
    /// <param name="normEps">The eps of the multi-head norm (xlstm-jax's <c>norm_eps</c>, 1e-6).</param>
    public MLSTMV1SequenceMixer(long embeddingDim, int numHeads = 4, bool bias = false, double dropout = 0.0,
        double qkDimFactor = 1.0, double vDimFactor = 1.0, MLSTMNormType normType = MLSTMNormType.LayerNorm,
        double? gateSoftCap = null, MLSTMInitDistribution initDistribution = MLSTMInitDistribution.Normal,
        MLSTMOutputInit outputInitFn = MLSTMOutputInit.Wang, int chunkSize = 64, int numBlocks = 1, double normEps = 1e-6)
        : base(nameof(MLSTMV1SequenceMixer), Check.Dim(embeddingDim))
    {
        MLSTMCell.CheckOptions(numHeads, chunkSize, numBlocks, dropout, qkDimFactor, vDimFactor, gateSoftCap, normEps,
            normType, initDistribution, outputInitFn);
        long qk = (long)(qkDimFactor * embeddingDim);
        long vd = (long)(vDimFactor * embeddingDim);
        if (qk < 1) throw new ArgumentException($"Expected int(qkDimFactor * embeddingDim) >= 1; got {qk}.", nameof(qkDimFactor));
        if (vd < 1) throw new ArgumentException($"Expected int(vDimFactor * embeddingDim) >= 1; got {vd}.", nameof(vDimFactor));
        MLSTMCell.CheckHeads(numHeads, qk, vd);

        // The global RNG is drawn in xlstm-jax's order: these projections (made, then drawn), then the cell.
        double smallStd = MLSTMCell.SmallStd(embeddingDim);
        dense_q = nn.Linear(embeddingDim, qk, hasBias: bias);
        dense_k = nn.Linear(embeddingDim, qk, hasBias: bias);
        dense_v = nn.Linear(embeddingDim, vd, hasBias: bias);
        dense_o = nn.Linear(embeddingDim, vd, hasBias: bias);
        using (no_grad())
        {
            MLSTMCell.Draw(dense_q.weight!, smallStd, initDistribution);
            MLSTMCell.Draw(dense_k.weight!, smallStd, initDistribution);
            MLSTMCell.Draw(dense_v.weight!, smallStd, initDistribution);
            dense_o.weight!.zero_();
            foreach (var l in new[] { dense_q, dense_k, dense_v, dense_o }) l.bias?.zero_();
        }
        _cell = new MLSTMCell(embeddingDim, numHeads, qk, vd, embeddingDim, bias, normType, normEps, gateSoftCap, chunkSize,
            initDistribution, outputInitFn, numBlocks);
        (igate, fgate, outnorm, proj_down) = (_cell.igate, _cell.fgate, _cell.outnorm, _cell.proj_down);
        this.dropout = new FastDropout(dropout);
        RegisterComponents();
    }

    /// <summary>The number of mLSTM heads NH.</summary>
    public int NumHeads => _cell.NumHeads;

    /// <summary>The multi-head norm type.</summary>
    public MLSTMNormType NormType => _cell.NormType;

    /// <summary>The gate soft cap, or null for none.</summary>
    public double? GateSoftCap => _cell.GateSoftCap;

    /// <summary>The chunk length of the kernel.</summary>
    public int ChunkSize => _cell.ChunkSize;

    /// <summary>The total query/key size Dqk (NH heads of Dqk / NH).</summary>
    public long QKDim => _cell.QKDim;

    /// <summary>The total value size Dv (NH heads of Dv / NH).</summary>
    public long VDim => _cell.VDim;

    /// <inheritdoc />
    /// <remarks>The state is an <see cref="MLSTMState"/> with the cell's (C, n, m) and no convolution state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the cell resets at every boundary (<c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, StreamingState? state, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        var q = dense_q.forward(x);
        var k = dense_k.forward(x);
        var v = dense_v.forward(x);
        var o = dense_o.forward(x);
        var (h, cell) = _cell.Forward(q, k, v, x, (MLSTMState?)state, lengths, cuSeqlens);
        var y = dropout.forward(proj_down.forward(nn.functional.sigmoid(o) * h));
        return MLSTMCell.Result(y, cell, returnState, x.dtype);
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) => _cell.CheckState(state, Describe());

    private string Describe() => $"MLSTMV1SequenceMixer(embeddingDim: {InFeatures}, numHeads: {NumHeads})";
}
