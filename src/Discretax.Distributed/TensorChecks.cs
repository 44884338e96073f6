using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Distributed;

/// <summary>
/// The argument checks of the collectives, in Discretax's form: an <see cref="ArgumentException"/> naming the argument,
/// what was expected and what came, thrown before any native call.
/// </summary>
internal static class TensorChecks
{
    /// <summary>The dtypes <see cref="Mpi.AllReduceSum"/> sums.</summary>
    public static bool IsSummable(ScalarType dtype) =>
        dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>Formats a shape as <c>[2, 3, 4]</c>.</summary>
    public static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>
    /// Throws unless <paramref name="t"/> is a live, dense, contiguous CPU tensor: MPI reads and writes its memory in
    /// place through its data pointer.
    /// </summary>
    public static void HostContiguous(Tensor t, string operation, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(t, paramName);
        if (t.IsInvalid)
            throw new ArgumentException($"{operation}: the tensor has been disposed.", paramName);
        if (t.device_type != DeviceType.CPU)
            throw new ArgumentException(
                $"{operation}: expected a CPU tensor (MPI reads and writes host memory); got one on {t.device}. " +
                "Move it with .cpu() and copy the result back, or see docs/distributed.md for GPU collectives (NCCL).", paramName);
        if (t.is_sparse)
            throw new ArgumentException($"{operation}: expected a dense tensor; got a sparse one of shape {Shape(t.shape)}.", paramName);
        if (!t.is_contiguous())
            throw new ArgumentException(
                $"{operation}: expected a contiguous tensor (MPI works in place on its memory); got a non-contiguous view of shape " +
                $"{Shape(t.shape)} with strides {Shape(t.stride())}. Pass t.contiguous() and copy the result back.", paramName);
    }

    /// <summary>Throws unless <paramref name="t"/>'s dtype is one <see cref="Mpi.AllReduceSum"/> sums.</summary>
    public static void Summable(Tensor t, [CallerArgumentExpression(nameof(t))] string? paramName = null)
    {
        if (!IsSummable(t.dtype))
            throw new ArgumentException(
                $"AllReduceSum: expected a float32, float64, bfloat16 or float16 tensor (MPI has no bfloat16 or float16 type: " +
                $"those are summed in float32); got {t.dtype}.", paramName);
    }
}
