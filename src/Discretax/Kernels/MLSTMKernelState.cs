using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The mLSTM cell's state after some step, as <see cref="MLSTMKernel"/> takes and returns it: the stabilized memory
/// <c>C [B, NH, Dk, Dv]</c>, the stabilized normalizer <c>N [B, NH, Dk]</c> (the paper's n) and the stabilizer
/// <c>M [B, NH]</c> (log scale, the paper's m); float64 for float64 inputs, float32 otherwise.
/// </summary>
/// <param name="C">The stabilized memory <c>[B, NH, Dk, Dv]</c>.</param>
/// <param name="N">The stabilized normalizer <c>[B, NH, Dk]</c>.</param>
/// <param name="M">The stabilizer <c>[B, NH]</c>.</param>
public sealed record MLSTMKernelState(Tensor C, Tensor N, Tensor M) : IDisposable
{
    /// <summary>Moves the three tensors out of the current dispose scope.</summary>
    public MLSTMKernelState MoveToOuterDisposeScope()
    {
        C.MoveToOuterDisposeScope();
        N.MoveToOuterDisposeScope();
        M.MoveToOuterDisposeScope();
        return this;
    }

    /// <summary>Disposes the three tensors.</summary>
    public void Dispose()
    {
        C.Dispose();
        N.Dispose();
        M.Dispose();
    }
}
