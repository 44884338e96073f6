using Discretax.Kernels;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The S4D sequence mixer (Gu, Gupta, Goel, Ré, "On the Parameterization and Initialization of Diagonal State
/// Space Models", NeurIPS 2022, https://arxiv.org/abs/2206.11893): H independent diagonal state-space systems,
/// one per channel, each with N/2 complex conjugate-pair modes, applied as one long causal convolution through
/// the FFT. Reference designs: linax's <c>S4DSequenceMixer</c> (defaults, no D, C ~ N(0, 1) per part) and the
/// minimal S4D of the state-spaces project (https://github.com/state-spaces/s4, <c>models/s4/s4d.py</c>: parameter
/// layout, D skip and output stage).
/// </summary>
/// <remarks>
/// <para>Per channel h (dropped below), with real parameters built into complex numbers inside the forward pass:</para>
/// <code>
/// A_n = -exp(log_A_real_n) + i A_imag_n,   C_n = C[n, 0] + i C[n, 1],   dt = exp(log_dt)
/// x_t = dA x_{t-1} + dB u_t,   y_t = 2 Re sum_n C_n x_{t,n}  (+ D u_t when useD),   x_{-1} = 0
/// ZOH:      dA = exp(dt A),                    dB = (exp(dt A) - 1) / A
/// bilinear: dA = (1 + dt A/2) / (1 - dt A/2),  dB = dt / (1 - dt A/2)
/// </code>
/// <para>
/// <b>Forward</b> (whole sequences): the recurrence unrolls into the causal convolution <c>y = K * u</c> with
/// <c>K_l = 2 Re sum_n C_n dB_n dA_n^l</c> (<see cref="SsmKernels.S4DKernel"/>, <c>[H, L]</c>), applied by
/// <see cref="FftConvolution.Causal"/> in <c>O(B H L log L)</c>.
/// </para>
/// <para>
/// <b>Streaming</b>: the state is the complex diagonal state <c>x [B, H, N/2]</c> after the last step
/// (complex128 for float64 inputs or parameters, complex64 otherwise, also for bf16/fp16 inputs); a piece runs
/// the recurrence above with <see cref="LinearScan.Scan"/> (in time chunks of at most <see cref="StreamChunkLength"/>
/// steps, so the <c>[B, chunk, H, N/2]</c> intermediates stay bounded), which gives the FFT forward's outputs up to
/// floating-point rounding. Gradients flow through both forms to every parameter.
/// </para>
/// <para>
/// <b>Output stage</b> (<c>useOutputLinear</c>, state-spaces' <c>activation</c> + <c>output_linear</c>):
/// <c>y = GLU(Conv1d_{H -> 2H, kernel 1}(GELU(y)))</c>, where GLU splits the 2H channels into value (first H) and
/// gate (last H): <c>value * sigmoid(gate)</c>. Without it the mixer returns y itself (as linax; the
/// <see cref="Blocks.StandardBlock"/> applies GELU after the mixer). State-spaces' dropout inside the layer is not
/// reproduced: the block has its own.
/// </para>
/// <para>
/// <b>Parameters</b> (<c>state_dict</c> names; N = <c>stateDim</c>): <c>log_dt [H]</c>, <c>log_A_real [H, N/2]</c>,
/// <c>A_imag [H, N/2]</c>, <c>C [H, N/2, 2]</c> (real and imaginary parts in the last dimension: the
/// <c>view_as_real</c> layout of the state-spaces minimal S4D, whose <c>kernel.C</c> it equals), <c>D [H]</c> when
/// <c>useD</c>, and <c>output_linear.0.weight [2H, H, 1]</c>, <c>output_linear.0.bias [2H]</c> when
/// <c>useOutputLinear</c>. A state-spaces checkpoint maps onto these names by dropping its <c>kernel.</c> prefix.
/// Init: <c>log_dt ~ U(log dtMin, log dtMax)</c> per channel; A by <see cref="S4DInit"/>; <c>C[..., 0], C[..., 1] ~ N(0, 1)</c>;
/// <c>D ~ N(0, 1)</c>; the 1x1 convolution as PyTorch's Conv1d default.
/// </para>
/// <para>
/// <b>Layout</b>: batch-first <c>[B, L, H]</c> (or unbatched <c>[L, H]</c>); with <c>transposed = true</c> the mixer
/// takes and returns channels-first <c>[B, H, L]</c> (or unbatched <c>[H, L]</c>), for <see cref="SequenceModule.forward(Tensor)"/>
/// and for <see cref="SequenceModule.Stream(Tensor, StreamingState?)"/> alike: streamed pieces of a transposed mixer are <c>[B, H, Lpiece]</c>.
/// </para>
/// </remarks>
public sealed class S4DSequenceMixer : SequenceMixer
{
    /// <summary>The longest time chunk a streamed piece is scanned in at once (bounds the intermediates' memory).</summary>
    public const long StreamChunkLength = 256;

    /// <summary>Per-channel log step sizes <c>[H]</c>.</summary>
    public Parameter log_dt;

    /// <summary>Logs of the negated real parts of A, <c>[H, N/2]</c>: <c>Re A = -exp(log_A_real)</c>.</summary>
    public Parameter log_A_real;

    /// <summary>Imaginary parts of A, <c>[H, N/2]</c>.</summary>
    public Parameter A_imag;

    /// <summary>The output matrix C as real and imaginary parts, <c>[H, N/2, 2]</c>.</summary>
    public Parameter C;

    /// <summary>The skip weights <c>[H]</c> (<c>y += D u</c>), when <c>useD</c>; otherwise null.</summary>
    public Parameter? D;

    /// <summary>The output stage's 1x1 convolution <c>H -> 2H</c> (<c>"0"</c>) and GLU over channels (<c>"1"</c>), when <c>useOutputLinear</c>; otherwise null.</summary>
    public Sequential? output_linear;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The number of channels H, at least 1.</param>
    /// <param name="stateDim">The real state size N per channel (even, at least 2): N/2 complex conjugate-pair modes.</param>
    /// <param name="transposed">Whether inputs and outputs are channels-first <c>[B, H, L]</c> instead of <c>[B, L, H]</c>.</param>
    /// <param name="dtMin">The smallest initial step size (positive).</param>
    /// <param name="dtMax">The largest initial step size (at least <paramref name="dtMin"/>).</param>
    /// <param name="init">The initialization of A: S4D-Lin (default) or S4D-Inv.</param>
    /// <param name="discretization">Zero-order hold (default) or bilinear.</param>
    /// <param name="useD">Whether to add the skip connection <c>D u</c> (state-spaces: yes; linax: no, the default).</param>
    /// <param name="useOutputLinear">Whether to apply state-spaces' output stage GELU, 1x1 convolution to 2H, GLU.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size, step bound or option is out of range.</exception>
    public S4DSequenceMixer(long inFeatures, long stateDim = 64, bool transposed = false, double dtMin = 0.001, double dtMax = 0.1,
        S4DInit init = S4DInit.Lin, Discretization discretization = Discretization.Zoh, bool useD = false, bool useOutputLinear = false)
        : base(nameof(S4DSequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(stateDim, 2);
        if (stateDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(stateDim), stateDim, $"Expected an even state size N (N/2 conjugate pairs); got {stateDim}.");
        if (!(dtMin > 0 && double.IsFinite(dtMin)))
            throw new ArgumentOutOfRangeException(nameof(dtMin), dtMin, $"Expected a positive finite dtMin; got {dtMin}.");
        if (!(dtMax >= dtMin && double.IsFinite(dtMax)))
            throw new ArgumentOutOfRangeException(nameof(dtMax), dtMax, $"Expected a finite dtMax of at least dtMin = {dtMin}; got {dtMax}.");
        if (init is not (S4DInit.Lin or S4DInit.Inv))
            throw new ArgumentOutOfRangeException(nameof(init), init, "Expected S4DInit.Lin or S4DInit.Inv.");
        if (discretization is not (Discretization.Zoh or Discretization.Bilinear))
            throw new ArgumentOutOfRangeException(nameof(discretization), discretization, "Expected Discretization.Zoh or Discretization.Bilinear.");

        StateDim = stateDim;
        Transposed = transposed;
        DtMin = dtMin;
        DtMax = dtMax;
        Init = init;
        Discretization = discretization;
        long modes = stateDim / 2;

        using (no_grad())
        {
            var (logAReal, aImag) = init == S4DInit.Lin
                ? SsmKernels.S4DLinInit(inFeatures, stateDim)
                : SsmKernels.S4DInvInit(inFeatures, stateDim);
            log_A_real = nn.Parameter(logAReal);
            A_imag = nn.Parameter(aImag);
            log_dt = nn.Parameter(empty(inFeatures).uniform_(Math.Log(dtMin), Math.Log(dtMax)));
            C = nn.Parameter(randn(inFeatures, modes, 2));
            if (useD) D = nn.Parameter(randn(inFeatures));
        }
        if (useOutputLinear)
            output_linear = nn.Sequential(("0", nn.Conv1d(inFeatures, 2 * inFeatures, 1)), ("1", nn.GLU(dim: -2)));
        RegisterComponents();
    }

    /// <summary>The real state size N (the mixer keeps N/2 complex modes per channel).</summary>
    public long StateDim { get; }

    /// <summary>Whether inputs and outputs are channels-first <c>[B, H, L]</c>.</summary>
    public bool Transposed { get; }

    /// <summary>The smallest initial step size.</summary>
    public double DtMin { get; }

    /// <summary>The largest initial step size.</summary>
    public double DtMax { get; }

    /// <summary>The initialization of A.</summary>
    public S4DInit Init { get; }

    /// <summary>The discretization of the continuous system.</summary>
    public Discretization Discretization { get; }

    /// <summary>Whether the skip connection <c>D u</c> is added.</summary>
    public bool UseD => D is not null;

    /// <summary>Whether the output stage (GELU, 1x1 convolution to 2H, GLU) is applied.</summary>
    public bool UseOutputLinear => output_linear is not null;

    /// <summary>
    /// The convolution kernel <c>K [H, length]</c> of the current parameters (the impulse response of the
    /// discretized system, without D), in the parameters' dtype.
    /// </summary>
    /// <param name="length">The kernel length, at least 1.</param>
    public Tensor Kernel(long length)
    {
        Check.AtLeast(length, 1);
        using var scope = NewDisposeScope();
        var k = SsmKernels.S4DKernel(log_dt, -log_A_real.exp(), A_imag, C.select(-1, 0), C.select(-1, 1), length, Discretization);
        return k.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    /// <remarks>
    /// Untransposed: <c>[B, L, H]</c> or <c>[L, H]</c>. Transposed: <c>[B, H, L]</c> or <c>[H, L]</c>; the batched
    /// tensor handed on keeps that layout.
    /// </remarks>
    protected override (Tensor Batched, bool Unbatched) PrepareInput(Tensor x, string paramName)
    {
        if (!Transposed) return base.PrepareInput(x, paramName);
        ArgumentNullException.ThrowIfNull(x, paramName);
        if (x.dim() != 2 && x.dim() != 3)
            throw new ArgumentException($"Expected a channels-first sequence [B, {InFeatures}, L] or an unbatched [{InFeatures}, L] (transposed mixer); got shape {Check.Shape(x)}.", paramName);
        Check.RealFloating(x, paramName);
        if (x.shape[^2] != InFeatures)
            throw new ArgumentException($"Expected {InFeatures} channels in the second-to-last dimension (transposed mixer, [B, H, L]); got shape {Check.Shape(x)}.", paramName);
        if (x.shape[^1] < 1)
            throw new ArgumentException($"Expected a sequence of length at least 1 in the last dimension (transposed mixer, [B, H, L]); got shape {Check.Shape(x)}.", paramName);
        bool unbatched = x.dim() == 2;
        if (!unbatched && x.shape[0] < 1)
            throw new ArgumentException($"Expected a batch of at least 1 sequence; got shape {Check.Shape(x)}.", paramName);
        return (unbatched ? x.unsqueeze(0) : x, unbatched);
    }

    /// <inheritdoc />
    /// <remarks>
    /// A forward (no state in, none out) runs the FFT convolution; streaming runs the recurrence and returns an
    /// <see cref="S4DState"/>: the complex diagonal state <c>x [B, H, N/2]</c> after the piece's last step.
    /// </remarks>
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths)
    {
        if (state is null && !returnState)
        {
            var uf = Transposed ? x.transpose(1, 2) : x;                         // [B, L, H]
            return (Finish(uf, FftConvolution.Causal(uf, Kernel(uf.shape[1]))), null);
        }
        return Recur(x, (S4DState?)state, lengths);
    }

    /// <inheritdoc />
    protected override int TimeDim => Transposed ? 2 : 1;

    /// <inheritdoc />
    /// <remarks>Native for a forward of fresh sequences: the FFT convolution per sequence (<c>cuSeqlens</c>; no kernel
    /// tap crosses a boundary). Streaming runs the padded path.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState)
    {
        if (state is not null || returnState) return null;
        var u = Transposed ? x.transpose(1, 2) : x;                              // [1, T, H]
        return (Finish(u, FftConvolution.Causal(u, Kernel(u.shape[1]), cuSeqlens)), null);
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        StreamingState.Expect<S4DState>(state, Describe()).Validate(new[] { state.BatchSize, InFeatures, StateDim / 2 }, "[B, H, N/2]", Describe());

    private string Describe() => $"S4DSequenceMixer(inFeatures: {InFeatures}, stateDim: {StateDim})";

    private (Tensor Output, StreamingState State) Recur(Tensor x, S4DState? state, Tensor? lengths)
    {
        var u = Transposed ? x.transpose(1, 2) : x;                          // [B, L, H]
        long batch = u.shape[0], length = u.shape[1], channels = InFeatures, modes = StateDim / 2;
        var real = Precision.StateDType(u.dtype);
        var cplx = Precision.ComplexStateDType(u.dtype);

        var (dA, dB) = SsmKernels.Discretize(log_dt, -log_A_real.exp(), A_imag, Discretization);
        dA = dA.to_type(cplx);
        dB = dB.to_type(cplx);
        var c = complex(C.select(-1, 0).to_type(real), C.select(-1, 1).to_type(real)) * 2.0;  // 2 C, [H, N/2]
        var a = dA.reshape(channels * modes);                                  // [H N/2]
        var uc = u.to_type(real);

        Tensor? h = state?.X.to_type(cplx).reshape(batch, channels * modes);

        var outputs = new List<Tensor>();
        Tensor? final = null;                                                   // per sequence: the state at its last valid step
        var lastStep = lengths is null ? null : (lengths - 1).view(batch, 1);
        for (long start = 0; start < length; start += StreamChunkLength)
        {
            long size = Math.Min(StreamChunkLength, length - start);
            var piece = uc.narrow(1, start, size);                                   // [B, Lc, H]
            var b = (piece.unsqueeze(-1) * dB).reshape(batch, size, channels * modes); // [B, Lc, H N/2]
            var states = LinearScan.Scan(a, b, h).Output.view(batch, size, channels, modes);
            outputs.Add((states * c).sum(-1).real);                                 // [B, Lc, H]
            h = states.select(1, size - 1).reshape(batch, channels * modes);
            if (lastStep is not null)
            {
                var inChunk = (lastStep >= start).logical_and(lastStep < start + size);                 // [B, 1]
                var index = (lastStep - start).clamp(0, size - 1).view(batch, 1, 1, 1).expand(batch, 1, channels, modes);
                var picked = states.gather(1, index).reshape(batch, channels * modes);
                final = final is null ? where(inChunk, picked, zeros_like(picked)) : where(inChunk, picked, final);
            }
        }
        if (final is not null) h = final;
        var y = (outputs.Count == 1 ? outputs[0] : cat(outputs, 1)).to_type(u.dtype);
        var next = h!.reshape(batch, channels, modes).clone();
        var output = Finish(u, y);
        return (output, new S4DState(next, x.dtype));
    }

    // y [B, L, H] (u's dtype) -> + D u, output stage, back to the mixer's layout.
    private Tensor Finish(Tensor u, Tensor y)
    {
        if (D is not null) y = y + u * D.to_type(y.dtype);
        if (output_linear is not null)
        {
            // output_linear (a 1x1 Conv1d to 2H, then GLU over channels) applied as the same linear map over the
            // features of [B, L, H]: one GEMM, no transposes.
            var conv = (Conv1d)output_linear.children().First();
            var z = nn.functional.gelu(y).to_type(conv.weight!.dtype);                            // [B, L, H]
            var zz = nn.functional.linear(z, conv.weight!.squeeze(-1), conv.bias);              // [B, L, 2H]
            y = nn.functional.glu(zz, dim: -1).to_type(u.dtype);                                // [B, L, H]
        }
        return Transposed ? y.transpose(1, 2).contiguous() : y.contiguous();
    }
}
