using Discretax.Kernels;
using Discretax.Layers;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// What the two mLSTM layers (<see cref="MLSTMSequenceMixer"/>, <see cref="MLSTMV1SequenceMixer"/>) share, as
/// xlstm-jax's <c>mLSTMCell</c>: the gate layers <c>igate</c>/<c>fgate</c> (computed in float32 at least, with the
/// optional soft cap), the head reshape, the kernel <see cref="MLSTMKernel.Chunked"/>, the multi-head
/// <c>outnorm</c>, the down-projection <c>proj_down</c>, the state, and xlstm-jax's inits.
/// </summary>
/// <remarks>
/// The cell is not a module: it creates <c>igate</c>, <c>fgate</c>, <c>outnorm</c> and <c>proj_down</c>, and the
/// layer holds them in its own fields and registers them, so their <c>state_dict</c> names stay at the layer level
/// (<c>igate.weight</c>, not <c>cell.igate.weight</c>, as NX-AI xlstm's <c>mlstm_cell.igate</c> lifted to the layer).
/// The cell reads them through its own references, the same objects. Its constructor draws from the global RNG in
/// the order of xlstm-jax's layer: it runs after the layer's own projections are made and drawn.
/// </remarks>
internal sealed class MLSTMCell
{
    /// <summary>Creates and initializes the gates, the norm and the down-projection.</summary>
    /// <param name="embeddingDim">The layer's input and output size E.</param>
    /// <param name="numHeads">The heads NH (checked to divide <paramref name="qkDim"/> and <paramref name="vDim"/>).</param>
    /// <param name="qkDim">The total query/key size Dqk.</param>
    /// <param name="vDim">The total value size Dv.</param>
    /// <param name="gateFeatures">The features the gates read.</param>
    /// <param name="bias">Whether <c>proj_down</c> has a bias.</param>
    /// <param name="normType">The multi-head norm.</param>
    /// <param name="normEps">Its eps.</param>
    /// <param name="gateSoftCap">The gate soft cap, or null.</param>
    /// <param name="chunkSize">The kernel's chunk length.</param>
    /// <param name="initDistribution">The distribution of <c>proj_down</c>'s weight.</param>
    /// <param name="outputInitFn">The init of <c>proj_down</c>.</param>
    /// <param name="numBlocks">The model's block count (Wang init).</param>
    /// <param name="stabilizerStart">The stabilizer <c>m_0</c> of a fresh sequence.</param>
    /// <param name="eps">The kernel's denominator constant.</param>
    public MLSTMCell(long embeddingDim, int numHeads, long qkDim, long vDim, long gateFeatures, bool bias,
        MLSTMNormType normType, double normEps, double? gateSoftCap, int chunkSize,
        MLSTMInitDistribution initDistribution, MLSTMOutputInit outputInitFn, int numBlocks,
        MLSTMStabilizerStart stabilizerStart = MLSTMStabilizerStart.Zero, double eps = 1e-6)
    {
        NumHeads = numHeads;
        QKDim = qkDim;
        VDim = vDim;
        NormType = normType;
        GateSoftCap = gateSoftCap;
        ChunkSize = chunkSize;
        StabilizerStart = stabilizerStart;
        Eps = eps;
        igate = nn.Linear(gateFeatures, numHeads, hasBias: true);
        fgate = nn.Linear(gateFeatures, numHeads, hasBias: true);
        outnorm = new MultiHeadNorm(numHeads, vDim / numHeads, useRms: normType == MLSTMNormType.RMSNorm, eps: normEps);
        proj_down = nn.Linear(vDim, embeddingDim, hasBias: bias);
        using (no_grad())
        {
            igate.weight!.zero_();
            igate.bias!.normal_(0.0, 0.1);
            fgate.weight!.zero_();
            fgate.bias!.copy_(linspace(3.0, 6.0, numHeads));
            DrawOutput(proj_down.weight!, embeddingDim, numBlocks, outputInitFn, initDistribution);
            proj_down.bias?.zero_();
        }
    }

    /// <summary>The input-gate layer: gate features -> NH pre-activations.</summary>
    public readonly Linear igate;

    /// <summary>The forget-gate layer: gate features -> NH pre-activations.</summary>
    public readonly Linear fgate;

    /// <summary>The multi-head norm of the cell output.</summary>
    public readonly MultiHeadNorm outnorm;

    /// <summary>The down-projection <c>Dv -> E</c>.</summary>
    public readonly Linear proj_down;

    /// <summary>The heads NH.</summary>
    public int NumHeads { get; }

    /// <summary>The total query/key size Dqk.</summary>
    public long QKDim { get; }

    /// <summary>The total value size Dv.</summary>
    public long VDim { get; }

    /// <summary>The multi-head norm type.</summary>
    public MLSTMNormType NormType { get; }

    /// <summary>The gate soft cap, or null.</summary>
    public double? GateSoftCap { get; }

    /// <summary>The kernel's chunk length.</summary>
    public int ChunkSize { get; }

    /// <summary>The stabilizer <c>m_0</c> of a fresh sequence.</summary>
    public MLSTMStabilizerStart StabilizerStart { get; }

    /// <summary>The kernel's denominator constant.</summary>
    public double Eps { get; }

    /// <summary>
    /// Checks the options both layers take, naming the caller's parameters (they have the same names there).
    /// </summary>
    public static void CheckOptions(int numHeads, int chunkSize, int numBlocks, double dropout, double qkDimFactor,
        double vDimFactor, double? gateSoftCap, double normEps, MLSTMNormType normType,
        MLSTMInitDistribution initDistribution, MLSTMOutputInit outputInitFn,
        MLSTMStabilizerStart stabilizerStart = MLSTMStabilizerStart.Zero)
    {
        Check.AtLeast(numHeads, 1);
        Check.AtLeast(chunkSize, 1);
        Check.AtLeast(numBlocks, 1);
        Check.DropRate(dropout);
        Check.PositiveFinite(qkDimFactor);
        Check.PositiveFinite(vDimFactor);
        if (gateSoftCap is double cap) Check.PositiveFinite(cap, nameof(gateSoftCap));
        Check.PositiveFinite(normEps);
        Check.Defined(normType);
        Check.Defined(initDistribution);
        Check.Defined(outputInitFn);
        Check.Defined(stabilizerStart);
    }

    /// <summary>Throws (<c>numHeads</c>) unless NH divides the query/key and value sizes.</summary>
    public static void CheckHeads(int numHeads, long qkDim, long vDim)
    {
        if (qkDim % numHeads != 0 || vDim % numHeads != 0)
            throw new ArgumentException($"Expected numHeads to divide the query/key size {qkDim} and the value size {vDim}; got numHeads = {numHeads}.", nameof(numHeads));
    }

    /// <summary>xlstm-jax's small init std <c>sqrt(2 / (5 E))</c>.</summary>
    public static double SmallStd(long embeddingDim) => Math.Sqrt(2.0 / (5.0 * embeddingDim));

    /// <summary>
    /// The standard deviation of xlstm-jax's <c>output_init_fn</c> for a layer of input size
    /// <paramref name="dim"/> in a model of <paramref name="numBlocks"/> blocks (0 for <see cref="MLSTMOutputInit.Zeros"/>).
    /// </summary>
    public static double OutputStd(MLSTMOutputInit fn, long dim, int numBlocks) => fn switch
    {
        MLSTMOutputInit.Wang => 2.0 / numBlocks / Math.Sqrt(dim),
        MLSTMOutputInit.Wang2 => 2.0 / (2.0 * numBlocks) / Math.Sqrt(dim),
        MLSTMOutputInit.Small => SmallStd(dim),
        _ => 0.0,
    };

    /// <summary>Draws an output projection's weight in place: <see cref="OutputStd"/> from
    /// <paramref name="distribution"/>, or zeros for <see cref="MLSTMOutputInit.Zeros"/>.</summary>
    public static void DrawOutput(Tensor w, long dim, int numBlocks, MLSTMOutputInit fn, MLSTMInitDistribution distribution)
    {
        if (fn == MLSTMOutputInit.Zeros) w.zero_();
        else Draw(w, OutputStd(fn, dim, numBlocks), distribution);
    }

    /// <summary>Draws <paramref name="w"/> in place from <paramref name="distribution"/> with std <paramref name="std"/>.</summary>
    public static void Draw(Tensor w, double std, MLSTMInitDistribution distribution)
    {
        switch (distribution)
        {
            case MLSTMInitDistribution.Normal:
                w.normal_(0.0, std);
                break;
            case MLSTMInitDistribution.TruncatedNormal:
                // xlstm-jax: jax.nn.initializers.truncated_normal(std), a standard normal truncated to [-2, 2] times std.
                using (var t = Initializers.TruncatedNormal(w.shape, std)) w.copy_(t);
                break;
            default:
                double bound = Math.Sqrt(3.0) * std;
                w.uniform_(-bound, bound);
                break;
        }
    }

    /// <summary>
    /// The cell on <c>[B, L, .]</c> features: gates from <paramref name="gateInput"/> in float32 at least
    /// (xlstm-jax's <c>gate_dtype</c>) and soft-capped, q/k/v split into NH heads, the kernel (continuing from
    /// <paramref name="previous"/>), and the multi-head norm. Returns <c>outnorm(h) [B, L, Dv]</c> and the kernel's state.
    /// </summary>
    public (Tensor H, MLSTMKernelState State) Forward(Tensor q, Tensor k, Tensor v, Tensor gateInput, MLSTMState? previous,
        Tensor? lengths = null, Tensor? cuSeqlens = null)
    {
        var gt = Precision.StateDType(q.dtype);
        var gw = gateInput.to(gt);
        var ig = nn.functional.linear(gw, igate.weight!.to(gt), igate.bias!.to(gt));
        var fg = nn.functional.linear(gw, fgate.weight!.to(gt), fgate.bias!.to(gt));
        return ForwardPreactivations(q, k, v, ig, fg, previous, lengths, cuSeqlens);
    }

    /// <summary>
    /// The cell from gate pre-activations already computed (<c>[B, L, NH]</c>, before the soft cap, in float32 at
    /// least): soft cap, q/k/v split into NH heads, the kernel (continuing from <paramref name="previous"/>, else from
    /// the fresh state of <see cref="StabilizerStart"/>), and the multi-head norm. Returns <c>outnorm(h) [B, L, Dv]</c>
    /// and the kernel's state.
    /// </summary>
    public (Tensor H, MLSTMKernelState State) ForwardPreactivations(Tensor q, Tensor k, Tensor v, Tensor inputPreact,
        Tensor forgetPreact, MLSTMState? previous, Tensor? lengths = null, Tensor? cuSeqlens = null)
    {
        long b = q.shape[0], l = q.shape[1], nh = NumHeads;
        var ig = SoftCap(inputPreact).transpose(1, 2);   // [B, NH, L]
        var fg = SoftCap(forgetPreact).transpose(1, 2);
        if (lengths is not null)
        {
            // Padded steps leave (C, n, m) as they are: input gate -inf, log forget gate 0 (pre-activation +inf).
            var valid = SequenceLengths.Mask(lengths, l).unsqueeze(1);                                          // [B, 1, L]
            ig = where(valid, ig, full(1, double.NegativeInfinity, dtype: ig.dtype, device: ig.device));
            fg = where(valid, fg, full(1, double.PositiveInfinity, dtype: fg.dtype, device: fg.device));
        }
        var qh = q.reshape(b, l, nh, QKDim / nh).transpose(1, 2);
        var kh = k.reshape(b, l, nh, QKDim / nh).transpose(1, 2);
        var vh = v.reshape(b, l, nh, VDim / nh).transpose(1, 2);
        MLSTMKernelState? start = previous is null
            ? FreshState(cuSeqlens is null ? b : cuSeqlens.shape[0] - 1, ig.dtype, q.device)
            : new MLSTMKernelState(previous.C, previous.N, previous.M);
        var (h, state) = MLSTMKernel.Chunked(qh, kh, vh, ig, fg, ChunkSize, start, Eps, cuSeqlens);
        return (outnorm.forward(h.transpose(1, 2)).reshape(b, l, VDim), state);
    }

    /// <summary>The state a fresh sequence starts from: null (the kernel's zeros) for <see cref="MLSTMStabilizerStart.Zero"/>,
    /// else <c>C = 0, n = 0, m = -inf</c> for <paramref name="count"/> sequences.</summary>
    private MLSTMKernelState? FreshState(long count, ScalarType dtype, Device device)
    {
        if (StabilizerStart == MLSTMStabilizerStart.Zero) return null;
        long nh = NumHeads, dk = QKDim / nh, dv = VDim / nh;
        return new MLSTMKernelState(zeros(new[] { count, nh, dk, dv }, dtype: dtype, device: device),
            zeros(new[] { count, nh, dk }, dtype: dtype, device: device),
            full(new[] { count, nh }, double.NegativeInfinity, dtype: dtype, device: device));
    }

    /// <summary>The layer's result: <paramref name="y"/> and, when <paramref name="returnState"/>, the new state.</summary>
    public static (Tensor Output, StreamingState? State) Result(Tensor y, MLSTMKernelState cell, bool returnState,
        ScalarType dtype, ShortConvolutionState? conv = null) =>
        returnState ? (y, new MLSTMState(cell.C, cell.N, cell.M, dtype, conv)) : (y, null);

    /// <summary>Checks that <paramref name="state"/> is an <see cref="MLSTMState"/> of this cell's sizes and, with
    /// <paramref name="conv"/>, of that convolution (without: a state with no convolution state).</summary>
    public void CheckState(StreamingState state, string module, ShortConvolution? conv = null) =>
        StreamingState.Expect<MLSTMState>(state, module).Validate(NumHeads, QKDim / NumHeads, VDim / NumHeads,
            conv?.KernelSize, conv?.InFeatures ?? 0, module);

    private Tensor SoftCap(Tensor a) => GateSoftCap is double cap ? cap * (a / cap).tanh() : a;
}
