using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// Disposal of the managed tensor wrappers that the custom autograd functions of the kernels hand to libtorch's
/// autograd engine, so that their native buffers are not left to the garbage collector when the caller has no
/// dispose scope.
/// </summary>
/// <remarks>
/// <para>A backward returns its gradients as managed wrappers; TorchSharp passes their handles to the engine, which
/// takes its own reference once the callback has returned. The wrapper cannot be disposed inside the backward (the
/// engine has not taken the tensor yet), so <see cref="Return"/> parks the list on the calling thread and disposes the
/// list parked before it: by the time the same thread runs another forward or backward of a kernel function, the
/// engine has long copied the earlier gradients. At most one call's gradients per thread wait for the next call.</para>
/// <para>The incoming gradient <c>grad_output</c> is a wrapper TorchSharp creates for the callback alone and does not
/// use afterwards: <see cref="Release"/> disposes it (and the other wrappers a backward created outside its own
/// scope) at the end of the backward.</para>
/// </remarks>
internal static class AutogradBuffers
{
    [ThreadStatic] private static List<Tensor>? s_parked;

    /// <summary>Disposes the gradients parked by this thread's previous backward (call at the start of a forward or backward).</summary>
    internal static void Flush()
    {
        var parked = s_parked;
        s_parked = null;
        if (parked is null) return;
        foreach (var t in parked) t?.Dispose();
    }

    /// <summary>
    /// Parks the gradients a backward returns (disposing the previously parked ones) and returns them. Null entries
    /// (inputs that need no gradient) are allowed.
    /// </summary>
    internal static List<Tensor> Return(params Tensor?[] grads)
    {
        Flush();
        var list = grads.Select(g => g!).ToList();
        s_parked = list;   // Dispose is idempotent: a dispose scope of the caller may release them first.
        return list;
    }

    /// <summary>Disposes wrappers the backward owns and does not return (the incoming gradient among them).</summary>
    internal static void Release(params Tensor?[] owned)
    {
        foreach (var t in owned) t?.Dispose();
    }
}
