using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// Gated DeltaNet sequence mixer (Yang, Kautz and Hatamizadeh 2025, "Gated Delta Networks: Improving Mamba2 with Delta
/// Rule", https://arxiv.org/abs/2412.06464; the linear-attention layers of Qwen3-Next), with the options, parameter
/// names and math of flash-linear-attention's <c>GatedDeltaNet</c> layer (<c>fla/layers/gated_deltanet.py</c>),
/// computed with <see cref="GatedDeltaRule.Chunked"/>.
/// <para>Per time step t, with NH query/key heads of size Dk = <c>headDim</c> and HV = <c>numVHeads</c> value heads of
/// size Dv = <c>headDim * expandV</c>:</para>
/// <code>
/// q, k, v = q_proj(x), k_proj(x), v_proj(x)             (Linear H -> NH Dk, NH Dk, HV Dv; no bias)
/// q, k, v = silu(conv(q)), silu(conv(k)), silu(conv(v))  (q_conv1d, k_conv1d, v_conv1d: causal depthwise, kernel convSize;
///                                                       without short convolutions: silu(q), silu(k), silu(v))
/// q, k    = q / sqrt(|q|^2 + 1e-6), k / sqrt(|k|^2 + 1e-6)   (per head, fla's l2norm)
/// q       = q * Dk^-1/2
/// beta    = sigmoid(b_proj(x))        (Linear H -> HV; 2 sigmoid(.) with allowNegativeEigenvalues)
/// g       = -exp(A_log) * softplus(a_proj(x) + dt_bias)  (Linear H -> HV; the log decay, g &lt;= 0)
/// S_t     = exp(g_t) S_{t-1} + beta_t k_t (v_t - exp(g_t) S_{t-1}^T k_t)^T,   o_t = S_t^T q_t   (per value head)
/// o       = rms(o) * o_norm.weight * silu(g_proj(x))   (per value head; without the gate: rms(o) * o_norm.weight)
/// y       = o_proj(concat o)          (Linear HV Dv -> H, no bias)
/// </code>
/// <para>Grouped value heads (fla's GVA, HV a multiple of NH): value head i reads query/key head
/// <c>i / (HV / NH)</c>. Initialization as fla's layer: the projections PyTorch's default, <c>A_log = log(U(0, 16))</c>,
/// <c>dt_bias = softplus^-1(dt)</c> with <c>dt = max(exp(U(log 0.001, log 0.1)), 1e-4)</c>, the norm's gain 1.
/// (fla's language models re-initialize the linear layers with normal(0, 0.02); that belongs to the model, not the
/// layer.) fla's defaults are kept here (<c>headDim</c> 256, <c>numHeads</c> 6: sized for hidden 2048); the
/// <see cref="Models.GatedDeltaNet"/> model picks sizes for small hidden dims.</para>
/// <para>Streaming state: a <see cref="GatedDeltaNetState"/>, the memory <c>S [B, HV, Dk, Dv]</c> and, with short
/// convolutions, the three convolution states. A single step continuing from a state runs the literal recurrence
/// (<see cref="GatedDeltaRule.Recurrent"/>), the decoding path.</para>
/// </summary>
public sealed class GatedDeltaNetSequenceMixer : SequenceMixer
{
    /// <summary>Query projection <c>H -> NH Dk</c>.</summary>
    public Linear q_proj;

    /// <summary>Key projection <c>H -> NH Dk</c>.</summary>
    public Linear k_proj;

    /// <summary>Value projection <c>H -> HV Dv</c>.</summary>
    public Linear v_proj;

    /// <summary>Decay input projection <c>H -> HV</c>.</summary>
    public Linear a_proj;

    /// <summary>Write-strength projection <c>H -> HV</c>.</summary>
    public Linear b_proj;

    /// <summary>Log of the decay rates A <c>[HV]</c> (<c>-exp(A_log)</c> multiplies the softplus).</summary>
    public Parameter A_log;

    /// <summary>The bias inside the softplus of the decay <c>[HV]</c>.</summary>
    public Parameter dt_bias;

    /// <summary>Short convolution on q (with <c>useShortConv</c>).</summary>
    public ShortConvolution? q_conv1d;

    /// <summary>Short convolution on k (with <c>useShortConv</c>).</summary>
    public ShortConvolution? k_conv1d;

    /// <summary>Short convolution on v (with <c>useShortConv</c>).</summary>
    public ShortConvolution? v_conv1d;

    /// <summary>Output gate projection <c>H -> HV Dv</c> (with <c>useGate</c>).</summary>
    public Linear? g_proj;

    /// <summary>
    /// The per-head output norm over Dv: a <see cref="GatedRMSNorm"/> (norm, then gate) with <c>useGate</c>, else an
    /// <see cref="RMSNorm"/>; its gain is <c>o_norm.weight [Dv]</c> either way.
    /// </summary>
    public nn.Module o_norm;

    /// <summary>Output projection <c>HV Dv -> H</c>.</summary>
    public Linear o_proj;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H (fla's <c>hidden_size</c>).</param>
    /// <param name="numHeads">Query/key heads NH (fla's <c>num_heads</c>).</param>
    /// <param name="headDim">The key size Dk per head (fla's <c>head_dim</c>).</param>
    /// <param name="numVHeads">Value heads HV, a multiple of NH (fla's <c>num_v_heads</c>); default NH.</param>
    /// <param name="expandV">The value size per head as a multiple of Dk (fla's <c>expand_v</c>); <c>headDim * expandV</c> must be a whole number.</param>
    /// <param name="useGate">The output gate <c>silu(g_proj(x))</c> in the output norm (fla's <c>use_gate</c>).</param>
    /// <param name="useShortConv">Short causal convolutions with SiLU on q, k, v (fla's <c>use_short_conv</c>).</param>
    /// <param name="convSize">Their kernel size (fla's <c>conv_size</c>).</param>
    /// <param name="convBias">Biases in those convolutions (fla's <c>conv_bias</c>).</param>
    /// <param name="allowNegativeEigenvalues"><c>beta = 2 sigmoid(.)</c>, in (0, 2) (fla's <c>allow_neg_eigval</c>).</param>
    /// <param name="normEps">The output norm's epsilon (fla's <c>norm_eps</c>).</param>
    /// <param name="chunkSize">The chunk size of the chunked kernel (the result does not depend on it).</param>
    public GatedDeltaNetSequenceMixer(long inFeatures, int numHeads = 6, int headDim = 256, int? numVHeads = null,
        double expandV = 2, bool useGate = true, bool useShortConv = true, int convSize = 4, bool convBias = false,
        bool allowNegativeEigenvalues = false, double normEps = 1e-5, int chunkSize = 64)
        : base(nameof(GatedDeltaNetSequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(numHeads, 1);
        Check.AtLeast(headDim, 1);
        Check.AtLeast(chunkSize, 1);
        Check.PositiveFinite(normEps);
        int hv = numVHeads ?? numHeads;
        if (hv < 1 || hv % numHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(numVHeads), numVHeads, $"Expected a number of value heads that is a multiple of numHeads ({numHeads}); got {hv}.");
        Check.PositiveFinite(expandV);
        double dv = headDim * expandV;
        if (Math.Abs(dv - Math.Round(dv)) > 1e-9 * Math.Max(1, dv) || Math.Round(dv) < 1)
            throw new ArgumentOutOfRangeException(nameof(expandV), expandV, $"Expected headDim * expandV to be a whole number of at least 1; got {headDim} * {expandV} = {dv}.");
        NumHeads = numHeads;
        NumVHeads = hv;
        HeadKDim = headDim;
        HeadVDim = (int)Math.Round(dv);
        ChunkSize = chunkSize;
        AllowNegativeEigenvalues = allowNegativeEigenvalues;
        long keyDim = (long)numHeads * headDim, valueDim = (long)hv * HeadVDim;
        q_proj = nn.Linear(inFeatures, keyDim, hasBias: false);
        k_proj = nn.Linear(inFeatures, keyDim, hasBias: false);
        v_proj = nn.Linear(inFeatures, valueDim, hasBias: false);
        a_proj = nn.Linear(inFeatures, hv, hasBias: false);
        b_proj = nn.Linear(inFeatures, hv, hasBias: false);
        A_log = nn.Parameter(empty(hv).uniform_(0, 16).log_());
        dt_bias = nn.Parameter(Mamba2SequenceMixer.InitialDtBias(hv, 0.001, 0.1, 1e-4));
        if (useShortConv)
        {
            Check.AtLeast(convSize, 1);
            q_conv1d = new ShortConvolution(keyDim, convSize, useSilu: true, useBias: convBias);
            k_conv1d = new ShortConvolution(keyDim, convSize, useSilu: true, useBias: convBias);
            v_conv1d = new ShortConvolution(valueDim, convSize, useSilu: true, useBias: convBias);
        }
        if (useGate)
        {
            g_proj = nn.Linear(inFeatures, valueDim, hasBias: false);
            o_norm = new GatedRMSNorm(HeadVDim, normEps, normBeforeGate: true);
        }
        else
        {
            o_norm = new RMSNorm(HeadVDim, normEps);
        }
        o_proj = nn.Linear(valueDim, inFeatures, hasBias: false);
        RegisterComponents();
    }

    /// <summary>The query/key heads NH.</summary>
    public int NumHeads { get; }

    /// <summary>The value heads HV (a multiple of NH).</summary>
    public int NumVHeads { get; }

    /// <summary>The key size Dk per head.</summary>
    public int HeadKDim { get; }

    /// <summary>The value size Dv per head.</summary>
    public int HeadVDim { get; }

    /// <summary>The chunk size of the chunked kernel.</summary>
    public int ChunkSize { get; }

    /// <summary>Whether beta ranges over (0, 2).</summary>
    public bool AllowNegativeEigenvalues { get; }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (GatedDeltaNetState?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the short convolutions and the gated delta rule reset at every boundary (<c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (GatedDeltaNetState?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, GatedDeltaNetState? previous, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
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
        else
        {
            q = nn.functional.silu(q);
            k = nn.functional.silu(k);
            v = nn.functional.silu(v);
        }
        q = L2Normalize(Heads(q, b, l, NumHeads, HeadKDim)) * (1.0 / Math.Sqrt(HeadKDim));
        k = L2Normalize(Heads(k, b, l, NumHeads, HeadKDim));
        v = Heads(v, b, l, NumVHeads, HeadVDim);
        if (NumVHeads != NumHeads)
        {
            // Value head i reads query/key head i / (HV / NH).
            q = q.repeat_interleave(NumVHeads / NumHeads, 1);
            k = k.repeat_interleave(NumVHeads / NumHeads, 1);
        }
        var beta = nn.functional.sigmoid(b_proj.forward(x)).transpose(1, 2);             // [B, HV, L]
        if (AllowNegativeEigenvalues) beta = beta * 2;
        var g = (-A_log.exp()).unsqueeze(-1) * nn.functional.softplus(a_proj.forward(x).transpose(1, 2) + dt_bias.unsqueeze(-1));
        if (lengths is not null)
        {
            // Padded steps leave the memory as it is (beta = 0, no decay), so the final state is the one after each last valid step.
            var valid = SequenceLengths.Mask(lengths, l).unsqueeze(1);
            var zero = zeros(1, dtype: beta.dtype, device: beta.device);
            beta = where(valid, beta, zero);
            g = where(valid, g, zero);
        }

        var (o, s) = l == 1 && previous is not null && cuSeqlens is null
            ? GatedDeltaRule.Recurrent(q, k, v, g, beta, previous.S)
            : GatedDeltaRule.Chunked(q, k, v, g, beta, ChunkSize, previous?.S, cuSeqlens);

        o = o.transpose(1, 2);                                                              // [B, L, HV, Dv]
        o = o_norm is GatedRMSNorm gated
            ? gated.forward(o, g_proj!.forward(x).view(b, l, NumVHeads, HeadVDim))
            : ((RMSNorm)o_norm).forward(o);
        var y = o_proj.forward(o.reshape(b, l, (long)NumVHeads * HeadVDim));
        return (y, returnState ? new GatedDeltaNetState(s, x.dtype, qState, kState, vState) : null);
    }

    /// <summary>fla's <c>l2norm</c>: <c>x / sqrt(sum(x^2) + 1e-6)</c> over the last dimension.</summary>
    internal static Tensor L2Normalize(Tensor x) => x * x.square().sum(-1, keepdim: true).add(1e-6).rsqrt();

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state)
    {
        StreamingState.Expect<GatedDeltaNetState>(state, Describe())
            .Validate(NumVHeads, HeadKDim, HeadVDim, q_conv1d?.KernelSize, (long)NumHeads * HeadKDim, (long)NumVHeads * HeadVDim, Describe());
    }

    private string Describe() =>
        $"GatedDeltaNetSequenceMixer(inFeatures: {InFeatures}, numHeads: {NumHeads}, headDim: {HeadKDim}, numVHeads: {NumVHeads}, headVDim: {HeadVDim}, useShortConv: {q_conv1d is not null})";


    // [B, L, heads * d] -> [B, heads, L, d]
    private static Tensor Heads(Tensor t, long b, long l, long heads, long d) => t.view(b, l, heads, d).transpose(1, 2);
}
