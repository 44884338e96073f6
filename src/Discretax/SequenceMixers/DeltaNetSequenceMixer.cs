using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// DeltaNet sequence mixer: multi-head linear attention whose state is updated by the delta rule
/// (Yang et al. 2024, "Parallelizing Linear Transformers with the Delta Rule over Sequence Length",
/// https://arxiv.org/abs/2406.06484), computed with the chunked kernel <see cref="DeltaRule.Chunked"/>.
/// <para>Default math, as discretax's <c>DeltaNetSequenceMixer</c>, per time step t and head h:</para>
/// <code>
/// q, k, v = q_proj(x), k_proj(x), v_proj(x)          (Linear H -> numHeads * headDim, no bias)
/// q, k    = q / (||q|| + 1e-6), k / (||k|| + 1e-6)    (per head)
/// beta    = sigmoid(beta_proj(x))                     (Linear H -> 1, shared by the heads)
/// S_t     = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T,   o_t = S_t^T q_t
/// y       = out_proj(concat_h o_t)                    (Linear numHeads * headDim -> H)
/// </code>
/// <para>Options modelled on fla's <c>DeltaNet</c> layer, all off by default (close to fla's, not exact: the L2
/// normalization and the norm's epsilon differ; <see cref="FlaDeltaNetSequenceMixer"/> is fla's layer exactly): one beta per head
/// (<c>beta_proj</c>: H -> numHeads); short causal convolutions with SiLU on q, k, v (<c>q_conv1d</c>,
/// <c>k_conv1d</c>, <c>v_conv1d</c>, applied after the projections); query scaling by <c>headDim^-1/2</c>;
/// a per-head output RMSNorm (<c>o_norm</c>, shared over heads); an output gate <c>o * silu(g_proj(x))</c>
/// (after the norm when both are on, i.e. <c>rmsnorm(o) * silu(g)</c>); negative eigenvalues
/// (<c>beta = 2 sigmoid(.)</c>, range (0, 2)).</para>
/// <para>Streaming state: a <see cref="DeltaNetState"/>, the delta-rule state <c>S [B, numHeads, headDim, headDim]</c>
/// and, with short convolutions, the three convolution states.</para>
/// </summary>
public sealed class DeltaNetSequenceMixer : SequenceMixer
{
    /// <summary>Query projection <c>H -> numHeads * headDim</c>.</summary>
    public Linear q_proj;

    /// <summary>Key projection <c>H -> numHeads * headDim</c>.</summary>
    public Linear k_proj;

    /// <summary>Value projection <c>H -> numHeads * headDim</c>.</summary>
    public Linear v_proj;

    /// <summary>Beta projection <c>H -> 1</c> (or <c>H -> numHeads</c> with one beta per head).</summary>
    public Linear beta_proj;

    /// <summary>Output projection <c>numHeads * headDim -> H</c>.</summary>
    public Linear out_proj;

    /// <summary>Short convolution on q (with <c>useShortConv</c>).</summary>
    public ShortConvolution? q_conv1d;

    /// <summary>Short convolution on k (with <c>useShortConv</c>).</summary>
    public ShortConvolution? k_conv1d;

    /// <summary>Short convolution on v (with <c>useShortConv</c>).</summary>
    public ShortConvolution? v_conv1d;

    /// <summary>Per-head output RMSNorm over <c>headDim</c> (with <c>useOutputNorm</c>).</summary>
    public RMSNorm? o_norm;

    /// <summary>Output gate projection <c>H -> numHeads * headDim</c> (with <c>useOutputGate</c>).</summary>
    public Linear? g_proj;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    /// <param name="numHeads">The number of heads.</param>
    /// <param name="headDim">The per-head size of q, k and v; default <c>inFeatures / numHeads</c> (which must divide).</param>
    /// <param name="chunkSize">The chunk size of the chunked kernel (any length works; the result does not depend on it).</param>
    /// <param name="useBias">Biases on <c>beta_proj</c> and <c>out_proj</c> (discretax's <c>use_bias</c>).</param>
    /// <param name="betaPerHead">One beta per head instead of one shared beta.</param>
    /// <param name="useShortConv">Short causal convolutions with SiLU on q, k and v.</param>
    /// <param name="convSize">The kernel size of those convolutions.</param>
    /// <param name="scaleQuery">Scale q by <c>headDim^-1/2</c> after normalization.</param>
    /// <param name="useOutputNorm">RMSNorm over each head's output.</param>
    /// <param name="useOutputGate">Multiply the output by <c>silu(g_proj(x))</c>.</param>
    /// <param name="allowNegativeEigenvalues">Use <c>beta = 2 sigmoid(.)</c>, in (0, 2).</param>
    public DeltaNetSequenceMixer(long inFeatures, int numHeads = 4, int? headDim = null, int chunkSize = 32,
        bool useBias = false, bool betaPerHead = false, bool useShortConv = false, int convSize = 4,
        bool scaleQuery = false, bool useOutputNorm = false, bool useOutputGate = false,
        bool allowNegativeEigenvalues = false)
        : base(nameof(DeltaNetSequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(numHeads, 1);
        Check.AtLeast(chunkSize, 1);
        if (headDim is null && inFeatures % numHeads != 0)
            throw new ArgumentException($"inFeatures ({inFeatures}) must be divisible by numHeads ({numHeads}) when headDim is not given.", nameof(numHeads));
        if (headDim is < 1) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"Expected a head size of at least 1; got {headDim}.");
        NumHeads = numHeads;
        HeadDim = headDim ?? (int)(inFeatures / numHeads);
        ChunkSize = chunkSize;
        BetaPerHead = betaPerHead;
        ScaleQuery = scaleQuery;
        AllowNegativeEigenvalues = allowNegativeEigenvalues;
        long inner = (long)NumHeads * HeadDim;
        q_proj = nn.Linear(inFeatures, inner, hasBias: false);
        k_proj = nn.Linear(inFeatures, inner, hasBias: false);
        v_proj = nn.Linear(inFeatures, inner, hasBias: false);
        beta_proj = nn.Linear(inFeatures, betaPerHead ? numHeads : 1, hasBias: useBias);
        out_proj = nn.Linear(inner, inFeatures, hasBias: useBias);
        if (useShortConv)
        {
            Check.AtLeast(convSize, 1);
            q_conv1d = new ShortConvolution(inner, convSize, useSilu: true);
            k_conv1d = new ShortConvolution(inner, convSize, useSilu: true);
            v_conv1d = new ShortConvolution(inner, convSize, useSilu: true);
        }
        if (useOutputNorm) o_norm = new RMSNorm(HeadDim);
        if (useOutputGate) g_proj = nn.Linear(inFeatures, inner, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The number of heads.</summary>
    public int NumHeads { get; }

    /// <summary>The per-head size of q, k and v.</summary>
    public int HeadDim { get; }

    /// <summary>The chunk size of the chunked kernel.</summary>
    public int ChunkSize { get; }

    /// <summary>Whether each head has its own beta.</summary>
    public bool BetaPerHead { get; }

    /// <summary>Whether q is scaled by <c>headDim^-1/2</c>.</summary>
    public bool ScaleQuery { get; }

    /// <summary>Whether beta ranges over (0, 2).</summary>
    public bool AllowNegativeEigenvalues { get; }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (DeltaNetState?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the short convolutions and the delta rule reset at every boundary (<c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (DeltaNetState?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, DeltaNetState? previous, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        long b = x.shape[0], l = x.shape[1];
        var q = q_proj.forward(x);
        var k = k_proj.forward(x);
        var v = v_proj.forward(x);
        ShortConvolutionState? qState = null, kState = null, vState = null;
        if (q_conv1d is not null)
        {
            (q, qState) = q_conv1d!.Apply(q, previous?.QConv, returnState, lengths, cuSeqlens);
            (k, kState) = k_conv1d!.Apply(k, previous?.KConv, returnState, lengths, cuSeqlens);
            (v, vState) = v_conv1d!.Apply(v, previous?.VConv, returnState, lengths, cuSeqlens);
        }
        q = Heads(q, b, l);
        k = Heads(k, b, l);
        v = Heads(v, b, l);
        q = q / (q.norm(-1, keepdim: true) + 1e-6);
        k = k / (k.norm(-1, keepdim: true) + 1e-6);
        if (ScaleQuery) q = q * (1.0 / Math.Sqrt(HeadDim));
        var beta = nn.functional.sigmoid(beta_proj.forward(x)).transpose(1, 2); // [B, 1 or NH, L]
        if (!BetaPerHead) beta = beta.expand(b, NumHeads, l);
        if (AllowNegativeEigenvalues) beta = beta * 2;
        // Padded steps leave the memory as it is (beta = 0), so the final state is the one after each last valid step.
        if (lengths is not null) beta = where(SequenceLengths.Mask(lengths, l).unsqueeze(1), beta, zeros(1, dtype: beta.dtype, device: beta.device));

        var (o, s) = l == 1 && previous is not null && cuSeqlens is null
            ? DeltaRule.Recurrent(q, k, v, beta, previous.S)
            : DeltaRule.Chunked(q, k, v, beta, ChunkSize, previous?.S, cuSeqlens);

        o = o.transpose(1, 2); // [B, L, NH, D]
        if (o_norm is not null) o = o_norm.forward(o);
        if (g_proj is not null) o = o * nn.functional.silu(g_proj.forward(x).view(b, l, NumHeads, HeadDim));
        var y = out_proj.forward(o.reshape(b, l, (long)NumHeads * HeadDim));
        return (y, returnState ? new DeltaNetState(s, x.dtype, qState, kState, vState) : null);
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state)
    {
        long inner = (long)NumHeads * HeadDim;
        StreamingState.Expect<DeltaNetState>(state, Describe())
            .Validate(NumHeads, HeadDim, HeadDim, q_conv1d?.KernelSize, inner, inner, Describe());
    }

    private string Describe() =>
        $"DeltaNetSequenceMixer(inFeatures: {InFeatures}, numHeads: {NumHeads}, headDim: {HeadDim}, useShortConv: {q_conv1d is not null})";


    // [B, L, NH * D] -> [B, NH, L, D]
    private Tensor Heads(Tensor t, long b, long l) => t.view(b, l, NumHeads, HeadDim).transpose(1, 2);
}
