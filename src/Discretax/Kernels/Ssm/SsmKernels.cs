using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// Kernels of diagonal state-space models (S4D): discretization of the diagonal system, its convolution
/// kernel by a Vandermonde product, and the S4D-Lin / S4D-Inv initializations.
/// </summary>
/// <remarks>
/// <para>
/// Per channel h (dropped below) the continuous system has N/2 complex modes, one per conjugate pair,
/// <c>x_n'(t) = A_n x_n(t) + u(t)</c> (B = 1, as in S4D: B's scale is absorbed into C), with output
/// <c>y(t) = 2 Re sum_n C_n x_n(t)</c>. The factor 2 Re is the contribution of the conjugate partner
/// <c>(conj A_n, conj C_n)</c> of each mode: for a real input its state is <c>conj x_n</c>, so the pair gives
/// <c>C_n x_n + conj(C_n x_n) = 2 Re(C_n x_n)</c>, and only N/2 modes need to be stored and computed.
/// </para>
/// <para>With step <c>dt = exp(log_dt)</c> the discrete recurrence is</para>
/// <code>
/// x_t = dA x_{t-1} + dB u_t,    y_t = 2 Re sum_n C_n x_{t,n},    x_{-1} = 0,
/// ZOH:      dA = exp(dt A),                      dB = (exp(dt A) - 1) / A
/// bilinear: dA = (1 + dt A/2) / (1 - dt A/2),    dB = dt / (1 - dt A/2)
/// </code>
/// <para>Unrolling it shows that <c>y = K * u</c> (causal convolution) with the kernel</para>
/// <code>K_l = 2 Re sum_n C'_n dA_n^l,   C' = C dB,   l = 0 .. L-1,</code>
/// <para>
/// a product of <c>C'</c> with the Vandermonde matrix <c>V[n, l] = dA_n^l</c>. The powers are formed from
/// <c>exp(m log dA)</c> (for ZOH <c>log dA = dt A</c> exactly), which neither accumulates rounding over l
/// like repeated products nor overflows. V is never materialized whole: with chunk length Lc and
/// <c>l = c Lc + j</c>, <c>dA^l = dA^(c Lc) dA^j</c>, so one block <c>V0[h, n, j] = dA_n^j</c> (<c>[H, N/2, Lc]</c>, the
/// largest tensor of the computation) serves every chunk, the chunk offsets are folded into C
/// (<c>C''[h, c, n] = C'_n dA_n^(c Lc)</c>, <c>[H, L/Lc, N/2]</c>), and <c>K[h, c Lc + j] = 2 Re (C'' V0)[h, c, j]</c> is one
/// batched complex matrix product. Exponentials: <c>H N/2 (Lc + L/Lc)</c> instead of <c>H N/2 L</c>; memory saved for
/// the backward pass: the same two small factors.
/// </para>
/// <para>
/// References: Gu, Gupta, Goel, Ré, "On the Parameterization and Initialization of Diagonal State Space
/// Models" (NeurIPS 2022, https://arxiv.org/abs/2206.11893); the minimal S4D of the state-spaces project
/// (https://github.com/state-spaces/s4, <c>models/s4/s4d.py</c>).
/// </para>
/// </remarks>
public static class SsmKernels
{
    /// <summary>Default bound on the complex elements of one Vandermonde chunk <c>[H, N/2, Lc]</c> (2^22).</summary>
    public const long DefaultChunkElements = 1L << 22;

    /// <summary>
    /// Discretizes the diagonal system <c>x' = A x + u</c> with step <c>dt = exp(log_dt)</c> into
    /// <c>x_t = dA x_{t-1} + dB u_t</c>; the output of the recurrent form is then <c>y_t = 2 Re sum_n C_n x_{t,n}</c>
    /// (equivalently, with <c>C' = C dB</c> and state <c>x~ = x / dB</c>: <c>x~_t = dA x~_{t-1} + u_t</c>, <c>y_t = 2 Re sum_n C'_n x~_{t,n}</c>).
    /// </summary>
    /// <param name="logDt">Per-channel log step sizes <c>[H]</c>.</param>
    /// <param name="aReal">Real parts of A <c>[H, N/2]</c> (negative for a stable system; S4D uses <c>-exp(log_A_real)</c>).</param>
    /// <param name="aImag">Imaginary parts of A <c>[H, N/2]</c>.</param>
    /// <param name="discretization">Zero-order hold (default) or bilinear; see <see cref="Discretization"/>.</param>
    /// <returns>
    /// <c>(DA, DB)</c>, both complex <c>[H, N/2]</c>: complex128 if any input is float64, otherwise complex64
    /// (half-precision inputs are computed in float32). ZOH: <c>dA = exp(dt A)</c>, <c>dB = (exp(dt A) - 1)/A</c>
    /// (requires <c>A != 0</c>); bilinear: <c>dA = (1 + dt A/2)/(1 - dt A/2)</c>, <c>dB = dt/(1 - dt A/2)</c>.
    /// Differentiable with respect to all inputs.
    /// </returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match.</exception>
    public static (Tensor DA, Tensor DB) Discretize(Tensor logDt, Tensor aReal, Tensor aImag, Discretization discretization = Discretization.Zoh)
    {
        ValidateSystem(logDt, aReal, aImag);
        ValidateDiscretization(discretization);
        using var scope = NewDisposeScope();
        var compute = Precision.StateDType(logDt, aReal, aImag);
        var (logDA, dB) = DiscretizeCore(logDt.to_type(compute), aReal.to_type(compute), aImag.to_type(compute), discretization);
        var dA = logDA.exp();
        return (dA.MoveToOuterDisposeScope(), dB.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The S4D convolution kernel <c>K_l = 2 Re sum_n C_n dB_n dA_n^l</c>, <c>l = 0 .. length-1</c>: the impulse
    /// response of the discretized recurrence (see the type's remarks), to be applied with
    /// <see cref="FftConvolution.Causal"/>.
    /// </summary>
    /// <param name="logDt">Per-channel log step sizes <c>[H]</c>.</param>
    /// <param name="aReal">Real parts of A <c>[H, N/2]</c> (negative for a stable system).</param>
    /// <param name="aImag">Imaginary parts of A <c>[H, N/2]</c>.</param>
    /// <param name="cReal">Real parts of C <c>[H, N/2]</c>.</param>
    /// <param name="cImag">Imaginary parts of C <c>[H, N/2]</c>.</param>
    /// <param name="length">The kernel length L, at least 1.</param>
    /// <param name="discretization">Zero-order hold (default) or bilinear.</param>
    /// <param name="chunkSize">
    /// The chunk length Lc of the two-level Vandermonde product (see the type's remarks); null picks
    /// <c>ceil(sqrt(L))</c> (fewest exponentials), capped so that <c>[H, N/2, Lc]</c> holds at most
    /// <see cref="DefaultChunkElements"/> complex values. The result does not depend on it beyond floating-point noise.
    /// </param>
    /// <returns>
    /// <c>K [H, L]</c>, real, differentiable with respect to all five parameter tensors. It is computed in float64
    /// if any parameter is float64, otherwise in float32, and returned in the promoted type of the parameters
    /// (so all-bfloat16 parameters give a bfloat16 kernel).
    /// </returns>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> or <paramref name="chunkSize"/> is below 1.</exception>
    public static Tensor S4DKernel(Tensor logDt, Tensor aReal, Tensor aImag, Tensor cReal, Tensor cImag, long length,
        Discretization discretization = Discretization.Zoh, long? chunkSize = null)
    {
        ValidateSystem(logDt, aReal, aImag);
        ValidatePart(cReal, aReal, "C");
        ValidatePart(cImag, aReal, "C");
        ValidateDiscretization(discretization);
        Check.AtLeast(length, 1);
        if (chunkSize is long c) Check.AtLeast(c, 1, nameof(chunkSize));

        long channels = aReal.shape[0], modes = aReal.shape[1];
        long chunk = chunkSize ?? Math.Min((long)Math.Ceiling(Math.Sqrt(length)), Math.Max(1, DefaultChunkElements / (channels * modes)));
        chunk = Math.Min(chunk, length);

        using var scope = NewDisposeScope();
        var compute = Precision.StateDType(logDt, aReal, aImag, cReal, cImag);
        var output = PromotedType(logDt, aReal, aImag, cReal, cImag);
        var (logDA, dB) = DiscretizeCore(logDt.to_type(compute), aReal.to_type(compute), aImag.to_type(compute), discretization);
        var cPrime = (complex(cReal.to_type(compute), cImag.to_type(compute)) * dB).unsqueeze(1);   // [H, 1, N/2]

        // Two-level Vandermonde: l = c Lc + j, so dA^l = dA^(c Lc) dA^j. One exponential block V[h, n, j] = dA^j
        // ([H, N/2, Lc]) serves every chunk c; the chunk offsets go into C: C''[h, c, n] = C'_n dA_n^(c Lc). Then
        // K[h, c, j] = 2 Re sum_n C''[h, c, n] V[h, n, j] is one batched complex matmul. Both factors are single
        // exponentials exp(m log dA) (no accumulated rounding), and exp runs on H N/2 (Lc + L/Lc) values, not H N/2 L.
        long chunks = (length + chunk - 1) / chunk;
        var j = arange(chunk, dtype: compute, device: aReal.device);                                   // [Lc]
        var vandermonde = (logDA.unsqueeze(-1) * j).exp();                                              // [H, N/2, Lc]
        var offsets = (arange(chunks, dtype: compute, device: aReal.device) * (double)chunk).unsqueeze(-1); // [C, 1]
        var cShifted = cPrime * (logDA.unsqueeze(1) * offsets).exp();                                   // [H, C, N/2]
        var k = cShifted.matmul(vandermonde).reshape(channels, chunks * chunk).narrow(1, 0, length);    // [H, L]
        return (k.real * 2.0).to_type(output).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// S4D-Lin initialization (Gu et al. 2022, §4): <c>A_n = -1/2 + i pi n</c>, <c>n = 0 .. N/2-1</c>, the same for
    /// every channel. The imaginary parts are evenly spaced frequencies, a diagonal approximation of the
    /// HiPPO-LegS matrix's spectrum that works as well as S4's in practice. Use <c>aReal = -exp(LogAReal)</c>.
    /// </summary>
    /// <param name="channels">The number of channels H, at least 1.</param>
    /// <param name="stateDim">The real state size N (even, at least 2); the system has N/2 conjugate-pair modes.</param>
    /// <param name="dtype">A real floating dtype for the result (default float32).</param>
    /// <param name="device">The device (default CPU).</param>
    /// <returns><c>(LogAReal, AImag)</c>, both <c>[H, N/2]</c>: <c>LogAReal = log 0.5</c>, <c>AImag[h, n] = pi n</c>.</returns>
    public static (Tensor LogAReal, Tensor AImag) S4DLinInit(long channels, long stateDim, ScalarType dtype = ScalarType.Float32, Device? device = null)
        => Init(channels, stateDim, dtype, device, inverse: false);

    /// <summary>
    /// S4D-Inv initialization (Gu et al. 2022, §4): <c>A_n = -1/2 + i (N/pi) (N/(2n+1) - 1)</c>, <c>n = 0 .. N/2-1</c>,
    /// the same for every channel; its imaginary parts follow the asymptotics of the HiPPO-LegS eigenvalues
    /// (inverse-law frequencies). Use <c>aReal = -exp(LogAReal)</c>.
    /// </summary>
    /// <param name="channels">The number of channels H, at least 1.</param>
    /// <param name="stateDim">The real state size N (even, at least 2); the system has N/2 conjugate-pair modes.</param>
    /// <param name="dtype">A real floating dtype for the result (default float32).</param>
    /// <param name="device">The device (default CPU).</param>
    /// <returns><c>(LogAReal, AImag)</c>, both <c>[H, N/2]</c>: <c>LogAReal = log 0.5</c>, <c>AImag[h, n] = (N/pi)(N/(2n+1) - 1)</c>.</returns>
    public static (Tensor LogAReal, Tensor AImag) S4DInvInit(long channels, long stateDim, ScalarType dtype = ScalarType.Float32, Device? device = null)
        => Init(channels, stateDim, dtype, device, inverse: true);

    private static (Tensor LogAReal, Tensor AImag) Init(long channels, long stateDim, ScalarType dtype, Device? device, bool inverse)
    {
        Check.AtLeast(channels, 1);
        Check.AtLeast(stateDim, 2);
        if (stateDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(stateDim), stateDim, $"Expected an even state size N (N/2 conjugate pairs); got {stateDim}.");
        if (!Check.IsRealFloating(dtype))
            throw new ArgumentException($"Expected a real floating dtype; got {dtype}.", nameof(dtype));
        long modes = stateDim / 2;
        using var scope = NewDisposeScope();
        var n = arange(modes, dtype: ScalarType.Float64, device: device);
        var imag = inverse
            ? ((n * 2.0 + 1.0).reciprocal() * (double)stateDim - 1.0) * (stateDim / Math.PI)
            : n * Math.PI;
        var aImag = imag.unsqueeze(0).expand(channels, modes).to_type(dtype).contiguous();
        var logAReal = full(new[] { channels, modes }, Math.Log(0.5), dtype: dtype, device: device);
        return (logAReal.MoveToOuterDisposeScope(), aImag.MoveToOuterDisposeScope());
    }

    /// <summary>Returns (log dA, dB), complex [H, N/2], in the (real) compute type of the inputs.</summary>
    private static (Tensor LogDA, Tensor DB) DiscretizeCore(Tensor logDt, Tensor aReal, Tensor aImag, Discretization discretization) =>
        DiagonalDiscretization.Discretize(aReal, aImag, logDt.exp().unsqueeze(-1), discretization);

    private static void ValidateSystem(Tensor logDt, Tensor aReal, Tensor aImag)
    {
        ArgumentNullException.ThrowIfNull(logDt);
        ArgumentNullException.ThrowIfNull(aReal);
        ArgumentNullException.ThrowIfNull(aImag);
        Check.Rank(aReal, 2, "[H, N/2]");
        Check.RealFloating(aReal);
        if (aReal.shape[0] < 1 || aReal.shape[1] < 1)
            throw new ArgumentException($"Expected aReal [H, N/2] with H >= 1 and N/2 >= 1; got shape {Check.Shape(aReal)}.", nameof(aReal));
        ValidatePart(aImag, aReal, "A");
        Check.Rank(logDt, 1, "[H]");
        Check.RealFloating(logDt);
        if (logDt.shape[0] != aReal.shape[0])
            throw new ArgumentException($"Expected logDt [H] with H = {aReal.shape[0]} (from aReal {Check.Shape(aReal)}); got shape {Check.Shape(logDt)}.", nameof(logDt));
        SameDevice(logDt, aReal, nameof(logDt));
    }

    private static void ValidatePart(Tensor part, Tensor aReal, string what, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(part))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(part, paramName);
        Check.RealFloating(part, paramName);
        if (!part.shape.SequenceEqual(aReal.shape))
            throw new ArgumentException($"Expected {paramName} (a part of {what}) with aReal's shape {Check.Shape(aReal)} [H, N/2]; got shape {Check.Shape(part)}.", paramName);
        SameDevice(part, aReal, paramName!);
    }

    private static void SameDevice(Tensor t, Tensor reference, string paramName)
    {
        if (!Check.SameDevice(t.device, reference.device))
            throw new ArgumentException($"Expected {paramName} on aReal's device {reference.device}; got {t.device}.", paramName);
    }

    private static void ValidateDiscretization(Discretization discretization)
    {
        if (discretization is not (Discretization.Zoh or Discretization.Bilinear))
            throw new ArgumentOutOfRangeException(nameof(discretization), discretization, "Expected Discretization.Zoh or Discretization.Bilinear.");
    }

    private static ScalarType PromotedType(params Tensor[] tensors)
    {
        if (tensors.Any(t => t.dtype == ScalarType.Float64)) return ScalarType.Float64;
        var first = tensors[0].dtype;
        return tensors.All(t => t.dtype == first) ? first : ScalarType.Float32;
    }
}
