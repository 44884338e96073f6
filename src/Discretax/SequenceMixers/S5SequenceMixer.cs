using Discretax.Kernels;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The S5 layer (Smith, Warrington, Linderman 2023, "Simplified State Space Layers for Sequence Modeling",
/// https://arxiv.org/abs/2208.04933), as discretax's <c>S5SequenceMixer</c> (a port of lindermanlab/S5's
/// <c>S5SSM</c>): one multi-input, multi-output diagonal state-space system over all H features, discretized per
/// state and computed with <see cref="LinearScan.Scan"/>.
/// <code>
/// Lambda = min(Lambda_re, -1e-4 if clipEigs) + i Lambda_im                          [P] continuous eigenvalues
/// B~ = B[..., 0] + i B[..., 1]  [P, H],   C~ = C[..., 0] + i C[..., 1]  [H, P]
/// Delta = stepRescale * exp(log_step[:, 0])                                         [P] step sizes
/// ZOH:      Lambda_bar = exp(Lambda Delta),                 B_bar = (Lambda_bar - 1) / Lambda * B~
/// bilinear: Lambda_bar = (1 + Delta/2 Lambda)/(1 - Delta/2 Lambda),   B_bar = Delta/(1 - Delta/2 Lambda) * B~
/// x_t = Lambda_bar * x_{t-1} + B_bar u_t                                            [P] complex state
/// y_t = 2 Re(C~ x_t) + D * u_t     (conjSym; without it, Re(C~ x_t) + D * u_t)      [H]
/// </code>
/// <para>
/// Initialization (lindermanlab/S5 <c>ssm_init.py</c>): with block size <c>N_b = stateDim / ssmBlocks</c>, the
/// HiPPO-LegS matrix of size N_b in normal-plus-low-rank form is diagonalized, <c>A + P P^T = V diag(Lambda) V^*</c>
/// (<see cref="HiPPO.LegSDplr"/>, float64). With <c>conjSym</c> only the first half of the eigenvalues (eigh's
/// ascending order: negative imaginary parts) and eigenvectors are kept, since the other half are their conjugates
/// and contribute the complex conjugate of the kept half's output, whence the factor 2 Re. The same block is
/// repeated on the diagonal <c>ssmBlocks</c> times: <c>P = stateDim / 2</c> (conjSym) or <c>stateDim</c> complex
/// states. <c>Lambda_re = -1/2</c>, <c>Lambda_im</c> the eigenvalues' imaginary parts. <c>B~ = V^{-1} B</c> with
/// <c>V^{-1}</c> the block-diagonal of the kept <c>V^*</c> and a real <c>B [stateDim, H]</c> drawn by JAX's
/// <c>lecun_normal</c> (truncated normal, standard deviation <c>1/sqrt(stateDim)</c>); <c>C~</c> per <see cref="S5CInit"/>;
/// <c>D ~ N(0, 1)</c>; <c>log_step ~ U(log dtMin, log dtMax)</c> per state.
/// </para>
/// <para>
/// All parameters are real (names and shapes as the reference's <c>state_dict</c>): <c>Lambda_re, Lambda_im [P]</c>,
/// <c>B [P, H, 2]</c>, <c>C [H, P, 2]</c>, <c>D [H]</c>, <c>log_step [P, 1]</c>. The state is complex64 (complex128
/// for float64 inputs; bf16/fp16 inputs are computed in float32); streaming carries it as <c>"x" [B, P]</c>.
/// </para>
/// </summary>
public sealed class S5SequenceMixer : SequenceMixer
{
    /// <summary>The bound that <c>clipEigs</c> keeps the real parts of the eigenvalues below.</summary>
    public const double MaxEigenvalueRealPart = -1e-4;

    /// <summary><c>[P]</c>: real parts of the continuous eigenvalues.</summary>
    public Parameter Lambda_re;

    /// <summary><c>[P]</c>: imaginary parts of the continuous eigenvalues.</summary>
    public Parameter Lambda_im;

    /// <summary><c>[P, H, 2]</c>: <c>B~ = V^{-1} B</c> as (real, imaginary) pairs.</summary>
    public Parameter B;

    /// <summary><c>[H, P, 2]</c>: <c>C~ = C V</c> as (real, imaginary) pairs.</summary>
    public Parameter C;

    /// <summary><c>[H]</c>: the feedthrough.</summary>
    public Parameter D;

    /// <summary><c>[P, 1]</c>: log of the per-state step sizes (before <c>stepRescale</c>).</summary>
    public Parameter log_step;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    /// <param name="stateDim">The state size N of the (conjugate-complete) system; a multiple of <paramref name="ssmBlocks"/>,
    /// and with <paramref name="conjSym"/> of <c>2 ssmBlocks</c>.</param>
    /// <param name="ssmBlocks">The number of HiPPO blocks on the diagonal of the initial state matrix.</param>
    /// <param name="cInit">How C is initialized.</param>
    /// <param name="conjSym">Keep one eigenvalue of each conjugate pair (P = N/2) and take 2 Re of the output.</param>
    /// <param name="clipEigs">Clip the eigenvalues' real parts to at most <see cref="MaxEigenvalueRealPart"/> in forward.</param>
    /// <param name="discretization">Zero-order hold (default) or bilinear.</param>
    /// <param name="dtMin">Smallest initial step size, positive.</param>
    /// <param name="dtMax">Largest initial step size, at least <paramref name="dtMin"/>.</param>
    /// <param name="stepRescale">A positive factor on every step size (e.g. for another sampling rate at test time).</param>
    public S5SequenceMixer(long inFeatures, long stateDim = 64, int ssmBlocks = 1, S5CInit cInit = S5CInit.LecunNormal,
        bool conjSym = true, bool clipEigs = true, Discretization discretization = Discretization.Zoh,
        double dtMin = 0.001, double dtMax = 1.0, double stepRescale = 1.0)
        : base(nameof(S5SequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(stateDim, 1);
        Check.AtLeast(ssmBlocks, 1);
        if (stateDim % ssmBlocks != 0)
            throw new ArgumentOutOfRangeException(nameof(stateDim), stateDim, $"Expected stateDim divisible by ssmBlocks = {ssmBlocks}; got {stateDim}.");
        long blockSize = stateDim / ssmBlocks;
        if (conjSym && blockSize % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(stateDim), stateDim,
                $"With conjSym, expected an even block size stateDim / ssmBlocks (conjugate pairs); got {stateDim} / {ssmBlocks} = {blockSize}.");
        if (!Enum.IsDefined(cInit)) throw new ArgumentOutOfRangeException(nameof(cInit), cInit, $"Expected one of {string.Join(", ", Enum.GetNames<S5CInit>())}; got {cInit}.");
        if (!Enum.IsDefined(discretization))
            throw new ArgumentOutOfRangeException(nameof(discretization), discretization, $"Expected one of {string.Join(", ", Enum.GetNames<Discretization>())}; got {discretization}.");
        if (!(dtMin > 0 && double.IsFinite(dtMin))) throw new ArgumentOutOfRangeException(nameof(dtMin), dtMin, $"Expected a positive finite dtMin; got {dtMin}.");
        if (!(dtMax >= dtMin && double.IsFinite(dtMax))) throw new ArgumentOutOfRangeException(nameof(dtMax), dtMax, $"Expected a finite dtMax >= dtMin = {dtMin}; got {dtMax}.");
        if (!(stepRescale > 0 && double.IsFinite(stepRescale)))
            throw new ArgumentOutOfRangeException(nameof(stepRescale), stepRescale, $"Expected a positive finite stepRescale; got {stepRescale}.");

        StateDim = stateDim;
        SsmBlocks = ssmBlocks;
        CInit = cInit;
        ConjSym = conjSym;
        ClipEigs = clipEigs;
        Discretization = discretization;
        StepRescale = stepRescale;
        long kept = conjSym ? blockSize / 2 : blockSize;
        StateSize = kept * ssmBlocks;
        long h = inFeatures, p = StateSize;

        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var (lambdaBlock, _, _, vBlock, _) = HiPPO.LegSDplr(blockSize);
            var lambda = lambdaBlock.narrow(0, 0, kept).repeat(ssmBlocks);                     // [P]
            var v = vBlock.narrow(1, 0, kept);                                                  // [N_b, kept]
            var vInv = v.conj().t().resolve_conj();                                             // [kept, N_b]

            // B~ = blockdiag(V^*) B, B real [N, H] ~ lecun_normal (fan-in N), applied block by block.
            var bReal = Initializers.TruncatedNormalWithStd(new[] { stateDim, h }, 1.0 / Math.Sqrt(stateDim));
            var bTilde = vInv.matmul(bReal.view(ssmBlocks, blockSize, h).to(ScalarType.ComplexFloat64)).reshape(p, h);

            Tensor cTilde;
            if (cInit == S5CInit.ComplexNormal)
            {
                cTilde = complex(randn(h, p, dtype: ScalarType.Float64), randn(h, p, dtype: ScalarType.Float64)) * Math.Sqrt(0.5);
            }
            else
            {
                double std = cInit == S5CInit.LecunNormal ? 1.0 / Math.Sqrt(stateDim * (double)h) : 1.0 / Math.Sqrt(stateDim);
                var c = Initializers.TruncatedNormalWithStd(new[] { h, stateDim, 2 }, std);
                var cc = complex(c.select(2, 0), c.select(2, 1)).view(h, ssmBlocks, blockSize);        // [H, blocks, N_b]
                cTilde = cc.matmul(v).reshape(h, p);                                                     // C blockdiag(V)
            }

            var logStep = rand(p, 1, dtype: ScalarType.Float64) * (Math.Log(dtMax) - Math.Log(dtMin)) + Math.Log(dtMin);

            Lambda_re = nn.Parameter(lambda.real.to(ScalarType.Float32));
            Lambda_im = nn.Parameter(lambda.imag.to(ScalarType.Float32));
            B = nn.Parameter(stack(new[] { bTilde.real, bTilde.imag }, -1).to(ScalarType.Float32));
            C = nn.Parameter(stack(new[] { cTilde.real, cTilde.imag }, -1).to(ScalarType.Float32));
            D = nn.Parameter(randn(h));
            log_step = nn.Parameter(logStep.to(ScalarType.Float32));
            foreach (var t in new[] { Lambda_re, Lambda_im, B, C, D, log_step }) t.MoveToOuterDisposeScope();
        }
        RegisterComponents();
    }

    /// <summary>The state size N of the conjugate-complete system (the <c>stateDim</c> option).</summary>
    public long StateDim { get; }

    /// <summary>The number of complex states P the layer carries: <c>StateDim / 2</c> with conjugate symmetry, else <c>StateDim</c>.</summary>
    public long StateSize { get; }

    /// <summary>The number of HiPPO blocks of the initialization.</summary>
    public int SsmBlocks { get; }

    /// <summary>How C was initialized.</summary>
    public S5CInit CInit { get; }

    /// <summary>Whether one eigenvalue per conjugate pair is kept and the output is <c>2 Re(C~ x)</c>.</summary>
    public bool ConjSym { get; }

    /// <summary>Whether the eigenvalues' real parts are clipped to at most <see cref="MaxEigenvalueRealPart"/>.</summary>
    public bool ClipEigs { get; }

    /// <summary>The discretization of the continuous system.</summary>
    public Discretization Discretization { get; }

    /// <summary>The factor on every step size.</summary>
    public double StepRescale { get; }

    /// <summary>
    /// The continuous eigenvalues <c>Lambda [P]</c> as used in forward (real parts clipped when <see cref="ClipEigs"/>):
    /// complex128 for float64 parameters, else complex64.
    /// </summary>
    public Tensor Lambda()
    {
        using var scope = NewDisposeScope();
        return ContinuousLambda(Precision.StateDType(Lambda_re.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The discretized system as used in forward: <c>Lambda_bar [P]</c> and <c>B_bar [P, H]</c>, complex128 for float64
    /// parameters, else complex64 (see the type's equations).
    /// </summary>
    public (Tensor LambdaBar, Tensor BBar) Discretize()
    {
        using var scope = NewDisposeScope();
        var (lambdaBar, bBar) = DiscretizeCore(Precision.StateDType(Lambda_re.dtype));
        return (lambdaBar.MoveToOuterDisposeScope(), bBar.MoveToOuterDisposeScope());
    }

    private Tensor ContinuousLambda(ScalarType dtype)
    {
        var re = Lambda_re.to(dtype);
        if (ClipEigs) re = re.clamp_max(MaxEigenvalueRealPart);
        return complex(re, Lambda_im.to(dtype));
    }

    private (Tensor LambdaBar, Tensor BBar) DiscretizeCore(ScalarType dtype)
    {
        var lambda = ContinuousLambda(dtype);                                        // [P]
        var b = B.to(dtype);
        var bTilde = complex(b.select(2, 0), b.select(2, 1));                        // [P, H]
        var step = log_step.to(dtype).select(1, 0).exp() * StepRescale;             // [P]
        var (logLambdaBar, scale) = DiagonalDiscretization.Discretize(lambda.real, lambda.imag, step, Discretization);
        var lambdaBar = logLambdaBar.exp();
        return (lambdaBar, scale.unsqueeze(1) * bTilde);
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, (S5State?)state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the scan resets at every boundary (the kernel's <c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, (S5State?)state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, S5State? state, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        var dtype = Precision.StateDType(x.dtype);
        var u = x.to(dtype);
        var (lambdaBar, bBar) = DiscretizeCore(dtype);
        var bu = ComplexProjection.ToComplex(u, bBar.real, bBar.imag);              // [B, L, P]
        var (states, last) = LinearScan.Scan(lambdaBar, bu, state?.X, cuSeqlens);  // [B, L, P]
        var c = C.to(dtype);
        var y = ComplexProjection.RealPart(states, c.select(2, 0), c.select(2, 1));  // Re(C x)
        if (ConjSym) y = y * 2.0;
        y = y + u * D.to(dtype);
        if (!returnState) return (y.to(x.dtype), null);
        return (y.to(x.dtype), new S5State(lengths is null ? last : SequenceLengths.AtLast(states, lengths), x.dtype));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        StreamingState.Expect<S5State>(state, Describe()).Validate(new[] { state.BatchSize, Lambda_re.shape[0] }, "[B, P]", Describe());

    private string Describe() => $"S5SequenceMixer(inFeatures: {InFeatures}, P: {Lambda_re.shape[0]})";
}
