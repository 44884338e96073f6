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
/// https://arxiv.org/abs/2405.04517) with the options of xlstm-jax's <c>mLSTMLayerConfig</c>; the cell runs on
/// <see cref="MLSTMKernel.Chunked"/>. Shapes: <c>[B, L, E] -> [B, L, E]</c> (or unbatched <c>[L, E]</c>).
/// </summary>
/// <remarks>
/// <para><b><see cref="MLSTMLayerType.MLSTM"/></b> (default; xlstm-jax <c>mLSTMLayer</c>/<c>mLSTMInnerLayer</c>,
/// NX-AI xlstm <c>mLSTMLayer</c>). With the inner size <c>I = 64 ceil(projFactor E / 64)</c>, <c>Dqk = round(qkDimFactor I)</c>,
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
/// <para><b><see cref="MLSTMLayerType.MLSTMV1"/></b> (xlstm-jax <c>mLSTMLayerV1</c>), with <c>Dqk = int(qkDimFactor E)</c>,
/// <c>Dv = int(vDimFactor E)</c>: <c>q, k, v, o = dense_q(x), dense_k(x), dense_v(x), dense_o(x)</c>;
/// <c>i = cap(igate(x)), f = cap(fgate(x))</c>; <c>h = mLSTM(q, k, v, i, f)</c>;
/// <c>y = dropout(proj_down(sigmoid(o) * outnorm(h)))</c>.</para>
/// <para>The cell (per head, <c>q~ = q / sqrt(Dqk/NH)</c>): <c>m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)</c>,
/// <c>C_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T</c>, <c>n_t</c> likewise with <c>k_t</c>,
/// <c>h_t = C_t^T q~_t / (max(|n_t . q~_t|, exp(-m_t)) + 1e-6)</c>. outnorm is a <see cref="MultiHeadNorm"/> (layer or RMS
/// norm per head, weight only, eps <c>normEps</c>).</para>
/// <para>Init (xlstm-jax): <c>proj_up</c>, q/k/v projections and <c>dense_*</c> from the small init
/// <c>std = sqrt(2 / (5 E))</c>; <c>proj_down</c> from <c>outputInitFn</c> (Wang: <c>std = 2 / numBlocks / sqrt(E)</c>);
/// both from <c>initDistribution</c>; <c>dense_o</c> zero; gate weights zero, forget-gate bias <c>linspace(3, 6, NH)</c>,
/// input-gate bias <c>N(0, 0.1^2)</c>; <c>learnable_skip</c> and the norm gain one; linear biases zero; the convolution
/// as PyTorch's Conv1d (<c>U(-1/sqrt(K), 1/sqrt(K))</c>).</para>
/// <para>Parameter names (<c>state_dict</c>) follow NX-AI xlstm's PyTorch <c>mLSTMLayer</c> with the cell's parameters
/// lifted to the layer: <c>proj_up</c> (one matrix, x_mlstm rows first, then z), <c>conv1d.weight</c>/<c>conv1d.bias</c>
/// (PyTorch: <c>conv1d.conv.*</c>), <c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>igate</c>, <c>fgate</c>, <c>outnorm</c>
/// (PyTorch: <c>mlstm_cell.igate</c>, ...), <c>learnable_skip</c>, <c>proj_down</c>; the V1 layer uses xlstm-jax's
/// <c>dense_q</c>, <c>dense_k</c>, <c>dense_v</c>, <c>dense_o</c>, <c>igate</c>, <c>fgate</c>, <c>outnorm</c>, <c>proj_down</c>.</para>
/// <para>Streaming carries the convolution cache (child 0; null for V1) and the cell's <see cref="MLSTMState"/> (child 1).
/// Gates are computed in float32 at least; the cell's state is float32 for float32/16 inputs.</para>
/// </remarks>
public sealed class MLSTMSequenceMixer : SequenceMixer
{
    /// <summary>MLSTM: the up-projection <c>E -> I + Dv</c> (x_mlstm, then z).</summary>
    public Linear? proj_up;

    /// <summary>MLSTM: the causal depthwise convolution on x_mlstm (with bias, no activation of its own).</summary>
    public ShortConvolution? conv1d;

    /// <summary>MLSTM: the head-wise query projection <c>I -> Dqk</c>.</summary>
    public LinearHeadwiseExpand? q_proj;

    /// <summary>MLSTM: the head-wise key projection <c>I -> Dqk</c>.</summary>
    public LinearHeadwiseExpand? k_proj;

    /// <summary>MLSTM: the head-wise value projection <c>I -> Dv</c>.</summary>
    public LinearHeadwiseExpand? v_proj;

    /// <summary>MLSTM with <c>Dv != I</c>: the head-wise map of the skip features <c>I -> Dv</c>.</summary>
    public LinearHeadwiseExpand? x_mlstm_conv_scaling;

    /// <summary>MLSTM: the learnable skip gain <c>[Dv]</c> (initialized to 1).</summary>
    public Parameter? learnable_skip;

    /// <summary>MLSTMV1: the dense query projection <c>E -> Dqk</c>.</summary>
    public Linear? dense_q;

    /// <summary>MLSTMV1: the dense key projection <c>E -> Dqk</c>.</summary>
    public Linear? dense_k;

    /// <summary>MLSTMV1: the dense value projection <c>E -> Dv</c>.</summary>
    public Linear? dense_v;

    /// <summary>MLSTMV1: the output-gate projection <c>E -> Dv</c> (zero at init).</summary>
    public Linear? dense_o;

    /// <summary>The input-gate layer: gate features -> NH pre-activations (with bias).</summary>
    public Linear igate;

    /// <summary>The forget-gate layer: gate features -> NH pre-activations (with bias).</summary>
    public Linear fgate;

    /// <summary>The multi-head norm of the cell output (NH heads of <c>Dv / NH</c>).</summary>
    public MultiHeadNorm outnorm;

    /// <summary>The down-projection <c>Dv -> E</c>.</summary>
    public Linear proj_down;

    /// <summary>The dropout on the output.</summary>
    public FastDropout dropout;

    /// <summary>Creates the layer.</summary>
    /// <param name="embeddingDim">The input and output size E.</param>
    /// <param name="numHeads">The number of mLSTM heads NH; must divide Dqk and Dv.</param>
    /// <param name="projFactor">MLSTM: the up-projection factor (&gt; 0); the inner size is <c>projFactor E</c> rounded up to a multiple of 64.</param>
    /// <param name="conv1dKernelSize">MLSTM: the causal convolution's kernel size (at least 1).</param>
    /// <param name="qkvProjBlocksize">MLSTM: the block size of the head-wise q/k/v projections; must divide the inner size.</param>
    /// <param name="bias">Whether the projections (not the gates, which always have one) have biases.</param>
    /// <param name="dropout">Dropout probability on the output, in [0, 1).</param>
    /// <param name="qkDimFactor">Scales the query/key size (MLSTM: of I; MLSTMV1: of E); &gt; 0.</param>
    /// <param name="vDimFactor">Scales the value size (MLSTM: of I; MLSTMV1: of E); &gt; 0.</param>
    /// <param name="normType">The multi-head norm after the cell.</param>
    /// <param name="layerType">Which layer to build (see <see cref="MLSTMLayerType"/>).</param>
    /// <param name="gateInput">MLSTM: which features feed the gates.</param>
    /// <param name="gateSoftCap">If set (&gt; 0), gate pre-activations become <c>cap * tanh(a / cap)</c>; null (default) leaves them as they are.</param>
    /// <param name="initDistribution">The distribution of the projection weights.</param>
    /// <param name="outputInitFn">The init of <c>proj_down</c>.</param>
    /// <param name="chunkSize">The chunk length of <see cref="MLSTMKernel.Chunked"/> (at least 1).</param>
    /// <param name="numBlocks">The number of blocks of the model this layer is part of (the Wang init uses it; xlstm-jax's <c>_num_blocks</c>, default 1).</param>
    /// <param name="normEps">The eps of the multi-head norm (xlstm-jax's <c>norm_eps</c>, 1e-6).</param>
    public MLSTMSequenceMixer(long embeddingDim, int numHeads = 4, double projFactor = 2.0, int conv1dKernelSize = 4,
        int qkvProjBlocksize = 4, bool bias = false, double dropout = 0.0, double qkDimFactor = 1.0, double vDimFactor = 1.0,
        MLSTMNormType normType = MLSTMNormType.LayerNorm, MLSTMLayerType layerType = MLSTMLayerType.MLSTM,
        MLSTMGateInput gateInput = MLSTMGateInput.Qkv, double? gateSoftCap = null,
        MLSTMInitDistribution initDistribution = MLSTMInitDistribution.Normal, MLSTMOutputInit outputInitFn = MLSTMOutputInit.Wang,
        int chunkSize = 64, int numBlocks = 1, double normEps = 1e-6)
        : base(nameof(MLSTMSequenceMixer), ValidateEmbeddingDim(embeddingDim))
    {
        Check.AtLeast(numHeads, 1);
        Check.AtLeast(chunkSize, 1);
        Check.AtLeast(numBlocks, 1);
        Check.DropRate(dropout);
        if (!(qkDimFactor > 0) || double.IsInfinity(qkDimFactor)) throw new ArgumentOutOfRangeException(nameof(qkDimFactor), qkDimFactor, $"Expected a positive finite factor; got {qkDimFactor}.");
        if (!(vDimFactor > 0) || double.IsInfinity(vDimFactor)) throw new ArgumentOutOfRangeException(nameof(vDimFactor), vDimFactor, $"Expected a positive finite factor; got {vDimFactor}.");
        if (gateSoftCap is double cap && !(cap > 0 && !double.IsInfinity(cap)))
            throw new ArgumentOutOfRangeException(nameof(gateSoftCap), cap, $"Expected a positive finite soft cap (or null for none); got {cap}.");
        if (!(normEps > 0)) throw new ArgumentOutOfRangeException(nameof(normEps), normEps, $"Expected a positive eps; got {normEps}.");
        if (!Enum.IsDefined(normType)) throw new ArgumentOutOfRangeException(nameof(normType), normType, "Unknown norm type.");
        if (!Enum.IsDefined(layerType)) throw new ArgumentOutOfRangeException(nameof(layerType), layerType, "Unknown layer type.");
        if (!Enum.IsDefined(gateInput)) throw new ArgumentOutOfRangeException(nameof(gateInput), gateInput, "Unknown gate input.");
        if (!Enum.IsDefined(initDistribution)) throw new ArgumentOutOfRangeException(nameof(initDistribution), initDistribution, "Unknown init distribution.");
        if (!Enum.IsDefined(outputInitFn)) throw new ArgumentOutOfRangeException(nameof(outputInitFn), outputInitFn, "Unknown output init.");

        long e = embeddingDim;
        NumHeads = numHeads;
        LayerType = layerType;
        NormType = normType;
        GateInput = gateInput;
        GateSoftCap = gateSoftCap;
        ChunkSize = chunkSize;
        double smallStd = Math.Sqrt(2.0 / (5.0 * e));
        double outStd = outputInitFn == MLSTMOutputInit.Wang ? 2.0 / numBlocks / Math.Sqrt(e) : smallStd;
        long gateFeatures;

        if (layerType == MLSTMLayerType.MLSTM)
        {
            if (!(projFactor > 0) || double.IsInfinity(projFactor)) throw new ArgumentOutOfRangeException(nameof(projFactor), projFactor, $"Expected a positive finite projection factor; got {projFactor}.");
            Check.AtLeast(conv1dKernelSize, 1);
            Check.AtLeast(qkvProjBlocksize, 1);
            long inner = (long)Math.Ceiling(projFactor * e / 64.0) * 64;
            if (inner % qkvProjBlocksize != 0)
                throw new ArgumentException($"Expected qkvProjBlocksize to divide the inner size {inner} (= 64 ceil(projFactor * embeddingDim / 64)); got {qkvProjBlocksize}.", nameof(qkvProjBlocksize));
            long blocks = inner / qkvProjBlocksize;
            long qk = (long)Math.Round(qkDimFactor * inner, MidpointRounding.ToEven);
            long vd = (long)Math.Round(vDimFactor * inner, MidpointRounding.ToEven);
            if (qk < 1 || qk % blocks != 0)
                throw new ArgumentException($"Expected round(qkDimFactor * {inner}) to be a positive multiple of the {blocks} projection blocks; qkDimFactor = {qkDimFactor} gives {qk}.", nameof(qkDimFactor));
            if (vd < 1 || vd % blocks != 0)
                throw new ArgumentException($"Expected round(vDimFactor * {inner}) to be a positive multiple of the {blocks} projection blocks; vDimFactor = {vDimFactor} gives {vd}.", nameof(vDimFactor));
            CheckHeads(numHeads, qk, vd);
            InnerDim = inner; QKDim = qk; VDim = vd;

            proj_up = nn.Linear(e, inner + vd, hasBias: bias);
            conv1d = new ShortConvolution(inner, conv1dKernelSize, useSilu: false, useBias: true);
            q_proj = new LinearHeadwiseExpand(inner, blocks, qk, bias);
            k_proj = new LinearHeadwiseExpand(inner, blocks, qk, bias);
            v_proj = new LinearHeadwiseExpand(inner, blocks, vd, bias);
            if (vd != inner) x_mlstm_conv_scaling = new LinearHeadwiseExpand(inner, blocks, vd, bias);
            learnable_skip = nn.Parameter(ones(vd));
            using (no_grad())
            {
                Draw(proj_up.weight!, smallStd, initDistribution);
                Draw(q_proj.weight, smallStd, initDistribution);
                Draw(k_proj.weight, smallStd, initDistribution);
                Draw(v_proj.weight, smallStd, initDistribution);
                if (x_mlstm_conv_scaling is not null) Draw(x_mlstm_conv_scaling.weight, smallStd, initDistribution);
            }
            gateFeatures = gateInput == MLSTMGateInput.Qkv ? 2 * qk + vd : inner;
        }
        else
        {
            long qk = (long)(qkDimFactor * e);
            long vd = (long)(vDimFactor * e);
            if (qk < 1) throw new ArgumentException($"Expected int(qkDimFactor * embeddingDim) >= 1; got {qk}.", nameof(qkDimFactor));
            if (vd < 1) throw new ArgumentException($"Expected int(vDimFactor * embeddingDim) >= 1; got {vd}.", nameof(vDimFactor));
            CheckHeads(numHeads, qk, vd);
            InnerDim = e; QKDim = qk; VDim = vd;
            dense_q = nn.Linear(e, qk, hasBias: bias);
            dense_k = nn.Linear(e, qk, hasBias: bias);
            dense_v = nn.Linear(e, vd, hasBias: bias);
            dense_o = nn.Linear(e, vd, hasBias: bias);
            using (no_grad())
            {
                Draw(dense_q.weight!, smallStd, initDistribution);
                Draw(dense_k.weight!, smallStd, initDistribution);
                Draw(dense_v.weight!, smallStd, initDistribution);
                dense_o.weight!.zero_();
                foreach (var l in new[] { dense_q, dense_k, dense_v, dense_o }) l.bias?.zero_();
            }
            gateFeatures = e;
        }

        igate = nn.Linear(gateFeatures, numHeads, hasBias: true);
        fgate = nn.Linear(gateFeatures, numHeads, hasBias: true);
        outnorm = new MultiHeadNorm(numHeads, VDim / numHeads, useRms: normType == MLSTMNormType.RMSNorm, eps: normEps);
        proj_down = nn.Linear(VDim, e, hasBias: bias);
        this.dropout = new FastDropout(dropout);
        using (no_grad())
        {
            igate.weight!.zero_();
            igate.bias!.normal_(0.0, 0.1);
            fgate.weight!.zero_();
            fgate.bias!.copy_(linspace(3.0, 6.0, numHeads));
            Draw(proj_down.weight!, outStd, initDistribution);
            proj_up?.bias?.zero_();
            proj_down.bias?.zero_();
        }
        RegisterComponents();
    }

    /// <summary>The number of mLSTM heads NH.</summary>
    public int NumHeads { get; }

    /// <summary>Which layer this is.</summary>
    public MLSTMLayerType LayerType { get; }

    /// <summary>The multi-head norm type.</summary>
    public MLSTMNormType NormType { get; }

    /// <summary>Which features feed the gates (MLSTM layer type only).</summary>
    public MLSTMGateInput GateInput { get; }

    /// <summary>The gate soft cap, or null for none.</summary>
    public double? GateSoftCap { get; }

    /// <summary>The chunk length of the kernel.</summary>
    public int ChunkSize { get; }

    /// <summary>The inner size I (MLSTM: <c>64 ceil(projFactor E / 64)</c>; MLSTMV1: E).</summary>
    public long InnerDim { get; }

    /// <summary>The total query/key size Dqk (NH heads of Dqk / NH).</summary>
    public long QKDim { get; }

    /// <summary>The total value size Dv (NH heads of Dv / NH).</summary>
    public long VDim { get; }

    /// <inheritdoc />
    /// <remarks>The state is an <see cref="MLSTMState"/>: the cell's (C, n, m) and, for <see cref="MLSTMLayerType.MLSTM"/>,
    /// the convolution's state.</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState)
    {
        var previous = (MLSTMState?)state;
        bool stream = returnState || previous is not null;
        long b = x.shape[0], l = x.shape[1];
        Tensor q, k, v, gin, gated;
        ShortConvolutionState? convState = null;
        Tensor? skip = null, z = null, o = null;
        if (LayerType == MLSTMLayerType.MLSTM)
        {
            var up = proj_up!.forward(x);
            var xm = up.narrow(-1, 0, InnerDim);
            z = up.narrow(-1, InnerDim, VDim);
            Tensor xc;
            if (stream)
            {
                var (yc, sc) = conv1d!.Stream(xm, previous?.Conv);
                xc = yc;
                convState = (ShortConvolutionState)sc;
            }
            else xc = conv1d!.forward(xm);
            var c = nn.functional.silu(xc);
            q = q_proj!.forward(c);
            k = k_proj!.forward(c);
            v = v_proj!.forward(xm);
            gin = GateInput switch
            {
                MLSTMGateInput.Qkv => cat(new[] { q, k, v }, -1),
                MLSTMGateInput.XMlstm => xm,
                MLSTMGateInput.XMlstmConv => xc,
                _ => c,
            };
            skip = x_mlstm_conv_scaling is null ? c : x_mlstm_conv_scaling.forward(c);
        }
        else
        {
            q = dense_q!.forward(x);
            k = dense_k!.forward(x);
            v = dense_v!.forward(x);
            o = dense_o!.forward(x);
            gin = x;
        }

        // Gates in float32 at least (xlstm-jax's gate_dtype), [B, L, NH] -> [B, NH, L].
        var gt = x.dtype is ScalarType.Float16 or ScalarType.BFloat16 ? ScalarType.Float32 : x.dtype;
        var gw = gin.to(gt);
        var ig = SoftCap(nn.functional.linear(gw, igate.weight!.to(gt), igate.bias!.to(gt))).transpose(1, 2);
        var fg = SoftCap(nn.functional.linear(gw, fgate.weight!.to(gt), fgate.bias!.to(gt))).transpose(1, 2);

        long nh = NumHeads;
        var qh = q.reshape(b, l, nh, QKDim / nh).transpose(1, 2);
        var kh = k.reshape(b, l, nh, QKDim / nh).transpose(1, 2);
        var vh = v.reshape(b, l, nh, VDim / nh).transpose(1, 2);
        var (h, cellState) = MLSTMKernel.Chunked(qh, kh, vh, ig, fg, ChunkSize,
            previous is null ? null : new MLSTMKernelState(previous.C, previous.N, previous.M));
        var hn = outnorm.forward(h.transpose(1, 2)).reshape(b, l, VDim);         // [B, L, Dv]

        if (LayerType == MLSTMLayerType.MLSTM)
            gated = (hn + learnable_skip!.to(x.dtype) * skip!) * nn.functional.silu(z!);
        else
            gated = nn.functional.sigmoid(o!) * hn;
        var y = dropout.forward(proj_down.forward(gated));

        if (!returnState) return (y, null);
        return (y, new MLSTMState(cellState.C, cellState.N, cellState.M, x.dtype, convState));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        StreamingState.Expect<MLSTMState>(state, Describe()).Validate(NumHeads, QKDim / NumHeads, VDim / NumHeads,
            conv1d?.KernelSize, InnerDim, Describe());

    private string Describe() => $"MLSTMSequenceMixer(embeddingDim: {InFeatures}, layerType: {LayerType}, numHeads: {NumHeads})";

    private Tensor SoftCap(Tensor a) => GateSoftCap is double cap ? cap * (a / cap).tanh() : a;

    private static long ValidateEmbeddingDim(long embeddingDim)
    {
        Check.AtLeast(embeddingDim, 1);
        return embeddingDim;
    }

    private static void CheckHeads(int numHeads, long qk, long vd)
    {
        if (qk % numHeads != 0 || vd % numHeads != 0)
            throw new ArgumentException($"Expected numHeads to divide the query/key size {qk} and the value size {vd}; got numHeads = {numHeads}.", nameof(numHeads));
    }

    private static void Draw(Tensor w, double std, MLSTMInitDistribution distribution)
    {
        switch (distribution)
        {
            case MLSTMInitDistribution.Normal:
                w.normal_(0.0, std);
                break;
            case MLSTMInitDistribution.TruncatedNormal:
                // N(0, std^2) restricted to [-2 std, 2 std]: redraw the values outside until none is left.
                w.normal_(0.0, std);
                while (true)
                {
                    using var outside = w.abs() > 2 * std;
                    if (!outside.any().item<bool>()) break;
                    using var fresh = empty_like(w).normal_(0.0, std);
                    w.copy_(where(outside, fresh, w));
                }
                break;
            default:
                double bound = Math.Sqrt(3.0) * std;
                w.uniform_(-bound, bound);
                break;
        }
    }
}
