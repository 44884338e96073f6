using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The Mamba2 sequence mixer (Dao and Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms
/// Through Structured State Space Duality", https://arxiv.org/abs/2405.21060), with the options, parameter names and
/// math of mamba_ssm's <c>Mamba2</c> / <c>Mamba2Simple</c> (<c>mamba_ssm/modules/mamba2*.py</c>) and fla's
/// <c>layers/mamba2.py</c>, computed with the state-space-duality kernel <see cref="SSD.Chunked"/>.
/// <para>With <c>d_inner = expand H</c>, NH = <c>d_inner / headDim</c> heads of size P = <c>headDim</c>, G =
/// <c>numGroups</c> groups of B and C of size N = <c>stateSize</c>, per time step t:</para>
/// <code>
/// z, xBC, dt = split(in_proj(u), [d_inner, d_inner + 2 G N, NH])   (Linear H -> 2 d_inner + 2 G N + NH; mamba's order [z, x, B, C, dt])
/// x, B, C    = split(silu(conv1d(xBC)), [d_inner, G N, G N])       (causal depthwise, kernel convSize, with bias)
/// dt         = clamp(softplus(dt + dt_bias), dtLimit)              ([NH])
/// A          = -exp(A_log)                                         ([NH])
/// h_t        = exp(dt_t A) h_{t-1} + (dt_t x_t) B_t^T,   y_t = h_t C_t + D x_t     (per head; head h uses group h / (NH / G))
/// y          = rms(y * silu(z)) * norm.weight                      (norm_before_gate = False, per group of d_inner / G;
///                                                                  normBeforeGate: rms(y) * norm.weight * silu(z))
/// out        = out_proj(y)                                         (Linear d_inner -> H)
/// </code>
/// <para>Initialization as mamba_ssm: the projections and the convolution PyTorch's default,
/// <c>dt_bias = softplus^-1(dt)</c> with <c>dt = max(exp(U(log dtMin, log dtMax)), dtInitFloor)</c>,
/// <c>A_log = log(U(aInitRange))</c>, <c>D = 1</c>, the norm's gain 1.</para>
/// <para>Defaults are mamba_ssm's but <c>stateSize</c>: 64 as <c>Mamba2Simple</c> (and the issue that specified this
/// layer), where mamba_ssm's full <c>Mamba2</c> and fla take 128; the SSD cost grows with N and 64 is ample for the
/// hidden sizes of this library's models. <c>chunkSize</c> is 64 (mamba_ssm: 256, a GPU tile size; measured on CPU,
/// docs/benchmarks.md). mamba_ssm's <c>learnable_init_states</c> and <c>d_ssm &lt; d_inner</c> (an MLP part in
/// <c>in_proj</c>) are not offered.</para>
/// <para>Streaming state: a <see cref="Mamba2State"/>, the SSM state <c>H [B, NH, P, N]</c> and the convolution's
/// state. A single step continuing from a state runs the literal recurrence (<see cref="SSD.Recurrent"/>), the
/// decoding path.</para>
/// </summary>
public sealed class Mamba2SequenceMixer : SequenceMixer
{
    /// <summary>The input projection <c>H -> 2 d_inner + 2 G N + NH</c> (z, x, B, C, dt).</summary>
    public Linear in_proj;

    /// <summary>The causal depthwise convolution over x, B and C (<c>weight [d_inner + 2 G N, 1, convSize]</c>, <c>bias</c>), with SiLU.</summary>
    public ShortConvolution conv1d;

    /// <summary>The bias inside the softplus of dt <c>[NH]</c>.</summary>
    public Parameter dt_bias;

    /// <summary>Log of the decay rates <c>[NH]</c> (<c>A = -exp(A_log)</c>).</summary>
    public Parameter A_log;

    /// <summary>The skip <c>D [NH]</c> (or <c>[d_inner]</c> with <c>dHasHeadDim</c>).</summary>
    public Parameter D;

    /// <summary>The gated RMS norm before the output projection (with <c>useNorm</c>).</summary>
    public GatedRMSNorm? norm;

    /// <summary>The output projection <c>d_inner -> H</c>.</summary>
    public Linear out_proj;

    private readonly double _dtLimitMin, _dtLimitMax;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H (mamba's <c>d_model</c>).</param>
    /// <param name="stateSize">The state size N (mamba's <c>d_state</c>).</param>
    /// <param name="convSize">The convolution's kernel size (<c>d_conv</c>).</param>
    /// <param name="expand">The inner size as a multiple of H (<c>expand</c>).</param>
    /// <param name="headDim">The head size P (<c>headdim</c>); must divide <c>expand * inFeatures</c>.</param>
    /// <param name="numGroups">Groups of B and C shared by NH / G heads each (<c>ngroups</c>); must divide NH.</param>
    /// <param name="dtMin">Smallest initial dt (<c>dt_min</c>).</param>
    /// <param name="dtMax">Largest initial dt (<c>dt_max</c>).</param>
    /// <param name="dtInitFloor">Lower bound of the initial dt (<c>dt_init_floor</c>).</param>
    /// <param name="dtLimit">The range dt is clamped to (<c>dt_limit</c>); default (0, infinity), no clamp.</param>
    /// <param name="aInitRange">The range of the initial A (<c>A_init_range</c>); default (1, 16).</param>
    /// <param name="useConvBias">A bias in the convolution (<c>conv_bias</c>).</param>
    /// <param name="useBias">Biases in <c>in_proj</c> and <c>out_proj</c> (<c>bias</c>).</param>
    /// <param name="dHasHeadDim">One D per channel instead of one per head (fla's <c>D_has_hdim</c>).</param>
    /// <param name="useNorm">The gated RMS norm (fla's <c>rmsnorm</c>); without it <c>y * silu(z)</c>.</param>
    /// <param name="normEps">The norm's epsilon.</param>
    /// <param name="chunkSize">The chunk size of the SSD kernel (the result does not depend on it).</param>
    /// <param name="normBeforeGate">The gated norm's order (<c>norm_before_gate</c>): false (mamba_ssm's and fla's
    /// default) <c>rms(y * silu(z)) * w</c>; true <c>rms(y) * w * silu(z)</c>. Without <paramref name="useNorm"/> it has
    /// no effect.</param>
    public Mamba2SequenceMixer(long inFeatures, int stateSize = 64, int convSize = 4, int expand = 2, int headDim = 64,
        int numGroups = 1, double dtMin = 0.001, double dtMax = 0.1, double dtInitFloor = 1e-4,
        (double Min, double Max)? dtLimit = null, (double Min, double Max)? aInitRange = null, bool useConvBias = true,
        bool useBias = false, bool dHasHeadDim = false, bool useNorm = true, double normEps = 1e-5, int chunkSize = 64,
        bool normBeforeGate = false)
        : base(nameof(Mamba2SequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(stateSize, 1);
        Check.AtLeast(convSize, 1);
        Check.AtLeast(expand, 1);
        Check.AtLeast(headDim, 1);
        Check.AtLeast(numGroups, 1);
        Check.AtLeast(chunkSize, 1);
        Check.PositiveFinite(normEps);
        long inner = expand * inFeatures;
        if (inner % headDim != 0)
            throw new ArgumentException($"Expected headDim ({headDim}) to divide expand * inFeatures ({inner}).", nameof(headDim));
        long nh = inner / headDim;
        if (nh % numGroups != 0)
            throw new ArgumentException($"Expected numGroups ({numGroups}) to divide the number of heads expand * inFeatures / headDim ({nh}).", nameof(numGroups));
        if (!(dtMin > 0 && dtMax >= dtMin && double.IsFinite(dtMax)))
            throw new ArgumentOutOfRangeException(nameof(dtMin), $"Expected 0 < dtMin <= dtMax < infinity; got dtMin {dtMin}, dtMax {dtMax}.");
        if (!(dtInitFloor >= 0 && double.IsFinite(dtInitFloor)))
            throw new ArgumentOutOfRangeException(nameof(dtInitFloor), dtInitFloor, "Expected a finite dtInitFloor >= 0.");
        var (limitMin, limitMax) = dtLimit ?? (0.0, double.PositiveInfinity);
        if (!(limitMin >= 0 && limitMax > limitMin) || double.IsNaN(limitMax))
            throw new ArgumentOutOfRangeException(nameof(dtLimit), dtLimit, "Expected 0 <= dtLimit.Min < dtLimit.Max.");
        var (aMin, aMax) = aInitRange ?? (1.0, 16.0);
        if (!(aMin > 0 && aMax >= aMin && double.IsFinite(aMax)))
            throw new ArgumentOutOfRangeException(nameof(aInitRange), aInitRange, "Expected 0 < aInitRange.Min <= aInitRange.Max < infinity.");
        StateSize = stateSize;
        HeadDim = headDim;
        NumHeads = (int)nh;
        NumGroups = numGroups;
        InnerDim = inner;
        ChunkSize = chunkSize;
        _dtLimitMin = limitMin;
        _dtLimitMax = limitMax;
        long convDim = inner + 2L * numGroups * stateSize;
        in_proj = nn.Linear(inFeatures, inner + convDim + nh, hasBias: useBias);
        conv1d = new ShortConvolution(convDim, convSize, useSilu: true, useBias: useConvBias);
        dt_bias = nn.Parameter(InitialDtBias(nh, dtMin, dtMax, dtInitFloor));
        A_log = nn.Parameter(empty(nh).uniform_(aMin, aMax).log_());
        D = nn.Parameter(ones(dHasHeadDim ? inner : nh));
        if (useNorm) norm = new GatedRMSNorm(inner, normEps, normBeforeGate: normBeforeGate, groupSize: inner / numGroups);
        out_proj = nn.Linear(inner, inFeatures, hasBias: useBias);
        RegisterComponents();
    }

    /// <summary>The state size N.</summary>
    public int StateSize { get; }

    /// <summary>The head size P.</summary>
    public int HeadDim { get; }

    /// <summary>The number of heads NH = <c>d_inner / P</c>.</summary>
    public int NumHeads { get; }

    /// <summary>The number of groups G of B and C.</summary>
    public int NumGroups { get; }

    /// <summary>The inner size <c>d_inner = expand H</c>.</summary>
    public long InnerDim { get; }

    /// <summary>The chunk size of the SSD kernel.</summary>
    public int ChunkSize { get; }

    /// <summary>
    /// mamba_ssm's (and fla's) dt-bias initialization: <c>dt = max(exp(U(log dtMin, log dtMax)), floor)</c>, returned
    /// as its softplus inverse <c>dt + log(-expm1(-dt))</c>, so that <c>softplus(dt_bias) = dt</c>.
    /// </summary>
    internal static Tensor InitialDtBias(long count, double dtMin, double dtMax, double floor)
    {
        using var scope = NewDisposeScope();
        var dt = (rand(count) * (Math.Log(dtMax) - Math.Log(dtMin)) + Math.Log(dtMin)).exp().clamp_min(floor);
        return (dt + (-(-dt).expm1()).log()).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (Mamba2State?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the convolution and the SSD recurrence reset at every boundary (<c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (Mamba2State?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor u, Mamba2State? previous, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        long b = u.shape[0], l = u.shape[1];
        long gn = (long)NumGroups * StateSize;
        var parts = in_proj.forward(u).split(new[] { InnerDim, InnerDim + 2 * gn, NumHeads }, -1);
        Tensor z = parts[0], xbc = parts[1], dtRaw = parts[2];
        var (conv, convState) = conv1d.Apply(xbc, previous?.Conv, returnState, lengths, cuSeqlens);
        var xBC = conv.split(new[] { InnerDim, gn, gn }, -1);
        var x = xBC[0].view(b, l, NumHeads, HeadDim).transpose(1, 2);                       // [B, NH, L, P]
        var bm = xBC[1].view(b, l, NumGroups, StateSize).transpose(1, 2);                   // [B, G, L, N]
        var cm = xBC[2].view(b, l, NumGroups, StateSize).transpose(1, 2);
        var dt = nn.functional.softplus(dtRaw + dt_bias).transpose(1, 2);                  // [B, NH, L]
        if (_dtLimitMin > 0 || !double.IsPositiveInfinity(_dtLimitMax)) dt = dt.clamp(_dtLimitMin, _dtLimitMax);
        if (lengths is not null)
        {
            // Padded steps leave the state as it is (dt = 0: no decay, no input), so the final state is the one after each last valid step.
            dt = where(SequenceLengths.Mask(lengths, l).unsqueeze(1), dt, zeros(1, dtype: dt.dtype, device: dt.device));
        }
        var a = dt * (-A_log.exp()).unsqueeze(-1);                                        // dt A, the log decay
        var xdt = x * dt.unsqueeze(-1);

        var (y, h) = l == 1 && previous is not null && cuSeqlens is null
            ? SSD.Recurrent(xdt, a, bm, cm, previous.H)
            : SSD.Chunked(xdt, a, bm, cm, ChunkSize, previous?.H, cuSeqlens);

        var skip = D.shape[0] == NumHeads ? D.view(1, NumHeads, 1, 1) : D.view(1, NumHeads, 1, HeadDim);
        y = y + x * skip;
        y = y.transpose(1, 2).reshape(b, l, InnerDim);
        y = norm is null ? y * nn.functional.silu(z) : norm.forward(y, z);
        var output = out_proj.forward(y);
        return (output, returnState ? new Mamba2State(h, u.dtype, convState!) : null);
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state)
    {
        StreamingState.Expect<Mamba2State>(state, Describe())
            .Validate(NumHeads, HeadDim, StateSize, conv1d.KernelSize, conv1d.InFeatures, Describe());
    }

    private string Describe() =>
        $"Mamba2SequenceMixer(inFeatures: {InFeatures}, stateSize: {StateSize}, headDim: {HeadDim}, numHeads: {NumHeads}, numGroups: {NumGroups})";
}
