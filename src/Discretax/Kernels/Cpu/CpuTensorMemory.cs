using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>Raw access to the memory of contiguous CPU tensors for the compiled C# kernels (docs/kernels/linear-scan.md).</summary>
internal static unsafe class CpuTensorMemory
{
    /// <summary>
    /// The address of element 0 of a contiguous CPU float32 / float64 tensor whose dtype is <typeparamref name="T"/>
    /// (null for a null tensor). The caller keeps the tensor alive (<see cref="GC.KeepAlive"/>) while it uses the
    /// pointer, and never caches it.
    /// </summary>
    /// <param name="t">The tensor, or null.</param>
    /// <param name="kernel">The kernel's name, for the error message.</param>
    internal static T* Pointer<T>(Tensor? t, string kernel) where T : unmanaged
    {
        if (t is null) return null;
        var expected = typeof(T) == typeof(float) ? ScalarType.Float32 : ScalarType.Float64;
        if (t.dtype != expected || !t.is_contiguous() || t.device_type != DeviceType.CPU)
            throw new InvalidOperationException($"{kernel} CPU kernel: expected a contiguous CPU {expected} tensor; got {t.dtype} on {t.device}, contiguous = {t.is_contiguous()}.");
        using var storage = t.storage<T>();
        return (T*)storage.data_ptr() + t.storage_offset();
    }
}
