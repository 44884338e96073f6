namespace Discretax.Kernels;

/// <summary>
/// The work split of the compiled scan kernels: the <c>B x width</c> channels are independent, so the work is cut into
/// tasks of one batch entry and one contiguous block of a row; small problems run on the calling thread.
/// </summary>
internal static class CpuChannelBlocks
{
    /// <summary>Below this many scalars of work a call runs on the calling thread.</summary>
    internal const long SerialWork = 1 << 15;

    /// <summary>
    /// Calls <paramref name="block"/>(batch entry, first column, end column) for every task, in parallel unless the
    /// work is small.
    /// </summary>
    /// <param name="bsz">The batch size B.</param>
    /// <param name="width">The row width (columns per batch entry and step).</param>
    /// <param name="work">The scalars of work of the whole call (decides serial or parallel).</param>
    /// <param name="minBlock">The smallest block of columns a task gets when a row is split.</param>
    /// <param name="align">Block widths are rounded up to a multiple of this (1: no rounding).</param>
    /// <param name="block">The work of one task.</param>
    internal static void Run(int bsz, int width, long work, int minBlock, int align, Action<int, int, int> block)
    {
        bool serial = work <= SerialWork;
        int blocks = 1;
        if (!serial)
        {
            int target = 4 * Environment.ProcessorCount;
            blocks = Math.Max(1, (target + bsz - 1) / bsz);
            blocks = Math.Min(blocks, Math.Max(1, width / minBlock));
        }
        int blockWidth = (width + blocks - 1) / blocks;
        if (!serial && align > 1) blockWidth = (blockWidth + align - 1) / align * align;
        blocks = (width + blockWidth - 1) / blockWidth;
        int tasks = bsz * blocks;
        void Body(int task)
        {
            int bi = task / blocks, k = task % blocks;
            int c0 = k * blockWidth, c1 = Math.Min(width, c0 + blockWidth);
            block(bi, c0, c1);
        }
        if (serial || tasks == 1)
            for (int i = 0; i < tasks; i++) Body(i);
        else
            Parallel.For(0, tasks, Body);
    }
}

/// <summary>
/// The parallel loop of the compiled chunk kernels: one task per (batch, head) pair, at most as many at once as
/// libtorch's intra-op thread count (<c>torch.get_num_threads()</c>), so that a program that limits libtorch to one
/// thread (the MNIST sample's default) also runs the compiled kernels on one.
/// </summary>
internal static class KernelParallel
{
    /// <summary>Runs <paramref name="body"/>(i) for i in [0, count), in parallel up to libtorch's thread count.</summary>
    internal static void For(int count, Action<int> body)
    {
        int threads = Math.Max(1, TorchSharp.torch.get_num_threads());
        if (threads == 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
    }
}
