using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The mLSTM layer of xLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory",
/// https://arxiv.org/abs/2405.04517): xlstm-jax's <c>mLSTMLayer</c>/<c>mLSTMInnerLayer</c> (<c>layer_type = "mlstm"</c>,
/// the same layer as NX-AI xlstm's PyTorch <c>mLSTMLayer</c>) with the options of xlstm-jax's <c>mLSTMLayerConfig</c>;
/// the cell runs on <see cref="MLSTMKernel.Chunked"/>. Shapes: <c>[B, L, E] -> [B, L, E]</c> (or unbatched
/// <c>[L, E]</c>). The other layer of xlstm-jax, <c>mLSTMLayerV1</c>, is <see cref="MLSTMV1SequenceMixer"/>.
/// </summary>
/// <remarks>
/// <para>With the inner size <c>I = 64 ceil(projFactor E / 64)</c>, <c>Dqk = round(qkDimFactor I)</c>,
/// <c>Dv = round(vDimFactor I)</c> and <c>P = I / qkvProjBlocksize</c> projection blocks:</para>
/// <code>
/// [x_mlstm | z]  = proj_up(x)                        x_mlstm: I features, z: Dv features
/// x_conv         = conv1d(x_mlstm)                   causal depthwise, kernel conv1dKernelSize, with bias
/// c              = silu(x_conv)
/// q = q_proj(c), k = k_proj(c), v = v_proj(x_mlstm)  block-diagonal with P blocks (LinearHeadwiseExpand)
/// g              = [q, k, v] | x_mlstm | x_conv | c  (gateInput)
/// i = cap(igate(g)), f = cap(fgate(g))               one pre-activation per head; cap(a) = s tanh(a / s) if gateSoftCap = s
/// h              = mLSTM(q, k, v, i, f)              NH heads of Dqk/NH and Dv/NH features (MLSTMKernel)
/// h              = outnorm(h) + learnable_skip * S(c)  S = identity, or x_mlstm_conv_scaling (head-wise I -> Dv) if Dv != I
/// y              = dropout(proj_down(h * silu(z)))
/// </code>
/// <para>The cell (per head, <c>q~ = q / sqrt(Dqk/NH)</c>): <c>m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)</c>,
/// <c>C_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T</c>, <c>n_t</c> likewise with <c>k_t</c>,
/// <c>h_t = C_t^T q~_t / (max(|n_t . q~_t|, exp(-m_t)) + 1e-6)</c>, from <c>m_0 = 0</c> (or <c>m_0 = -inf</c> with
/// <see cref="MLSTMStabilizerStart.NegativeInfinity"/>). outnorm is a <see cref="MultiHeadNorm"/> (layer or RMS
/// norm per head, weight only, eps <c>normEps</c>).</para>
/// <para>NX-AI xlstm's PyTorch <c>mLSTMLayer</c> is this layer with <c>normEps = 1e-5</c> and
/// <see cref="MLSTMStabilizerStart.NegativeInfinity"/> (the other options at their defaults);
/// <see cref="Interop.XLSTMCheckpoint.CreateTorchMLSTMLayer(long, int, double, int, int, bool, double, int, int)"/> builds it and
/// <see cref="Interop.XLSTMCheckpoint.LoadTorchMLSTMLayer"/> loads that package's <c>state_dict</c>.</para>
/// <para>Init (xlstm-jax): <c>proj_up</c> and the q/k/v projections (and <c>x_mlstm_conv_scaling</c>) from the small
/// init <c>std = sqrt(2 / (5 E))</c>; <c>proj_down</c> from <c>outputInitFn</c> (Wang: <c>std = 2 / numBlocks / sqrt(E)</c>);
/// both from <c>initDistribution</c>; gate weights zero, forget-gate bias <c>linspace(3, 6, NH)</c>, input-gate bias
/// <c>N(0, 0.1^2)</c>; <c>learnable_skip</c> and the norm gain one; linear biases zero; the convolution as PyTorch's
/// Conv1d (<c>U(-1/sqrt(K), 1/sqrt(K))</c>).</para>
/// <para>Parameter names (<c>state_dict</c>) follow NX-AI xlstm's PyTorch <c>mLSTMLayer</c> with the cell's parameters
/// lifted to the layer: <c>proj_up</c> (one matrix, x_mlstm rows first, then z), <c>conv1d.weight</c>/<c>conv1d.bias</c>
/// (PyTorch: <c>conv1d.conv.*</c>), <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>x_mlstm_conv_scaling</c> (if
/// <c>Dv != I</c>), <c>learnable_skip</c>, <c>igate</c>, <c>fgate</c>, <c>outnorm</c> (PyTorch: <c>mlstm_cell.igate</c>, ...),
/// <c>proj_down</c>. The layer shares <c>igate</c>, <c>fgate</c>, <c>outnorm</c>, <c>proj_down</c>, their inits and the
/// cell's computation with <see cref="MLSTMV1SequenceMixer"/> (an internal cell that is not a module, so the names
/// carry no prefix); those four fields are read-only.</para>
/// <para>Streaming state: an <see cref="MLSTMState"/>, the cell's (C, n, m) and the convolution's
/// <see cref="ShortConvolutionState"/> (<see cref="MLSTMState.Conv"/>). Gates are computed in float32 at least; the
/// cell's state is float32 for float32/16 inputs.</para>
/// </remarks>
public sealed class MLSTMSequenceMixer : SequenceMixer
{
    /// <summary>The up-projection <c>E -> I + Dv</c> (x_mlstm, then z).</summary>
    public Linear proj_up;

    /// <summary>The causal depthwise convolution on x_mlstm (with bias, no activation of its own).</summary>
    public ShortConvolution conv1d;

    /// <summary>The head-wise query projection <c>I -> Dqk</c>.</summary>
    public LinearHeadwiseExpand q_proj;

    /// <summary>The head-wise key projection <c>I -> Dqk</c>.</summary>
    public LinearHeadwiseExpand k_proj;

    /// <summary>The head-wise value projection <c>I -> Dv</c>.</summary>
    public LinearHeadwiseExpand v_proj;

    /// <summary>With <c>Dv != I</c>: the head-wise map of the skip features <c>I -> Dv</c>; else null.</summary>
    public LinearHeadwiseExpand? x_mlstm_conv_scaling;

    /// <summary>The learnable skip gain <c>[Dv]</c> (initialized to 1).</summary>
    public Parameter learnable_skip;

    /// <summary>The input-gate layer: gate features -> NH pre-activations (with bias).</summary>
    public readonly Linear igate;

    /// <summary>The forget-gate layer: gate features -> NH pre-activations (with bias).</summary>
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
    /// <param name="projFactor">The up-projection factor (&gt; 0); the inner size is <c>projFactor E</c> rounded up to a multiple of 64.</param>
    /// <param name="conv1dKernelSize">The causal convolution's kernel size (at least 1).</param>
    /// <param name="qkvProjBlocksize">The block size of the head-wise q/k/v projections; must divide the inner size.</param>
    /// <param name="bias">Whether the projections (not the gates, which always have one) have biases.</param>
    /// <param name="dropout">Dropout probability on the output, in [0, 1).</param>
    /// <param name="qkDimFactor">Scales the query/key size: <c>Dqk = round(qkDimFactor I)</c>; &gt; 0.</param>
    /// <param name="vDimFactor">Scales the value size: <c>Dv = round(vDimFactor I)</c>; &gt; 0.</param>
    /// <param name="normType">The multi-head norm after the cell.</param>
    /// <param name="gateInput">Which features feed the gates.</param>
    /// <param name="gateSoftCap">If set (&gt; 0), gate pre-activations become <c>cap * tanh(a / cap)</c>; null (default) leaves them as they are.</param>
    /// <param name="initDistribution">The distribution of the projection weights.</param>
    /// <param name="outputInitFn">The init of <c>proj_down</c>.</param>
    /// <param name="chunkSize">The chunk length of <see cref="MLSTMKernel.Chunked"/> (at least 1).</param>
    /// <param name="numBlocks">The number of blocks of the model this layer is part of (the Wang init uses it; xlstm-jax's <c>_num_blocks</c>, default 1).</param>
    /// <param name="normEps">The eps of the multi-head norm (xlstm-jax's <c>norm_eps</c>, 1e-6; NX-AI xlstm's PyTorch
    /// <c>MultiHeadLayerNorm</c> has 1e-5).</param>
    /// <param name="stabilizerStart">The stabilizer <c>m_0</c> of a fresh sequence: <see cref="MLSTMStabilizerStart.Zero"/>
    /// (default, the recurrence) or <see cref="MLSTMStabilizerStart.NegativeInfinity"/> (NX-AI xlstm's PyTorch parallel form).</param>
    public MLSTMSequenceMixer(long embeddingDim, int numHeads = 4, double projFactor = 2.0, int conv1dKernelSize = 4,
        int qkvProjBlocksize = 4, bool bias = false, double dropout = 0.0, double qkDimFactor = 1.0, double vDimFactor = 1.0,
        MLSTMNormType normType = MLSTMNormType.LayerNorm, MLSTMGateInput gateInput = MLSTMGateInput.Qkv,
        double? gateSoftCap = null, MLSTMInitDistribution initDistribution = MLSTMInitDistribution.Normal,
        MLSTMOutputInit outputInitFn = MLSTMOutputInit.Wang, int chunkSize = 64, int numBlocks = 1, double normEps = 1e-6,
        MLSTMStabilizerStart stabilizerStart = MLSTMStabilizerStart.Zero)
        : base(nameof(MLSTMSequenceMixer), Check.Dim(embeddingDim))
    {
        MLSTMCell.CheckOptions(numHeads, chunkSize, numBlocks, dropout, qkDimFactor, vDimFactor, gateSoftCap, normEps,
            normType, initDistribution, outputInitFn, stabilizerStart);
        Check.PositiveFinite(projFactor);
        Check.AtLeast(conv1dKernelSize, 1);
        Check.AtLeast(qkvProjBlocksize, 1);
        Check.Defined(gateInput);
        long inner = (long)Math.Ceiling(projFactor * embeddingDim / 64.0) * 64;
        if (inner % qkvProjBlocksize != 0)
            throw new ArgumentException($"Expected qkvProjBlocksize to divide the inner size {inner} (= 64 ceil(projFactor * embeddingDim / 64)); got {qkvProjBlocksize}.", nameof(qkvProjBlocksize));
        long blocks = inner / qkvProjBlocksize;
        long qk = (long)Math.Round(qkDimFactor * inner, MidpointRounding.ToEven);
        long vd = (long)Math.Round(vDimFactor * inner, MidpointRounding.ToEven);
        if (qk < 1 || qk % blocks != 0)
            throw new ArgumentException($"Expected round(qkDimFactor * {inner}) to be a positive multiple of the {blocks} projection blocks; qkDimFactor = {qkDimFactor} gives {qk}.", nameof(qkDimFactor));
        if (vd < 1 || vd % blocks != 0)
            throw new ArgumentException($"Expected round(vDimFactor * {inner}) to be a positive multiple of the {blocks} projection blocks; vDimFactor = {vDimFactor} gives {vd}.", nameof(vDimFactor));
        MLSTMCell.CheckHeads(numHeads, qk, vd);
        InnerDim = inner;
        GateInput = gateInput;

        // The global RNG is drawn in xlstm-jax's order: these projections (made, then drawn), then the cell.
        double smallStd = MLSTMCell.SmallStd(embeddingDim);
        proj_up = nn.Linear(embeddingDim, inner + vd, hasBias: bias);
        conv1d = new ShortConvolution(inner, conv1dKernelSize, useSilu: false, useBias: true);
        q_proj = new LinearHeadwiseExpand(inner, blocks, qk, bias);
        k_proj = new LinearHeadwiseExpand(inner, blocks, qk, bias);
        v_proj = new LinearHeadwiseExpand(inner, blocks, vd, bias);
        if (vd != inner) x_mlstm_conv_scaling = new LinearHeadwiseExpand(inner, blocks, vd, bias);
        learnable_skip = nn.Parameter(ones(vd));
        using (no_grad())
        {
            MLSTMCell.Draw(proj_up.weight!, smallStd, initDistribution);
            MLSTMCell.Draw(q_proj.weight, smallStd, initDistribution);
            MLSTMCell.Draw(k_proj.weight, smallStd, initDistribution);
            MLSTMCell.Draw(v_proj.weight, smallStd, initDistribution);
            if (x_mlstm_conv_scaling is not null) MLSTMCell.Draw(x_mlstm_conv_scaling.weight, smallStd, initDistribution);
            proj_up.bias?.zero_();
        }
        long gateFeatures = gateInput == MLSTMGateInput.Qkv ? 2 * qk + vd : inner;
        _cell = new MLSTMCell(embeddingDim, numHeads, qk, vd, gateFeatures, bias, normType, normEps, gateSoftCap, chunkSize,
            initDistribution, outputInitFn, numBlocks, stabilizerStart);
        NormEps = normEps;
        ProjFactor = projFactor;
        QKVProjBlocksize = qkvProjBlocksize;
        QKDimFactor = qkDimFactor;
        VDimFactor = vDimFactor;
        (igate, fgate, outnorm, proj_down) = (_cell.igate, _cell.fgate, _cell.outnorm, _cell.proj_down);
        this.dropout = new FastDropout(dropout);
        RegisterComponents();
    }

    /// <summary>The number of mLSTM heads NH.</summary>
    public int NumHeads => _cell.NumHeads;

    /// <summary>The multi-head norm type.</summary>
    public MLSTMNormType NormType => _cell.NormType;

    /// <summary>Which features feed the gates.</summary>
    public MLSTMGateInput GateInput { get; }

    /// <summary>The gate soft cap, or null for none.</summary>
    public double? GateSoftCap => _cell.GateSoftCap;

    /// <summary>The chunk length of the kernel.</summary>
    public int ChunkSize => _cell.ChunkSize;

    /// <summary>The stabilizer <c>m_0</c> of a fresh sequence.</summary>
    public MLSTMStabilizerStart StabilizerStart => _cell.StabilizerStart;

    /// <summary>The eps of the multi-head norm.</summary>
    public double NormEps { get; }

    /// <summary>The up-projection factor.</summary>
    public double ProjFactor { get; }

    /// <summary>The block size of the head-wise q/k/v projections.</summary>
    public int QKVProjBlocksize { get; }

    /// <summary>The query/key size factor.</summary>
    public double QKDimFactor { get; }

    /// <summary>The value size factor.</summary>
    public double VDimFactor { get; }

    /// <summary>The inner size <c>I = 64 ceil(projFactor E / 64)</c>.</summary>
    public long InnerDim { get; }

    /// <summary>The total query/key size Dqk (NH heads of Dqk / NH).</summary>
    public long QKDim => _cell.QKDim;

    /// <summary>The total value size Dv (NH heads of Dv / NH).</summary>
    public long VDim => _cell.VDim;

    /// <inheritdoc />
    /// <remarks>The state is an <see cref="MLSTMState"/>: the cell's (C, n, m) and the convolution's state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (MLSTMState?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the convolution and the cell reset at every boundary (<c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (MLSTMState?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, MLSTMState? previous, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        var up = proj_up.forward(x);
        var xm = up.narrow(-1, 0, InnerDim);
        var z = up.narrow(-1, InnerDim, VDim);
        var (xc, convState) = cuSeqlens is null
            ? RunChild(conv1d, xm, previous?.Conv, returnState, lengths)
            : RunChildPacked(conv1d, xm, cuSeqlens, previous?.Conv, returnState);
        var c = nn.functional.silu(xc);
        var q = q_proj.forward(c);
        var k = k_proj.forward(c);
        var v = v_proj.forward(xm);
        var gin = GateInput switch
        {
            MLSTMGateInput.Qkv => cat(new[] { q, k, v }, -1),
            MLSTMGateInput.XMlstm => xm,
            MLSTMGateInput.XMlstmConv => xc,
            _ => c,
        };
        var skip = x_mlstm_conv_scaling is null ? c : x_mlstm_conv_scaling.forward(c);
        var (h, cell) = _cell.Forward(q, k, v, gin, previous, lengths, cuSeqlens);
        var y = dropout.forward(proj_down.forward((h + learnable_skip.to(x.dtype) * skip) * nn.functional.silu(z)));
        return MLSTMCell.Result(y, cell, returnState, x.dtype, (ShortConvolutionState?)convState);
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) => _cell.CheckState(state, Describe(), conv1d);

    private string Describe() => $"MLSTMSequenceMixer(embeddingDim: {InFeatures}, numHeads: {NumHeads})";
}
