using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The recurrent state of the mLSTM cell as the kernel (<see cref="MLSTMKernel"/>) takes and returns it: the
/// stabilized matrix memory <c>C</c>, the stabilized normalizer <c>n</c> and the log-space stabilizer <c>m</c>, one of
/// each per batch element and head. The true (unstabilized) memory and normalizer are <c>C * exp(m)</c> and
/// <c>n * exp(m)</c>. A plain record of tensors (no module state): whoever receives it from the kernel owns the
/// tensors and disposes them.
/// </summary>
/// <param name="C">The stabilized memory <c>C</c>, shape <c>[B, NH, Dk, Dv]</c>.</param>
/// <param name="N">The stabilized normalizer <c>n</c>, shape <c>[B, NH, Dk]</c>.</param>
/// <param name="M">The stabilizer <c>m</c> (log scale), shape <c>[B, NH]</c>; finite in an initial state, or <c>-inf</c> with
/// <c>C = 0</c> and <c>n = 0</c> for a fresh start without the <c>m_0 = 0</c> term (see <see cref="MLSTMKernel"/>).</param>
/// <remarks>States returned by the kernel hold float64 tensors for float64 inputs and float32 otherwise (also for
/// float16/bfloat16 inputs); an initial state of another real floating dtype is converted to that compute type.</remarks>
public readonly record struct MLSTMKernelState(Tensor C, Tensor N, Tensor M) : IDisposable
{
    /// <summary>Disposes the three tensors.</summary>
    public void Dispose()
    {
        C?.Dispose();
        N?.Dispose();
        M?.Dispose();
    }

    /// <summary>Moves the three tensors to the enclosing dispose scope (see <c>Tensor.MoveToOuterDisposeScope</c>).</summary>
    internal MLSTMKernelState MoveToOuterDisposeScope() =>
        new(C.MoveToOuterDisposeScope(), N.MoveToOuterDisposeScope(), M.MoveToOuterDisposeScope());
}
