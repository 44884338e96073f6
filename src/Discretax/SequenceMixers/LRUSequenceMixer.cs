using Discretax.Kernels;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long
/// Sequences", https://arxiv.org/abs/2303.06349), as discretax's <c>LRUSequenceMixer</c>: a diagonal complex
/// recurrence computed with <see cref="LinearScan.Scan"/>.
/// <code>
/// lambda = exp(-exp(nu_log) + i exp(theta_log))                     [N]
/// h_t    = lambda * h_{t-1} + (exp(gamma_log) * (B_re + i B_im)) x_t   [N]
/// y_t    = Re(C h_t) + D * x_t,   C = C_re + i C_im                  [H]
/// </code>
/// Initialization (the LRU paper's): <c>u1, u2 ~ U(0, 1)</c>,
/// <c>nu_log = log(-0.5 log(u1 (rMax^2 - rMin^2) + rMin^2))</c> (so |lambda| is uniform on the ring
/// [rMin, rMax] in area), <c>theta_log = log(maxPhase u2)</c>, <c>gamma_log = log sqrt(1 - |lambda|^2)</c>,
/// <c>B_re, B_im ~ N(0, 1) / sqrt(2H)</c>, <c>C_re, C_im ~ N(0, 1) / sqrt(N)</c>, <c>D ~ N(0, 1)</c>.
/// All parameters are real; lambda, B and C are built inside <c>forward</c>. The state h is complex64
/// (complex128 for a float64 mixer); streaming carries it as an <see cref="LRUState"/>.
/// </summary>
public sealed class LRUSequenceMixer : SequenceMixer
{
    /// <summary><c>[N]</c>: log of minus the log-modulus of lambda.</summary>
    public Parameter nu_log;

    /// <summary><c>[N]</c>: log of the phase of lambda.</summary>
    public Parameter theta_log;

    /// <summary><c>[N]</c>: log of the input normalization.</summary>
    public Parameter gamma_log;

    /// <summary><c>[N, H]</c>: real part of B.</summary>
    public Parameter B_re;

    /// <summary><c>[N, H]</c>: imaginary part of B.</summary>
    public Parameter B_im;

    /// <summary><c>[H, N]</c>: real part of C.</summary>
    public Parameter C_re;

    /// <summary><c>[H, N]</c>: imaginary part of C.</summary>
    public Parameter C_im;

    /// <summary><c>[H]</c>: the skip connection.</summary>
    public Parameter D;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    /// <param name="stateDim">The number of complex states N.</param>
    /// <param name="rMin">Smallest eigenvalue modulus at init, in [0, rMax).</param>
    /// <param name="rMax">Largest eigenvalue modulus at init, in (rMin, 1].</param>
    /// <param name="maxPhase">Largest eigenvalue phase at init, positive.</param>
    public LRUSequenceMixer(long inFeatures, long stateDim = 64, double rMin = 0.0, double rMax = 1.0, double maxPhase = 2 * Math.PI)
        : base(nameof(LRUSequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(stateDim, 1);
        Check.InRange(rMax, 0, 1);
        if (!(rMin >= 0 && rMin < rMax)) throw new ArgumentOutOfRangeException(nameof(rMin), rMin, $"Expected 0 <= rMin < rMax = {rMax}; got {rMin}.");
        if (!(maxPhase > 0)) throw new ArgumentOutOfRangeException(nameof(maxPhase), maxPhase, $"Expected a positive maxPhase; got {maxPhase}.");
        StateDim = stateDim;
        using (no_grad())
        {
            var u1 = rand(stateDim, dtype: ScalarType.Float64);
            var u2 = rand(stateDim, dtype: ScalarType.Float64);
            var nu = (-0.5 * (u1 * (rMax * rMax - rMin * rMin) + rMin * rMin).log()).log();
            var theta = (maxPhase * u2).log();
            var modulus = (-nu.exp()).exp();
            var gamma = (1 - modulus.square()).sqrt().log();
            nu_log = nn.Parameter(nu.to(ScalarType.Float32));
            theta_log = nn.Parameter(theta.to(ScalarType.Float32));
            gamma_log = nn.Parameter(gamma.to(ScalarType.Float32));
            B_re = nn.Parameter(randn(stateDim, inFeatures) / Math.Sqrt(2 * inFeatures));
            B_im = nn.Parameter(randn(stateDim, inFeatures) / Math.Sqrt(2 * inFeatures));
            C_re = nn.Parameter(randn(inFeatures, stateDim) / Math.Sqrt(stateDim));
            C_im = nn.Parameter(randn(inFeatures, stateDim) / Math.Sqrt(stateDim));
            D = nn.Parameter(randn(inFeatures));
        }
        RegisterComponents();
    }

    /// <summary>The number of complex states N.</summary>
    public long StateDim { get; }

    /// <summary>The eigenvalues <c>lambda [N]</c> (complex), built from the parameters.</summary>
    public Tensor Lambda()
    {
        using var scope = NewDisposeScope();
        return torch.polar((-nu_log.exp()).exp(), theta_log.exp()).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (LRUState?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the scan resets at every boundary (the kernel's <c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (LRUState?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, LRUState? state, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        var dtype = Precision.StateDType(x.dtype);
        var u = x.to(dtype);
        var g = gamma_log.to(dtype).exp().unsqueeze(1);
        var bu = ComplexProjection.ToComplex(u, B_re.to(dtype) * g, B_im.to(dtype) * g);          // [B, L, N]
        var lambda = torch.polar((-nu_log.to(dtype).exp()).exp(), theta_log.to(dtype).exp());
        var (h, last) = LinearScan.Scan(lambda, bu, state?.H, cuSeqlens);
        var y = ComplexProjection.RealPart(h, C_re.to(dtype), C_im.to(dtype)) + u * D.to(dtype);  // Re(C h) + D x
        if (!returnState) return (y.to(x.dtype), null);
        return (y.to(x.dtype), new LRUState(lengths is null ? last : SequenceLengths.AtLast(h, lengths), x.dtype));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        StreamingState.Expect<LRUState>(state, Describe()).Validate(new[] { state.BatchSize, StateDim }, "[B, N]", Describe());

    private string Describe() => $"LRUSequenceMixer(inFeatures: {InFeatures}, stateDim: {StateDim})";
}
