namespace Discretax.Kernels;

/// <summary>
/// Which implementation a kernel with a compiled CPU path and a tensor path runs. Public entries always use
/// <see cref="Auto"/>; the internal overloads that take a path exist so that tests (through
/// <c>InternalsVisibleTo("Discretax.Tests")</c>) can run the tensor path on CPU, the one test hook of the kernels.
/// </summary>
internal enum KernelPath
{
    /// <summary>The compiled C# kernel for CPU tensors (float32/float64 and, for the scans, complex), the tensor path elsewhere.</summary>
    Auto = 0,

    /// <summary>The tensor-operation path (the one non-CPU devices use), on any device.</summary>
    Tensor = 1,
}
