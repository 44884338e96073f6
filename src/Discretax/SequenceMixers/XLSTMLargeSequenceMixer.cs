using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The mLSTM layer of the xLSTM-7B architecture: NX-AI xlstm's <c>xlstm_large</c> <c>mLSTMLayer</c>
/// (<c>xlstm/xlstm_large/model.py</c>; Beck et al. 2025, "xLSTM 7B: A Recurrent LLM for Fast and Efficient
/// Inference", https://arxiv.org/abs/2503.13427), with its parameter names. Shapes: <c>[B, L, E] -> [B, L, E]</c>
/// (or unbatched <c>[L, E]</c>).
/// </summary>
/// <remarks>
/// <para>With <c>Dqk = int(qkDimFactor E)</c>, <c>Dv = int(vDimFactor E)</c> and NH heads:</para>
/// <code>
/// q, k = q(x), k(x)                         Dqk features          (fused: [q | k | v | o] = qkv_opreact(x))
/// v, o = v(x), ogate_preact(x)              Dv features
/// i = cap(igate_preact(x)), f = cap(fgate_preact(x))      NH pre-activations each, cap(a) = s tanh(a / s), s = gateSoftCap
///                                                         (fused: [i | f] = cap(ifgate_preact(x)))
/// h = mLSTM(q, k, v, i, f)                  per head, from m_0 = 0 (mlstm_kernels' chunkwise / recurrent / step kernels)
/// y = out_proj(sigmoid(o) * multihead_norm(h))            multihead_norm: layer norm per head, weight, eps normEps
/// </code>
/// <para>The cell (per head, <c>q~ = q / sqrt(Dqk/NH)</c>): <c>m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)</c>,
/// <c>C_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T</c>, <c>n_t</c> likewise with <c>k_t</c>,
/// <c>h_t = C_t^T q~_t / (max(|n_t . q~_t|, exp(-m_t)) + eps)</c>, run by <see cref="MLSTMKernel.Chunked"/>; the gates are
/// computed in float32 at least.</para>
/// <para>Init (transformers' <c>xLSTMPreTrainedModel._init_weights</c>; the reference model leaves PyTorch's defaults):
/// <c>q</c>, <c>k</c>, <c>v</c>, <c>ogate_preact</c> (<c>qkv_opreact</c>) from <c>N(0, 2 / (5 E))</c>; gate weights zero,
/// input-gate bias -10, forget-gate bias <c>linspace(3, 6, NH)</c>; <c>out_proj</c> from Wang's
/// <c>N(0, (2 / numBlocks / sqrt(E))^2)</c>; the norm's weight one. No biases (xlstm_large's <c>use_bias = false</c>; the
/// gates always have one).</para>
/// <para>Streaming state: an <see cref="MLSTMState"/> (C, n, m; no convolution state).</para>
/// </remarks>
public sealed class XLSTMLargeSequenceMixer : SequenceMixer
{
    /// <summary>The query projection <c>E -> Dqk</c> (<see cref="XLSTMWeightMode.Single"/>; else null).</summary>
    public Linear? q;

    /// <summary>The key projection <c>E -> Dqk</c> (<see cref="XLSTMWeightMode.Single"/>; else null).</summary>
    public Linear? k;

    /// <summary>The value projection <c>E -> Dv</c> (<see cref="XLSTMWeightMode.Single"/>; else null).</summary>
    public Linear? v;

    /// <summary>The output-gate pre-activation <c>E -> Dv</c> (<see cref="XLSTMWeightMode.Single"/>; else null).</summary>
    public Linear? ogate_preact;

    /// <summary>The input-gate pre-activation <c>E -> NH</c>, with bias (<see cref="XLSTMWeightMode.Single"/>; else null).</summary>
    public readonly Linear? igate_preact;

    /// <summary>The forget-gate pre-activation <c>E -> NH</c>, with bias (<see cref="XLSTMWeightMode.Single"/>; else null).</summary>
    public readonly Linear? fgate_preact;

    /// <summary>The fused projection <c>E -> 2 Dqk + 2 Dv</c>, rows q, k, v, o (<see cref="XLSTMWeightMode.Fused"/>; else null).</summary>
    public Linear? qkv_opreact;

    /// <summary>The fused gate pre-activations <c>E -> 2 NH</c>, rows i, f, with bias (<see cref="XLSTMWeightMode.Fused"/>; else null).</summary>
    public Linear? ifgate_preact;

    /// <summary>The per-head layer norm of the cell output (NH heads of <c>Dv / NH</c>, weight only).</summary>
    public readonly MultiHeadNorm multihead_norm;

    /// <summary>The output projection <c>Dv -> E</c>.</summary>
    public readonly Linear out_proj;

    private readonly MLSTMCell _cell;

    /// <summary>Creates the layer.</summary>
    /// <param name="embeddingDim">The input and output size E.</param>
    /// <param name="numHeads">The heads NH; must divide Dqk and Dv.</param>
    /// <param name="qkDimFactor">Scales the query/key size: <c>Dqk = int(qkDimFactor E)</c>; &gt; 0.</param>
    /// <param name="vDimFactor">Scales the value size: <c>Dv = int(vDimFactor E)</c>; &gt; 0.</param>
    /// <param name="gateSoftCap">The gate soft cap (&gt; 0), or null for none.</param>
    /// <param name="normEps">The multi-head norm's eps.</param>
    /// <param name="weightMode">Separate or fused projections.</param>
    /// <param name="chunkSize">The chunk length of <see cref="MLSTMKernel.Chunked"/> (at least 1).</param>
    /// <param name="eps">The kernel's denominator constant (xlstm_large's <c>eps</c>), at least 0.</param>
    /// <param name="numBlocks">The number of blocks of the model (the Wang init of <c>out_proj</c>).</param>
    public XLSTMLargeSequenceMixer(long embeddingDim, int numHeads = 8, double qkDimFactor = 0.5, double vDimFactor = 1.0,
        double? gateSoftCap = 15.0, double normEps = 1e-6, XLSTMWeightMode weightMode = XLSTMWeightMode.Single,
        int chunkSize = 64, double eps = 1e-6, int numBlocks = 1)
        : base(nameof(XLSTMLargeSequenceMixer), Check.Dim(embeddingDim))
    {
        MLSTMCell.CheckOptions(numHeads, chunkSize, numBlocks, 0.0, qkDimFactor, vDimFactor, gateSoftCap, normEps,
            MLSTMNormType.LayerNorm, MLSTMInitDistribution.Normal, MLSTMOutputInit.Wang);
        Check.Defined(weightMode);
        if (!(eps >= 0 && double.IsFinite(eps)))
            throw new ArgumentOutOfRangeException(nameof(eps), eps, $"Expected a finite eps of at least 0; got {eps}.");
        long qk = (long)(qkDimFactor * embeddingDim);
        long vd = (long)(vDimFactor * embeddingDim);
        if (qk < 1) throw new ArgumentException($"Expected int(qkDimFactor * embeddingDim) >= 1; got {qk}.", nameof(qkDimFactor));
        if (vd < 1) throw new ArgumentException($"Expected int(vDimFactor * embeddingDim) >= 1; got {vd}.", nameof(vDimFactor));
        MLSTMCell.CheckHeads(numHeads, qk, vd);
        WeightMode = weightMode;
        NormEps = normEps;

        double small = MLSTMCell.SmallStd(embeddingDim);
        if (weightMode == XLSTMWeightMode.Single)
        {
            q = nn.Linear(embeddingDim, qk, hasBias: false);
            k = nn.Linear(embeddingDim, qk, hasBias: false);
            v = nn.Linear(embeddingDim, vd, hasBias: false);
            ogate_preact = nn.Linear(embeddingDim, vd, hasBias: false);
        }
        else
        {
            qkv_opreact = nn.Linear(embeddingDim, 2 * qk + 2 * vd, hasBias: false);
            ifgate_preact = nn.Linear(embeddingDim, 2L * numHeads, hasBias: true);
        }
        _cell = new MLSTMCell(embeddingDim, numHeads, qk, vd, embeddingDim, false, MLSTMNormType.LayerNorm, normEps,
            gateSoftCap, chunkSize, MLSTMInitDistribution.Normal, MLSTMOutputInit.Wang, numBlocks, MLSTMStabilizerStart.Zero, eps);
        if (weightMode == XLSTMWeightMode.Single) (igate_preact, fgate_preact) = (_cell.igate, _cell.fgate);
        (multihead_norm, out_proj) = (_cell.outnorm, _cell.proj_down);
        using (no_grad())
        {
            foreach (var l in new[] { q, k, v, ogate_preact, qkv_opreact })
                if (l is not null) l.weight!.normal_(0.0, small);
            if (igate_preact is not null)
            {
                igate_preact.weight!.zero_();
                igate_preact.bias!.fill_(-10.0);
                fgate_preact!.weight!.zero_();
                fgate_preact.bias!.copy_(linspace(3.0, 6.0, numHeads));
            }
            if (ifgate_preact is not null)
            {
                ifgate_preact.weight!.zero_();
                ifgate_preact.bias!.narrow(0, 0, numHeads).fill_(-10.0);
                ifgate_preact.bias!.narrow(0, numHeads, numHeads).copy_(linspace(3.0, 6.0, numHeads));
            }
        }
        RegisterComponents();
    }

    /// <summary>The heads NH.</summary>
    public int NumHeads => _cell.NumHeads;

    /// <summary>The total query/key size Dqk.</summary>
    public long QKDim => _cell.QKDim;

    /// <summary>The total value size Dv.</summary>
    public long VDim => _cell.VDim;

    /// <summary>The gate soft cap, or null.</summary>
    public double? GateSoftCap => _cell.GateSoftCap;

    /// <summary>The kernel's chunk length.</summary>
    public int ChunkSize => _cell.ChunkSize;

    /// <summary>The kernel's denominator constant.</summary>
    public double Eps => _cell.Eps;

    /// <summary>The multi-head norm's eps.</summary>
    public double NormEps { get; }

    /// <summary>Separate or fused projections.</summary>
    public XLSTMWeightMode WeightMode { get; }

    /// <inheritdoc />
    /// <remarks>The state is an <see cref="MLSTMState"/> with the cell's (C, n, m) and no convolution state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (MLSTMState?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the cell resets at every boundary (<c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (MLSTMState?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, MLSTMState? previous, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        Tensor qx, kx, vx, ox, ig, fg;
        var gt = Precision.StateDType(x.dtype);
        var xg = x.to(gt);
        long qk = QKDim, vd = VDim, nh = NumHeads;
        if (qkv_opreact is not null)
        {
            var all = qkv_opreact.forward(x);
            qx = all.narrow(-1, 0, qk);
            kx = all.narrow(-1, qk, qk);
            vx = all.narrow(-1, 2 * qk, vd);
            ox = all.narrow(-1, 2 * qk + vd, vd);
            var gates = nn.functional.linear(xg, ifgate_preact!.weight!.to(gt), ifgate_preact.bias!.to(gt));
            ig = gates.narrow(-1, 0, nh);
            fg = gates.narrow(-1, nh, nh);
        }
        else
        {
            qx = q!.forward(x);
            kx = k!.forward(x);
            vx = v!.forward(x);
            ox = ogate_preact!.forward(x);
            ig = nn.functional.linear(xg, igate_preact!.weight!.to(gt), igate_preact.bias!.to(gt));
            fg = nn.functional.linear(xg, fgate_preact!.weight!.to(gt), fgate_preact.bias!.to(gt));
        }
        var (h, cell) = _cell.ForwardPreactivations(qx, kx, vx, ig, fg, previous, lengths, cuSeqlens);
        var y = out_proj.forward(nn.functional.sigmoid(ox) * h);
        return MLSTMCell.Result(y, cell, returnState, x.dtype);
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) => _cell.CheckState(state, Describe());

    private string Describe() => $"XLSTMLargeSequenceMixer(embeddingDim: {InFeatures}, numHeads: {NumHeads})";
}
