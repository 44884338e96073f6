using System.Numerics;
using Discretax.Kernels;
using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Layers;

/// <summary>
/// Dropout with the semantics of <c>torch.nn.Dropout</c> (inverted scaling: in train mode every element is zeroed
/// with probability p and the survivors are multiplied by <c>1 / (1 - p)</c>; in eval mode, or with p = 0, the input
/// is returned unchanged, as <c>input.alias()</c>: a new tensor handle on the same storage, so that <c>Sequential</c>
/// may dispose it) whose mask is drawn by compiled C# on the CPU. The input must be real floating point with no empty
/// dimension (an <see cref="ArgumentException"/> naming <c>input</c> otherwise); the output has its dtype.
/// <para>
/// Why: libtorch's CPU <c>bernoulli_</c> draws one element at a time from one generator on one thread; on a
/// <c>[64, 784, 64]</c> activation it took 24 ms, 20x an elementwise multiply, and the blocks apply dropout twice
/// each (docs/benchmarks.md, "Pixels-layout layer costs"). Here the mask of element i is a pure function of a 64-bit seed
/// and i (a counter-based generator: the SplitMix64 finalizer of <c>seed + golden * (i / 2)</c>, whose two 32-bit
/// halves serve elements 2k and 2k+1), so it is filled in parallel and does not depend on the number of threads.
/// Element i survives when its 32-bit draw u satisfies <c>u &gt;= round(p * 2^32)</c>, i.e. with probability
/// 1 - p up to 2^-32. The seed is one draw from TorchSharp's default generator, so <c>torch.manual_seed</c> makes
/// every mask reproducible.
/// </para>
/// <para>
/// Float32 and float64 tensors on the CPU take this path; every other dtype or device (CUDA, half precision) calls
/// <c>torch.nn.functional.dropout</c>, which is fast there. The gradient is the mask times the incoming gradient,
/// through autograd of the product <c>x * mask</c>.
/// </para>
/// </summary>
public sealed class FastDropout : nn.Module<Tensor, Tensor>
{
    private const int ChunkPairs = 1 << 15;

    /// <summary>Creates the layer.</summary>
    /// <param name="p">The probability of zeroing an element, in [0, 1).</param>
    public FastDropout(double p = 0.5) : base(nameof(FastDropout))
    {
        Check.DropRate(p);
        P = p;
    }

    /// <summary>The probability of zeroing an element.</summary>
    public double P { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        Check.RealFloating(input);
        Check.NonEmpty(input, "of any shape");
        return Precision.Compute(this, input, Drop);
    }

    private Tensor Drop(Tensor input)
    {
        if (!training || P == 0) return input;
        if (input.device_type != DeviceType.CPU || (input.dtype != ScalarType.Float32 && input.dtype != ScalarType.Float64))
            return nn.functional.dropout(input, P, training: true);
        var seed = torch.randint(0, long.MaxValue, new long[] { 1 }, dtype: ScalarType.Int64).item<long>();
        var mask = Mask(input.shape, input.dtype, P, unchecked((ulong)seed), torch.get_num_threads());
        return input * mask;
    }

    /// <summary>
    /// The mask of <see cref="FastDropout"/>: a new contiguous CPU tensor of <paramref name="shape"/> whose element
    /// i is <c>1 / (1 - p)</c> when it survives and 0 when dropped (see the class remarks). The result is the same
    /// for every <paramref name="parallelism"/>.
    /// </summary>
    /// <param name="shape">The shape.</param>
    /// <param name="dtype">Float32 or Float64.</param>
    /// <param name="p">The drop probability, in [0, 1).</param>
    /// <param name="seed">The generator's seed.</param>
    /// <param name="parallelism">How many threads fill it (at least 1).</param>
    internal static unsafe Tensor Mask(long[] shape, ScalarType dtype, double p, ulong seed, int parallelism)
    {
        var mask = torch.empty(shape, dtype: dtype);
        long n = mask.numel();
        if (n == 0) return mask;
        uint threshold = (uint)Math.Min(uint.MaxValue, Math.Round(p * 4294967296.0));
        double scale = 1.0 / (1.0 - p);
        long pairs = (n + 1) / 2;
        long chunks = (pairs + ChunkPairs - 1) / ChunkPairs;
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism) };
        if (dtype == ScalarType.Float32)
        {
            var ptr = (IntPtr)CpuTensorMemory.Pointer<float>(mask, nameof(FastDropout));
            float s = (float)scale;
            Parallel.For(0L, chunks, options, c => Fill((float*)ptr, n, c, seed, threshold, s));
        }
        else
        {
            var ptr = (IntPtr)CpuTensorMemory.Pointer<double>(mask, nameof(FastDropout));
            Parallel.For(0L, chunks, options, c => Fill((double*)ptr, n, c, seed, threshold, scale));
        }
        GC.KeepAlive(mask);
        return mask;
    }

    private static unsafe void Fill<T>(T* data, long n, long chunk, ulong seed, uint threshold, T scale)
        where T : unmanaged, IFloatingPoint<T>
    {
        long firstPair = chunk * ChunkPairs;
        long endPair = Math.Min(firstPair + ChunkPairs, (n + 1) / 2);
        for (long k = firstPair; k < endPair; k++)
        {
            ulong z = Draw(seed, k);
            long i = 2 * k;
            data[i] = scale * T.CreateTruncating(Keep((uint)z, threshold));
            if (i + 1 < n) data[i + 1] = scale * T.CreateTruncating(Keep((uint)(z >> 32), threshold));
        }
    }

    /// <summary>1 when <paramref name="u"/> &gt;= <paramref name="threshold"/>, else 0, without a branch.</summary>
    private static int Keep(uint u, uint threshold) => 1 - (int)((ulong)((long)u - threshold) >> 63);

    /// <summary>The SplitMix64 output for counter <paramref name="k"/> of the stream <paramref name="seed"/>.</summary>
    /// <param name="seed">The stream's seed.</param>
    /// <param name="k">The counter.</param>
    internal static ulong Draw(ulong seed, long k)
    {
        unchecked
        {
            ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(k + 1);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
