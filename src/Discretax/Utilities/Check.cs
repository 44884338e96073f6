using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Utilities;

/// <summary>
/// Argument validation shared by the public surface: every failure is an <see cref="ArgumentException"/>
/// (or <see cref="ArgumentOutOfRangeException"/>) naming the argument, what was expected and what came,
/// thrown before any native call can fail on it.
/// </summary>
internal static class Check
{
    /// <summary>Formats a shape as <c>[2, 3, 4]</c>.</summary>
    public static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Formats a tensor's shape as <c>[2, 3, 4]</c>.</summary>
    public static string Shape(Tensor t) => Shape(t.shape);

    /// <summary>Whether <paramref name="dtype"/> is a real floating-point type.</summary>
    public static bool IsRealFloating(ScalarType dtype) =>
        dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>Throws unless <paramref name="t"/> holds real floating-point values.</summary>
    public static void RealFloating(Tensor t, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(t, paramName);
        if (!IsRealFloating(t.dtype))
            throw new ArgumentException($"Expected a real floating-point tensor (float16, bfloat16, float32 or float64); got {t.dtype}.", paramName);
    }

    /// <summary>Throws unless <paramref name="t"/> has rank <paramref name="rank"/>.</summary>
    public static void Rank(Tensor t, int rank, string layout, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(t, paramName);
        if (t.dim() != rank)
            throw new ArgumentException($"Expected a rank-{rank} tensor {layout}; got shape {Shape(t)}.", paramName);
    }

    /// <summary>Throws unless dimension <paramref name="dim"/> of <paramref name="t"/> has size <paramref name="size"/>.</summary>
    public static void Size(Tensor t, int dim, long size, string what, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        if (t.shape[dim] != size)
            throw new ArgumentException($"Expected {what} = {size} (dimension {dim}); got shape {Shape(t)}.", paramName);
    }

    /// <summary>Returns <paramref name="value"/> after checking it is a size of at least 1 (for base-constructor arguments,
    /// so the error names the caller's parameter).</summary>
    public static long Dim(long value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        AtLeast(value, 1, paramName);
        return value;
    }

    /// <summary>Throws unless <paramref name="value"/> is at least <paramref name="min"/>.</summary>
    public static void AtLeast(long value, long min, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (value < min) throw new ArgumentOutOfRangeException(paramName, value, $"Expected a value of at least {min}; got {value}.");
    }

    /// <summary>Throws unless <paramref name="p"/> is a probability in <c>[0, 1)</c> (a dropout rate).</summary>
    public static void DropRate(double p, [CallerArgumentExpression(nameof(p))] string? paramName = null)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(paramName, p, $"Expected a dropout probability in [0, 1); got {p}.");
    }

    /// <summary>Throws unless <paramref name="value"/> is positive and finite.</summary>
    public static void PositiveFinite(double value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (!(value > 0 && double.IsFinite(value)))
            throw new ArgumentOutOfRangeException(paramName, value, $"Expected a positive finite value; got {value}.");
    }

    /// <summary>Throws unless <paramref name="value"/> is a named member of its enum.</summary>
    public static void Defined<TEnum>(TEnum value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
        where TEnum : struct, Enum
    {
        if (!Enum.IsDefined(value))
            throw new ArgumentOutOfRangeException(paramName, value, $"Unknown {typeof(TEnum).Name} value {value}; expected one of {string.Join(", ", Enum.GetNames<TEnum>())}.");
    }

    /// <summary>Whether two devices are the same device (type and index; an unset index matches any).</summary>
    public static bool SameDevice(Device a, Device b) =>
        a.type == b.type && (a.index < 0 || b.index < 0 || a.index == b.index);

    /// <summary>Throws unless <paramref name="value"/> lies in <c>[min, max]</c>.</summary>
    public static void InRange(double value, double min, double max, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (!(value >= min && value <= max))
            throw new ArgumentOutOfRangeException(paramName, value, $"Expected a value in [{min}, {max}]; got {value}.");
    }

    /// <summary>
    /// Validates a sequence input: batch-first <c>[B, L, features]</c> or unbatched <c>[L, features]</c>, real
    /// floating point, with B and L at least 1. Returns the batched view and whether the input was unbatched.
    /// </summary>
    public static (Tensor Batched, bool Unbatched) Sequence(Tensor x, long features, [CallerArgumentExpression(nameof(x))] string? paramName = null)
    {
        bool unbatched = SequenceShape(x, features, paramName);
        return (unbatched ? x.unsqueeze(0) : x, unbatched);
    }

    /// <summary>
    /// The checks of <see cref="Sequence"/> without creating the batched view: throws unless <paramref name="x"/>
    /// is a real floating-point <c>[B, L, features]</c> or <c>[L, features]</c> with B and L at least 1; returns
    /// whether it is unbatched.
    /// </summary>
    public static bool SequenceShape(Tensor x, long features, [CallerArgumentExpression(nameof(x))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(x, paramName);
        if (x.dim() != 2 && x.dim() != 3)
            throw new ArgumentException($"Expected a sequence [B, L, {features}] or an unbatched sequence [L, {features}]; got shape {Shape(x)}.", paramName);
        RealFloating(x, paramName);
        if (x.shape[^1] != features)
            throw new ArgumentException($"Expected {features} features in the last dimension; got shape {Shape(x)}.", paramName);
        bool unbatched = x.dim() == 2;
        long length = unbatched ? x.shape[0] : x.shape[1];
        if (length < 1)
            throw new ArgumentException($"Expected a sequence of length at least 1; got shape {Shape(x)}.", paramName);
        if (!unbatched && x.shape[0] < 1)
            throw new ArgumentException($"Expected a batch of at least 1 sequence; got shape {Shape(x)}.", paramName);
        return unbatched;
    }

    /// <summary>Validates the last (feature) dimension of a per-step input <c>[..., features]</c>.</summary>
    public static void Features(Tensor x, long features, [CallerArgumentExpression(nameof(x))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(x, paramName);
        if (x.dim() < 1)
            throw new ArgumentException($"Expected a tensor [..., {features}]; got a scalar.", paramName);
        RealFloating(x, paramName);
        if (x.shape[^1] != features)
            throw new ArgumentException($"Expected {features} features in the last dimension; got shape {Shape(x)}.", paramName);
    }

    /// <summary>Throws unless every dimension of <paramref name="t"/> has size at least 1 (no empty batch or
    /// sequence); <paramref name="layout"/> names the expected form in the message.</summary>
    public static void NonEmpty(Tensor t, string layout, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(t, paramName);
        if (t.shape.Any(d => d < 1))
            throw new ArgumentException($"Expected a non-empty tensor {layout} (every dimension at least 1); got shape {Shape(t)}.", paramName);
    }

    /// <summary>
    /// Validates the input of a per-position module, <c>[..., features]</c>: rank at least 1, real floating point,
    /// <paramref name="features"/> in the last dimension and every dimension at least 1 (an empty batch or sequence
    /// is refused, as <see cref="Sequence"/> refuses it).
    /// </summary>
    public static void PerPosition(Tensor x, long features, [CallerArgumentExpression(nameof(x))] string? paramName = null)
    {
        Features(x, features, paramName);
        NonEmpty(x, $"[..., {features}]", paramName);
    }

    /// <summary>Throws unless <paramref name="t"/> is on the device of <paramref name="reference"/> (named <paramref name="referenceName"/>).</summary>
    public static void SameDevice(Tensor reference, Tensor t, string referenceName, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        if (!SameDevice(t.device, reference.device))
            throw new ArgumentException($"Expected a tensor on the device of {referenceName} ({reference.device}); got one on {t.device}.", paramName);
    }

    /// <summary>
    /// Validates the head-major query, key and value of an attention-like kernel: <c>q, k [B, NH, L, Dk]</c> and
    /// <c>v [B, NH, L, Dv]</c>, real floating point of one dtype, on one device, every size at least 1.
    /// Returns the sizes. The parameters are named <c>q</c>, <c>k</c> and <c>v</c> in the errors.
    /// </summary>
    public static (long B, long NH, long L, long Dk, long Dv) QueryKeyValue(Tensor q, Tensor k, Tensor v)
    {
        RealFloating(q);
        RealFloating(k);
        RealFloating(v);
        Rank(q, 4, "[B, NH, L, Dk]");
        Rank(k, 4, "[B, NH, L, Dk]");
        Rank(v, 4, "[B, NH, L, Dv]");
        long b = q.shape[0], nh = q.shape[1], l = q.shape[2], dk = q.shape[3], dv = v.shape[3];
        if (b < 1 || nh < 1 || l < 1 || dk < 1)
            throw new ArgumentException($"Expected q [B, NH, L, Dk] with every size at least 1; got shape {Shape(q)}.", nameof(q));
        if (dv < 1)
            throw new ArgumentException($"Expected v [B, NH, L, Dv] with Dv at least 1; got shape {Shape(v)}.", nameof(v));
        if (!k.shape.SequenceEqual(q.shape))
            throw new ArgumentException($"Expected k with the shape of q {Shape(q)} [B, NH, L, Dk]; got shape {Shape(k)}.", nameof(k));
        if (v.shape[0] != b || v.shape[1] != nh || v.shape[2] != l)
            throw new ArgumentException($"Expected v [B, NH, L, Dv] = [{b}, {nh}, {l}, Dv] to match q; got shape {Shape(v)}.", nameof(v));
        if (k.dtype != q.dtype)
            throw new ArgumentException($"Expected k of the dtype of q ({q.dtype}); got {k.dtype}.", nameof(k));
        if (v.dtype != q.dtype)
            throw new ArgumentException($"Expected v of the dtype of q ({q.dtype}); got {v.dtype}.", nameof(v));
        SameDevice(q, k, nameof(q));
        SameDevice(q, v, nameof(q));
        return (b, nh, l, dk, dv);
    }
}
