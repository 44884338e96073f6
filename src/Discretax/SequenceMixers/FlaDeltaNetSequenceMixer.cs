using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// flash-linear-attention's <c>DeltaNet</c> layer (<c>fla/layers/delta_net.py</c>), exactly: its options, defaults,
/// parameter names and math, computed with <see cref="DeltaRule.Chunked"/>. Use it to run or fine-tune a layer (or,
/// through <see cref="Models.DeltaNetForCausalLM"/>, a language model) trained with fla; <see cref="DeltaNetSequenceMixer"/>
/// is discretax's DeltaNet, which differs (names, normalization, defaults; docs/interop.md).
/// <para>Per time step t, with NH heads, Dk = <c>int(H expandK) / NH</c> and Dv = <c>int(H expandV) / NH</c>:</para>
/// <code>
/// q, k, v = q_proj(x), k_proj(x), v_proj(x)             (Linear H -> NH Dk, NH Dk, NH Dv; no bias)
/// q, k    = phi(conv(q)), phi(conv(k));  v = silu(conv(v))   (q_conv1d, k_conv1d, v_conv1d: causal depthwise, kernel
///                                                       convSize; phi = silu for qkActivation Silu, else the identity.
///                                                       Without short convolutions: phi(q), phi(k), silu(v))
/// q, k    = f(q), f(k)          (per head; f = relu, elu + 1 or the identity for the other qkActivation values)
/// q, k    = n(q), n(k)          (per head; n = fla's l2norm u / sqrt(|u|^2 + 1e-6), or u / sum(u) for qkNorm Sum)
/// q       = q * Dk^-1/2         (the scale of fla's delta-rule kernel)
/// beta    = sigmoid(b_proj(x))  (Linear H -> NH, one per head; 1 without useBeta; times 2 with allowNegativeEigenvalues)
/// S_t     = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T,   o_t = S_t^T q_t   (per head, S in R^{Dk x Dv})
/// o       = rms(o) * o_norm.weight               (per head over Dv, eps normEps: always, as fla;
///           rms(o) * o_norm.weight * silu(g_proj(x))   with useGate: fla's FusedRMSNormGated, g_proj Linear H -> NH Dv)
/// y       = o_proj(concat o)                     (Linear NH Dv -> H, no bias)
/// </code>
/// <para>Initialization: PyTorch's defaults for the projections and convolutions, gain 1 for the norm, as fla's layer
/// (fla's language models re-initialize with normal(0, 0.02): <see cref="Models.FlaForCausalLM"/> does that).</para>
/// <para>Streaming state: a <see cref="DeltaNetState"/>, the memory <c>S [B, NH, Dk, Dv]</c> and, with short
/// convolutions, the three convolution states. A single step continuing from a state runs the literal recurrence
/// (<see cref="DeltaRule.Recurrent"/>), the decoding path.</para>
/// </summary>
public sealed class FlaDeltaNetSequenceMixer : SequenceMixer
{
    /// <summary>Query projection <c>H -> NH Dk</c>.</summary>
    public Linear q_proj;

    /// <summary>Key projection <c>H -> NH Dk</c>.</summary>
    public Linear k_proj;

    /// <summary>Value projection <c>H -> NH Dv</c>.</summary>
    public Linear v_proj;

    /// <summary>Write-strength projection <c>H -> NH</c> (with <c>useBeta</c>).</summary>
    public Linear? b_proj;

    /// <summary>Short convolution on q (with <c>useShortConv</c>; SiLU inside only for <see cref="FlaQKActivation.Silu"/>).</summary>
    public ShortConvolution? q_conv1d;

    /// <summary>Short convolution on k (with <c>useShortConv</c>; SiLU inside only for <see cref="FlaQKActivation.Silu"/>).</summary>
    public ShortConvolution? k_conv1d;

    /// <summary>Short convolution on v with SiLU (with <c>useShortConv</c>).</summary>
    public ShortConvolution? v_conv1d;

    /// <summary>Output gate projection <c>H -> NH Dv</c> (with <c>useGate</c>).</summary>
    public Linear? g_proj;

    /// <summary>
    /// The per-head output norm over Dv: a <see cref="GatedRMSNorm"/> (norm, then gate) with <c>useGate</c>, else an
    /// <see cref="RMSNorm"/>; its gain is <c>o_norm.weight [Dv]</c> either way.
    /// </summary>
    public nn.Module o_norm;

    /// <summary>Output projection <c>NH Dv -> H</c>.</summary>
    public Linear o_proj;

    /// <summary>Creates the layer with fla's defaults.</summary>
    /// <param name="inFeatures">The feature size H (fla's <c>hidden_size</c>).</param>
    /// <param name="numHeads">The heads NH (fla's <c>num_heads</c>); must divide both <c>int(H expandK)</c> and <c>int(H expandV)</c>.</param>
    /// <param name="expandK">The key size NH Dk as a multiple of H, truncated to a whole number as fla does (fla's <c>expand_k</c>).</param>
    /// <param name="expandV">The value size NH Dv as a multiple of H, truncated likewise (fla's <c>expand_v</c>).</param>
    /// <param name="useBeta">A learned write strength per head and step (fla's <c>use_beta</c>); else beta = 1.</param>
    /// <param name="useGate">The output gate <c>silu(g_proj(x))</c> in the output norm (fla's <c>use_gate</c>).</param>
    /// <param name="useShortConv">Short causal convolutions on q, k, v (fla's <c>use_short_conv</c>).</param>
    /// <param name="convSize">Their kernel size (fla's <c>conv_size</c>).</param>
    /// <param name="convBias">Biases in those convolutions (fla's <c>conv_bias</c>).</param>
    /// <param name="allowNegativeEigenvalues"><c>beta = 2 sigmoid(.)</c>, in (0, 2) (fla's <c>allow_neg_eigval</c>).</param>
    /// <param name="qkActivation">The feature map of q and k (fla's <c>qk_activation</c>).</param>
    /// <param name="qkNorm">The normalization of q and k (fla's <c>qk_norm</c>).</param>
    /// <param name="normEps">The output norm's epsilon (fla's <c>norm_eps</c>; the layer's default 1e-5, fla's models pass
    /// their config's <c>norm_eps</c>, 1e-6 by default).</param>
    /// <param name="chunkSize">The chunk size of the chunked kernel (the result does not depend on it).</param>
    public FlaDeltaNetSequenceMixer(long inFeatures, int numHeads = 4, double expandK = 1, double expandV = 1,
        bool useBeta = true, bool useGate = false, bool useShortConv = true, int convSize = 4, bool convBias = false,
        bool allowNegativeEigenvalues = false, FlaQKActivation qkActivation = FlaQKActivation.Silu,
        FlaQKNorm qkNorm = FlaQKNorm.L2, double normEps = 1e-5, int chunkSize = 32)
        : base(nameof(FlaDeltaNetSequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(numHeads, 1);
        Check.PositiveFinite(expandK);
        Check.PositiveFinite(expandV);
        Check.Defined(qkActivation);
        Check.Defined(qkNorm);
        Check.PositiveFinite(normEps);
        Check.AtLeast(chunkSize, 1);
        long keyDim = ExpandedDim(inFeatures, expandK, numHeads, nameof(expandK));
        long valueDim = ExpandedDim(inFeatures, expandV, numHeads, nameof(expandV));
        NumHeads = numHeads;
        HeadKDim = (int)(keyDim / numHeads);
        HeadVDim = (int)(valueDim / numHeads);
        UseBeta = useBeta;
        AllowNegativeEigenvalues = allowNegativeEigenvalues;
        QKActivation = qkActivation;
        QKNorm = qkNorm;
        ChunkSize = chunkSize;
        q_proj = nn.Linear(inFeatures, keyDim, hasBias: false);
        k_proj = nn.Linear(inFeatures, keyDim, hasBias: false);
        v_proj = nn.Linear(inFeatures, valueDim, hasBias: false);
        if (useBeta) b_proj = nn.Linear(inFeatures, numHeads, hasBias: false);
        if (useShortConv)
        {
            Check.AtLeast(convSize, 1);
            bool qkSilu = qkActivation == FlaQKActivation.Silu;
            q_conv1d = new ShortConvolution(keyDim, convSize, useSilu: qkSilu, useBias: convBias);
            k_conv1d = new ShortConvolution(keyDim, convSize, useSilu: qkSilu, useBias: convBias);
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

    /// <summary>The heads NH.</summary>
    public int NumHeads { get; }

    /// <summary>The key size Dk per head.</summary>
    public int HeadKDim { get; }

    /// <summary>The value size Dv per head.</summary>
    public int HeadVDim { get; }

    /// <summary>Whether beta is learned (else 1).</summary>
    public bool UseBeta { get; }

    /// <summary>Whether beta ranges over (0, 2).</summary>
    public bool AllowNegativeEigenvalues { get; }

    /// <summary>The feature map of q and k.</summary>
    public FlaQKActivation QKActivation { get; }

    /// <summary>The normalization of q and k.</summary>
    public FlaQKNorm QKNorm { get; }

    /// <summary>The chunk size of the chunked kernel.</summary>
    public int ChunkSize { get; }

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
        bool qkSilu = QKActivation == FlaQKActivation.Silu;
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
            if (qkSilu)
            {
                q = nn.functional.silu(q);
                k = nn.functional.silu(k);
            }
            v = nn.functional.silu(v);
        }
        q = FeatureMap(Heads(q, b, l, HeadKDim));
        k = FeatureMap(Heads(k, b, l, HeadKDim));
        v = Heads(v, b, l, HeadVDim);
        Tensor? valid = lengths is null ? null : SequenceLengths.Mask(lengths, l).unsqueeze(1);   // [B, 1, L]
        if (QKNorm == FlaQKNorm.Sum)
        {
            q = q / q.sum(-1, keepdim: true);
            k = k / k.sum(-1, keepdim: true);
            if (valid is not null)
            {
                // A padded step may sum to 0; its zeroed key keeps a non-finite value out of the memory (beta is 0 there).
                var zero = zeros(1, dtype: q.dtype, device: q.device);
                q = where(valid.unsqueeze(-1), q, zero);
                k = where(valid.unsqueeze(-1), k, zero);
            }
        }
        else
        {
            q = GatedDeltaNetSequenceMixer.L2Normalize(q);
            k = GatedDeltaNetSequenceMixer.L2Normalize(k);
        }
        q = q * (1.0 / Math.Sqrt(HeadKDim));
        var beta = b_proj is null
            ? ones(b, NumHeads, l, dtype: x.dtype, device: x.device)
            : nn.functional.sigmoid(b_proj.forward(x)).transpose(1, 2);                  // [B, NH, L]
        if (AllowNegativeEigenvalues) beta = beta * 2;
        // Padded steps leave the memory as it is (beta = 0), so the final state is the one after each last valid step.
        if (valid is not null) beta = where(valid, beta, zeros(1, dtype: beta.dtype, device: beta.device));

        var (o, s) = l == 1 && previous is not null && cuSeqlens is null
            ? DeltaRule.Recurrent(q, k, v, beta, previous.S)
            : DeltaRule.Chunked(q, k, v, beta, ChunkSize, previous?.S, cuSeqlens);

        o = o.transpose(1, 2);                                                               // [B, L, NH, Dv]
        o = o_norm is GatedRMSNorm gated
            ? gated.forward(o, g_proj!.forward(x).view(b, l, NumHeads, HeadVDim))
            : ((RMSNorm)o_norm).forward(o);
        var y = o_proj.forward(o.reshape(b, l, (long)NumHeads * HeadVDim));
        return (y, returnState ? new DeltaNetState(s, x.dtype, qState, kState, vState) : null);
    }

    private Tensor FeatureMap(Tensor u) => QKActivation switch
    {
        FlaQKActivation.Relu => nn.functional.relu(u),
        FlaQKActivation.Elu => nn.functional.elu(u, 1.0) + 1,
        _ => u,   // SiLU came before (inside the convolution or right after the projection); the identity
    };

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state)
    {
        StreamingState.Expect<DeltaNetState>(state, Describe())
            .Validate(NumHeads, HeadKDim, HeadVDim, q_conv1d?.KernelSize, (long)NumHeads * HeadKDim, (long)NumHeads * HeadVDim, Describe());
    }

    private string Describe() =>
        $"FlaDeltaNetSequenceMixer(inFeatures: {InFeatures}, numHeads: {NumHeads}, headKDim: {HeadKDim}, headVDim: {HeadVDim}, useShortConv: {q_conv1d is not null})";

    /// <summary>fla's <c>int(hidden_size * expand)</c>, which the heads must divide.</summary>
    private static long ExpandedDim(long inFeatures, double expand, int numHeads, string paramName)
    {
        double raw = inFeatures * expand;
        if (!(raw >= 1 && raw < 1L << 40))
            throw new ArgumentOutOfRangeException(paramName, expand, $"Expected int(inFeatures * {paramName}) between 1 and 2^40; got int({inFeatures} * {expand}).");
        long dim = (long)raw;
        if (dim % numHeads != 0)
            throw new ArgumentException($"int(inFeatures * {paramName}) = int({inFeatures} * {expand}) = {dim} must be divisible by numHeads ({numHeads}).", nameof(numHeads));
        return dim;
    }

    // [B, L, NH * d] -> [B, NH, L, d]
    private Tensor Heads(Tensor t, long b, long l, long d) => t.view(b, l, NumHeads, d).transpose(1, 2);
}
