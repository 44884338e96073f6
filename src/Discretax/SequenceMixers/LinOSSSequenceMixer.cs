using Discretax.Kernels;
using Discretax.Streaming;
using Discretax.Utilities;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Discretax.SequenceMixers;

/// <summary>
/// The oscillatory state-space mixer LinOSS (Rusch and Rus, ICLR 2025, "Oscillatory State-Space Models",
/// https://arxiv.org/abs/2410.03943) with the damping of D-LinOSS (Boyer, Rusch and Rus 2025,
/// https://arxiv.org/abs/2505.12171), as discretax's <c>LinOSSSequenceMixer</c>: <c>N</c> independent forced, optionally
/// damped harmonic oscillators
/// <code>
/// y'' = -A y - G y' + B u,        out = Re(C y) + D u      (A, G diagonal [N]; B [N, H] and C [H, N] complex)
/// </code>
/// written as the first-order system <c>z = y'</c> and stepped with <c>dt = sigmoid(steps)</c> per channel. Each step is a
/// real 2x2 map per channel on <c>(z, y)</c>, applied to the real and imaginary parts of <c>B u_t</c> alike:
/// <code>
/// IMEX: S = 1 + dt G,             M = [[1/S, -dt A/S], [dt/S, 1 - dt^2 A/S]]
/// IM:   S = 1 + dt G + dt^2 A,    M = [[1/S, -dt A/S], [dt/S, (1 + dt G)/S]]
/// (z_t, y_t) = M (z_{t-1}, y_{t-1}) + (dt/S, dt^2/S) B u_t
/// </code>
/// computed with <see cref="BlockScan2x2.Scan"/>. Undamped, <c>G = 0</c>: IMEX has <c>det M = 1</c> (symplectic), IM
/// <c>det M = 1/(1 + dt^2 A)</c>.
/// <para>Stable band (discretax's projection, applied in every forward): damped IMEX <c>G = relu(G_diag)</c> and
/// <c>A</c> clamped into <c>[(2 + dt G - 2 sqrt(1 + dt G)) / dt^2, (2 + dt G + 2 sqrt(1 + dt G)) / dt^2]</c> (with
/// <c>dt^2</c> floored at 1e-6); damped IM <c>G &gt;= -dt A_diag</c>, then <c>A &gt;= G^2/4</c>; undamped
/// <c>A = relu(A_diag)</c>, for IMEX also capped at <c>4/dt^2</c> (the damped band at <c>G = 0</c>; discretax applies only
/// the relu, which agrees whenever <c>dt^2 A &lt;= 4</c>, as at initialization). In the band both eigenvalues of
/// <c>M</c> are complex conjugates of modulus <c>sqrt(det M) = 1/sqrt(S) &lt;= 1</c>.</para>
/// <para>Initialization (discretax): <c>steps ~ N(0, 0.5^2)</c>; damped, the eigenvalues <c>r e^{+-i theta}</c> of
/// <c>M</c> are drawn with <c>r^2 ~ U(rMin^2, 1)</c>, <c>theta ~ U(0, thetaMax)</c> and mapped to <c>(A, G)</c> through
/// <c>det M = r^2</c>, <c>tr M = 2 r cos(theta)</c>: <c>A = (1 + r^2 - 2 r cos theta) / (r^2 dt^2)</c> for both schemes,
/// <c>G = (1 - r^2) / (r^2 dt)</c> (IMEX) or <c>G = (2 cos(theta) / r - 2) / dt</c> (IM); undamped <c>A_diag ~ U(0, 1)</c>.
/// <c>B [N, H, 2]</c> and <c>C [H, N, 2]</c> hold real and imaginary parts uniform in <c>+-1/sqrt(H)</c> and
/// <c>+-1/sqrt(N)</c>; <c>D ~ N(0, 1)</c>. All parameters are real and named as discretax's (<c>A_diag</c>,
/// <c>G_diag</c> (damped only), <c>steps</c>, <c>B</c>, <c>C</c>, <c>D</c>).</para>
/// <para>Streaming carries the oscillators' state as <c>"z"</c> and <c>"y"</c>, each <c>[B, N, 2]</c> (real and
/// imaginary parts in the last dimension).</para>
/// </summary>
public sealed class LinOSSSequenceMixer : SequenceMixer
{
    /// <summary><c>[N]</c>: the diagonal stiffness A before its projection into the stable band.</summary>
    public Parameter A_diag;

    /// <summary><c>[N]</c>: the diagonal damping G before its projection (null when undamped).</summary>
    public Parameter? G_diag;

    /// <summary><c>[N]</c>: the step sizes before the sigmoid.</summary>
    public Parameter steps;

    /// <summary><c>[N, H, 2]</c>: the input matrix, real and imaginary parts.</summary>
    public Parameter B;

    /// <summary><c>[H, N, 2]</c>: the output matrix, real and imaginary parts.</summary>
    public Parameter C;

    /// <summary><c>[H]</c>: the skip connection.</summary>
    public Parameter D;

    /// <summary>Creates the mixer.</summary>
    /// <param name="inFeatures">The feature size H.</param>
    /// <param name="stateDim">The number of oscillators N.</param>
    /// <param name="discretization">The time discretization.</param>
    /// <param name="damping">Learnable damping G (D-LinOSS); without it the oscillators are undamped.</param>
    /// <param name="rMin">Smallest eigenvalue modulus at init (damped), in (0, 1].</param>
    /// <param name="thetaMax">Largest eigenvalue phase at init (damped), in (0, pi].</param>
    public LinOSSSequenceMixer(long inFeatures, long stateDim = 64, LinOSSDiscretization discretization = LinOSSDiscretization.IMEX,
        bool damping = true, double rMin = 0.9, double thetaMax = Math.PI)
        : base(nameof(LinOSSSequenceMixer), Check.Dim(inFeatures))
    {
        Check.AtLeast(stateDim, 1);
        if (!Enum.IsDefined(discretization))
            throw new ArgumentOutOfRangeException(nameof(discretization), discretization, $"Expected one of {string.Join(", ", Enum.GetNames<LinOSSDiscretization>())}; got {discretization}.");
        if (!(rMin > 0 && rMin <= 1)) throw new ArgumentOutOfRangeException(nameof(rMin), rMin, $"Expected 0 < rMin <= 1; got {rMin}.");
        if (!(thetaMax > 0 && thetaMax <= Math.PI)) throw new ArgumentOutOfRangeException(nameof(thetaMax), thetaMax, $"Expected 0 < thetaMax <= pi; got {thetaMax}.");
        StateDim = stateDim;
        Discretization = discretization;
        Damping = damping;
        using (no_grad())
        {
            var rawSteps = randn(stateDim, dtype: ScalarType.Float64) * 0.5;
            var dt = rawSteps.sigmoid();
            if (damping)
            {
                var r = (rand(stateDim, dtype: ScalarType.Float64) * (1 - rMin * rMin) + rMin * rMin).sqrt();
                var theta = rand(stateDim, dtype: ScalarType.Float64) * thetaMax;
                var a = (1 + r.square() - 2 * r * theta.cos()) / (r.square() * dt.square());
                var g = discretization == LinOSSDiscretization.IMEX
                    ? (1 - r.square()) / (r.square() * dt)
                    : (2 * theta.cos() / r - 2) / dt;
                A_diag = nn.Parameter(a.to(ScalarType.Float32));
                G_diag = nn.Parameter(g.to(ScalarType.Float32));
            }
            else
            {
                A_diag = nn.Parameter(rand(stateDim));
            }
            steps = nn.Parameter(rawSteps.to(ScalarType.Float32));
            double bBound = 1 / Math.Sqrt(inFeatures), cBound = 1 / Math.Sqrt(stateDim);
            B = nn.Parameter(rand(stateDim, inFeatures, 2) * (2 * bBound) - bBound);
            C = nn.Parameter(rand(inFeatures, stateDim, 2) * (2 * cBound) - cBound);
            D = nn.Parameter(randn(inFeatures));
        }
        RegisterComponents();
    }

    /// <summary>The number of oscillators N.</summary>
    public long StateDim { get; }

    /// <summary>The time discretization.</summary>
    public LinOSSDiscretization Discretization { get; }

    /// <summary>Whether the oscillators are damped (the parameter <c>G_diag</c> exists).</summary>
    public bool Damping { get; }

    /// <summary>
    /// The coefficients the forward uses, in the parameters' dtype: the projected stiffness <c>A [N]</c>, the projected
    /// damping <c>G [N]</c> (zeros when undamped) and the step <c>dt = sigmoid(steps) [N]</c>.
    /// </summary>
    public (Tensor A, Tensor G, Tensor Step) Coefficients()
    {
        using var scope = NewDisposeScope();
        var (a, g, dt) = Coefficients(A_diag.dtype);
        return (a.MoveToOuterDisposeScope(), g.MoveToOuterDisposeScope(), dt.MoveToOuterDisposeScope());
    }

    /// <summary>The per-channel transition matrices <c>M [N, 2, 2]</c> acting on <c>(z, y)</c>, in the parameters' dtype.</summary>
    public Tensor TransitionMatrix()
    {
        using var scope = NewDisposeScope();
        var (a, g, dt) = Coefficients(A_diag.dtype);
        return Matrices(a, g, dt).M.MoveToOuterDisposeScope();
    }

    private (Tensor A, Tensor G, Tensor Step) Coefficients(ScalarType dtype)
    {
        var dt = steps.to(dtype).sigmoid();
        var aRaw = A_diag.to(dtype);
        if (!Damping)
        {
            var a = nn.functional.relu(aRaw);
            if (Discretization == LinOSSDiscretization.IMEX)
                a = a - nn.functional.relu(a - 4 / dt.square().clamp_min(1e-6));
            return (a, zeros_like(a), dt);
        }
        var gRaw = G_diag!.to(dtype);
        if (Discretization == LinOSSDiscretization.IMEX)
        {
            var g = nn.functional.relu(gRaw);
            var sdg = dt * g;
            var root = (1 + sdg).sqrt();
            var den = dt.square().clamp_min(1e-6);
            var low = (2 + sdg - 2 * root) / den;
            var high = (2 + sdg + 2 * root) / den;
            return (low + nn.functional.relu(aRaw - low) - nn.functional.relu(aRaw - high), g, dt);
        }
        else
        {
            var gLow = -dt * aRaw;
            var g = gLow + nn.functional.relu(gRaw - gLow);
            var aLow = 0.25 * g.square();
            return (aLow + nn.functional.relu(aRaw - aLow), g, dt);
        }
    }

    /// <summary>M [N, 2, 2] and the forcing coefficients dt/S, dt^2/S [N].</summary>
    private (Tensor M, Tensor C1, Tensor C2) Matrices(Tensor a, Tensor g, Tensor dt)
    {
        var s = Discretization == LinOSSDiscretization.IMEX ? 1 + dt * g : 1 + dt * g + dt.square() * a;
        var inv = s.reciprocal();
        var m11 = inv;
        var m12 = -dt * a * inv;
        var m21 = dt * inv;
        var m22 = Discretization == LinOSSDiscretization.IMEX ? 1 - dt.square() * a * inv : (1 + dt * g) * inv;
        var m = stack(new[] { stack(new[] { m11, m12 }, -1), stack(new[] { m21, m22 }, -1) }, -2);
        return (m, dt * inv, dt.square() * inv);
    }

    /// <inheritdoc />
    protected override (Tensor Output, StreamingState? State) Run(Tensor x, StreamingState? state, bool returnState, Tensor? lengths) =>
        Compute(x, state, returnState, lengths, null);

    /// <inheritdoc />
    /// <remarks>Native: the scan resets at every boundary (the kernel's <c>cuSeqlens</c>), no padding.</remarks>
    protected override (Tensor Output, StreamingState? State)? RunPacked(Tensor x, Tensor cuSeqlens, StreamingState? state, bool returnState) =>
        Compute(x, state, returnState, null, cuSeqlens);

    private (Tensor Output, StreamingState? State) Compute(Tensor x, StreamingState? state, bool returnState, Tensor? lengths, Tensor? cuSeqlens)
    {
        var dtype = Precision.StateDType(x.dtype);
        long n = StateDim;
        var u = x.to(dtype);
        var (a, g, dt) = Coefficients(dtype);
        var (m, c1, c2) = Matrices(a, g, dt);
        var bw = B.to(dtype);
        // Channels 0..N-1 carry the real part of B u, N..2N-1 the imaginary part; both see the same M.
        var bu = cat(new[] { u.matmul(bw.select(-1, 0).t()), u.matmul(bw.select(-1, 1).t()) }, -1); // [B, L, 2N]
        var f = stack(new[] { bu * cat(new[] { c1, c1 }), bu * cat(new[] { c2, c2 }) }, -1);          // [B, L, 2N, 2]
        var m2 = cat(new[] { m, m }, 0);                                                               // [2N, 2, 2]
        Tensor? h0 = null;
        if (state is LinOSSState previous)
        {
            var z0 = previous.Z.to(dtype).permute(0, 2, 1).reshape(previous.BatchSize, 2 * n);
            var y0 = previous.Y.to(dtype).permute(0, 2, 1).reshape(previous.BatchSize, 2 * n);
            h0 = stack(new[] { z0, y0 }, -1);
        }
        var (h, final) = BlockScan2x2.Scan(m2, f, h0, cuSeqlens);                                        // [B, L, 2N, 2]
        var y = h.select(-1, 1);
        var cw = C.to(dtype);
        var output = y.narrow(-1, 0, n).matmul(cw.select(-1, 0).t()) - y.narrow(-1, n, n).matmul(cw.select(-1, 1).t()) + u * D.to(dtype);
        if (!returnState) return (output.to(x.dtype), null);
        var last = cuSeqlens is not null ? final                                                       // [N, 2N, 2] per packed sequence
            : lengths is null ? h.select(1, h.shape[1] - 1) : SequenceLengths.AtLast(h, lengths);       // [B, 2N, 2]
        long bsz = last.shape[0];
        var zl = last.select(-1, 0).reshape(bsz, 2, n).permute(0, 2, 1).contiguous();
        var yl = last.select(-1, 1).reshape(bsz, 2, n).permute(0, 2, 1).contiguous();
        return (output.to(x.dtype), new LinOSSState(zl, yl, x.dtype));
    }

    /// <inheritdoc />
    protected internal override void CheckState(StreamingState state) =>
        StreamingState.Expect<LinOSSState>(state, Describe()).Validate(StateDim, Describe());

    private string Describe() => $"LinOSSSequenceMixer(inFeatures: {InFeatures}, stateDim: {StateDim})";
}
