using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// Depthwise causal 1-D convolution over time, as used on the q, k, v projections of DeltaNet and the
/// mLSTM layer (fla's <c>ShortConvolution</c>): for each channel c,
/// <c>y[t, c] = act(bias[c] + sum_{j=0}^{K-1} weight[c, 0, j] * x[t - (K-1) + j, c])</c>, with x = 0 before the
/// sequence starts and act = SiLU or the identity. Streaming carries the last K-1 inputs.
/// </summary>
public sealed class ShortConvolution : SequenceModule
{
    /// <summary>The depthwise kernel <c>[channels, 1, kernelSize]</c> (PyTorch's Conv1d layout).</summary>
    public Parameter weight;

    /// <summary>The per-channel bias <c>[channels]</c>, when <c>useBias</c>.</summary>
    public Parameter? bias;

    /// <summary>Creates the convolution.</summary>
    /// <param name="channels">The number of channels H (one filter each).</param>
    /// <param name="kernelSize">The kernel size K (at least 1).</param>
    /// <param name="useSilu">Whether to apply SiLU to the output (fla's default).</param>
    /// <param name="useBias">Whether to add a per-channel bias.</param>
    public ShortConvolution(long channels, int kernelSize = 4, bool useSilu = true, bool useBias = false)
        : base(nameof(ShortConvolution), Check.Dim(channels))
    {
        Check.AtLeast(kernelSize, 1);
        KernelSize = kernelSize;
        UseSilu = useSilu;
        // PyTorch Conv1d's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = kernelSize per group.
        double bound = 1.0 / Math.Sqrt(kernelSize);
        weight = nn.Parameter(empty(channels, 1, kernelSize).uniform_(-bound, bound));
        if (useBias) bias = nn.Parameter(empty(channels).uniform_(-bound, bound));
        RegisterComponents();
    }

    /// <summary>The kernel size K.</summary>
    public int KernelSize { get; }

    /// <summary>Whether SiLU is applied to the output.</summary>
    public bool UseSilu { get; }

    /// <summary>
    /// Runs the convolution as the child of a mixer (DeltaNet, Gated DeltaNet, Mamba2): packed sequences when
    /// <paramref name="cuSeqlens"/> is given, else the padded batch with <paramref name="lengths"/>, continuing from
    /// <paramref name="state"/>; returns the state only when asked (or when continuing).
    /// </summary>
    internal (Tensor Output, ShortConvolutionState? State) Apply(Tensor x, ShortConvolutionState? state, bool returnState,
        Tensor? lengths, Tensor? cuSeqlens)
    {
        if (cuSeqlens is not null)
        {
            var (yp, sp) = RunChildPacked(this, x, cuSeqlens, state, returnState);
            return (yp, (ShortConvolutionState?)sp);
        }
        if (!returnState && state is null) return (forward(x, lengths), null);
        var (y, next) = Stream(x, state, lengths);
        return (y, (ShortConvolutionState)next);
    }

    /// <inheritdoc />
    /// <remarks>The state is a <see cref="ShortConvolutionState"/>: the last K-1 inputs (zeros before the start).</remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        var cache = ((ShortConvolutionState?)state)?.Cache;
        var full = cache is null
            ? nn.functional.pad(x, new long[] { 0, 0, KernelSize - 1, 0 })
            : cat(new[] { cache, x }, 1);
        var y = Convolve(full);
        if (!returnState) return (y, null);
        // The last K-1 inputs of each sequence: full[b, len_b .. len_b + K - 2] (full = K - 1 cached steps, then x).
        var next = lengths is null
            ? full.narrow(1, full.shape[1] - (KernelSize - 1), KernelSize - 1).clone()
            : full.gather(1, (lengths.unsqueeze(1) + arange(KernelSize - 1, dtype: ScalarType.Int64, device: x.device).unsqueeze(0))
                .unsqueeze(-1).expand(x.shape[0], KernelSize - 1, InFeatures));
        return (y, new ShortConvolutionState(next, x.dtype));
    }

    /// <inheritdoc />
    /// <remarks>
    /// Native for fresh sequences: <c>y[t] = act(bias + sum_j weight[:, j] x[t - (K-1) + j])</c> with the taps before
    /// the start of t's sequence left out (zero), so no tap crosses a boundary; the returned caches are each sequence's
    /// last K-1 inputs (zeros before its start). Continuing from a state runs the padded path.
    /// </remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        if (state is not null) return null;
        long total = x.shape[1], n = cuSeqlens.shape[0] - 1;
        var starts = cuSeqlens.narrow(0, 0, n);
        var lengths = cuSeqlens.narrow(0, 1, n) - starts;
        var position = arange(total, dtype: ScalarType.Int64, device: x.device) - starts.repeat_interleave(lengths);   // step within its sequence
        var w = weight.to(x.dtype);
        Tensor y = bias is null ? zeros_like(x) : bias.to(x.dtype).expand_as(x);
        var zero = zeros(1, dtype: x.dtype, device: x.device);
        for (int d = 0; d < KernelSize; d++)
        {
            var shifted = d == 0 ? x : nn.functional.pad(x, new long[] { 0, 0, d, 0 }).narrow(1, 0, total);
            var tap = w.select(1, 0).select(1, KernelSize - 1 - d);                                                   // [H]
            y = y + where((position >= d).view(1, total, 1), shifted, zero) * tap;
        }
        if (UseSilu) y = nn.functional.silu(y);
        if (!returnState) return (y, null);
        var ends = cuSeqlens.narrow(0, 1, n);
        var index = ends.unsqueeze(1) - (KernelSize - 1) + arange(KernelSize - 1, dtype: ScalarType.Int64, device: x.device).unsqueeze(0); // [N, K-1]
        var inside = index >= starts.unsqueeze(1);
        var cache = x[0].index_select(0, index.clamp_min(0).reshape(-1)).view(n, KernelSize - 1, InFeatures);
        cache = where(inside.unsqueeze(-1), cache, zero);
        return (y, new ShortConvolutionState(cache, x.dtype));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        StreamingState.Expect<ShortConvolutionState>(state, Describe()).Validate(KernelSize, InFeatures, Describe());

    private string Describe() => $"ShortConvolution(channels: {InFeatures}, kernelSize: {KernelSize})";

    // [B, L + K - 1, H] -> [B, L, H]: a depthwise convolution with no padding.
    private Tensor Convolve(Tensor padded)
    {
        var w = weight.to(padded.dtype);
        var y = nn.functional.conv1d(padded.transpose(1, 2), w, bias?.to(padded.dtype), groups: InFeatures).transpose(1, 2);
        if (UseSilu) y = nn.functional.silu(y);
        return y.contiguous();
    }
}
