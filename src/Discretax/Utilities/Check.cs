using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Utilities;

/// <summary>
/// Argument validation shared by the public surface: every failure is an <see cref="ArgumentException"/>
/// (or <see cref="ArgumentOutOfRangeException"/>) naming the argument, what was expected and what came,
/// thrown before any native call can fail on it.
/// </summary>
public static class Check
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

    /// <summary>Throws unless <paramref name="value"/> is at least <paramref name="min"/>.</summary>
    public static void AtLeast(long value, long min, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (value < min) throw new ArgumentOutOfRangeException(paramName, value, $"Expected a value of at least {min}; got {value}.");
    }

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
        return (unbatched ? x.unsqueeze(0) : x, unbatched);
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
}
