using Discretax.Utilities;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// Long causal convolutions through the FFT, as S4-type models use them to apply a length-L kernel in
/// <c>O(L log L)</c> instead of <c>O(L^2)</c>.
/// </summary>
/// <remarks>
/// <para>For every batch element b and channel h, <see cref="Causal"/> computes</para>
/// <code>y[b, t, h] = sum_{k=0}^{t} K[h, k] u[b, t - k, h],   t = 0 .. L-1,</code>
/// <para>
/// as <c>y = irfft(rfft(u, n) * rfft(K, n), n)[:L]</c>. A circular convolution of size <c>n</c> equals the linear
/// one on the first L outputs when nothing wraps around, that is when <c>n &gt;= L + Lk - 1</c> (Lk the kernel
/// length, at most L): so <c>n = 2L</c> always suffices (the S4/S4D reference pads to 2L). Here n is the
/// smallest 5-smooth size (prime factors 2, 3, 5 only: see <see cref="NextFastSize"/>) at least
/// <c>L + Lk - 1</c>: for a power-of-two L this is exactly 2L, and for other lengths it avoids the slow FFT
/// sizes that 2L can hit (for example 2 * 4099).
/// </para>
/// <para>
/// Precision: float32 and float64 are computed in their own type; bfloat16 and float16 (whose FFTs are
/// unsupported or inaccurate) are computed in float32 and cast back. If either input is float64 the
/// computation is in float64. The result has <c>u</c>'s dtype. Autograd flows to both <c>u</c> and the kernel through a
/// custom backward that is itself two FFT products (<c>FftConvolutionFunction</c>; no double backward).
/// </para>
/// <para>References: Gu, Gupta, Goel, Ré, "On the Parameterization and Initialization of Diagonal State Space
/// Models" (NeurIPS 2022, https://arxiv.org/abs/2206.11893); the minimal S4D of the state-spaces project
/// (https://github.com/state-spaces/s4, <c>models/s4/s4d.py</c>).</para>
/// </remarks>
public static class FftConvolution
{
    /// <summary>
    /// Causal convolution of each channel of <paramref name="u"/> with its own kernel:
    /// <c>y[b, t, h] = sum_{k=0}^{min(t, Lk-1)} kernel[h, k] u[b, t - k, h]</c>.
    /// </summary>
    /// <param name="u">Input <c>[B, L, H]</c> (batch-first, channels last), real floating point, L at least 1.</param>
    /// <param name="kernel">
    /// Kernels <c>[H, Lk]</c> with <c>1 &lt;= Lk &lt;= L</c>, real floating point, on <paramref name="u"/>'s device.
    /// A kernel shorter than the sequence is allowed and means <c>K[h, k] = 0</c> for <c>k &gt;= Lk</c>; a kernel
    /// longer than the sequence is rejected (its tail could never act causally, and silently dropping it
    /// usually hides a bug).
    /// </param>
    /// <returns>The output <c>[B, L, H]</c> in <paramref name="u"/>'s dtype, on its device. A convolution carries no
    /// state, so unlike the sequence kernels (which return <c>(Output, FinalState)</c>) this returns the output alone.</returns>
    /// <remarks>Non-finite values: a NaN or infinity anywhere in <paramref name="u"/> or the kernel spreads through the
    /// FFT to every output, those before its step included (the transform mixes all positions); this kernel cannot keep
    /// them causal. Check inputs with <c>isfinite</c> where that matters (docs/kernels/contracts.md).</remarks>
    /// <param name="cuSeqlens">
    /// Packed sequences: null for the ordinary batch; else int64 <c>[N + 1]</c> cumulative boundaries (0 first, L last,
    /// strictly increasing) of N sequences concatenated along time in one row (B = 1). The convolution is then per
    /// sequence: no kernel tap crosses a boundary, and the output at step t of sequence n depends only on that
    /// sequence's steps. Computed on the sequences gathered into right-padded batches by length class (lengths up to
    /// the same power of two share one batched FFT; the padding of a sequence is less than its length), so the work
    /// stays within twice that of the sequences alone.
    /// </param>
    /// <exception cref="ArgumentException">A shape, dtype or device does not match the description above.</exception>
    public static Tensor Causal(Tensor u, Tensor kernel, Tensor? cuSeqlens = null)
    {
        ArgumentNullException.ThrowIfNull(u);
        ArgumentNullException.ThrowIfNull(kernel);
        Check.Rank(u, 3, "[B, L, H]");
        Check.RealFloating(u);
        Check.Rank(kernel, 2, "[H, Lk]");
        Check.RealFloating(kernel);
        long length = u.shape[1], channels = u.shape[2];
        if (u.shape[0] < 1 || length < 1 || channels < 1)
            throw new ArgumentException($"Expected u [B, L, H] with B, L, H >= 1; got shape {Check.Shape(u)}.", nameof(u));
        if (kernel.shape[0] != channels)
            throw new ArgumentException($"Expected kernel [H, Lk] with H = {channels} (the channels of u {Check.Shape(u)}); got shape {Check.Shape(kernel)}.", nameof(kernel));
        long kernelLength = kernel.shape[1];
        if (kernelLength < 1 || kernelLength > length)
            throw new ArgumentException($"Expected kernel [H, Lk] with 1 <= Lk <= L = {length} (the length of u {Check.Shape(u)}); got shape {Check.Shape(kernel)}.", nameof(kernel));
        if (!Check.SameDevice(kernel.device, u.device))
            throw new ArgumentException($"Expected kernel on u's device {u.device}; got {kernel.device}.", nameof(kernel));

        if (cuSeqlens is not null) return CausalPacked(u, kernel, PackedSequences.Validate(cuSeqlens, u.shape[0], length, nameof(u)));

        using var scope = NewDisposeScope();
        var compute = Precision.StateDType(u, kernel);
        var uc = u.to_type(compute);
        var kc = kernel.to_type(compute);
        bool track = torch.is_grad_enabled() && (uc.requires_grad || kc.requires_grad);
        var y = track
            ? FftConvolutionFunction.apply(uc, kc)
            : FftConvolutionFunction.Compute(uc, kc, NextFastSize(length + kernelLength - 1)).Y;   // [B, L, H]
        return y.to_type(u.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Causal"/> per packed sequence: the sequences are gathered by length class (the next power of two of
    /// their length) into right-padded batches <c>[n, maxLen, H]</c>, convolved with the kernel cut to
    /// <c>min(Lk, maxLen)</c> taps (a longer tap never reaches inside a sequence), and scattered back. Zero padding
    /// after a sequence's end cannot reach its outputs (causality).
    /// </summary>
    private static Tensor CausalPacked(Tensor u, Tensor kernel, PackedSequences packed)
    {
        using var scope = NewDisposeScope();
        long length = u.shape[1], channels = u.shape[2], kernelLength = kernel.shape[1];
        var row = cat(new[] { u.select(0, 0), zeros_like(u.select(0, 0).narrow(0, 0, 1)) }, 0);   // [L + 1, H], row L zero
        var positions = new long[length];
        var pieces = new List<Tensor>();
        long offset = 0;
        foreach (var group in Enumerable.Range(0, packed.Count).GroupBy(i => System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)packed.Length(i))))
        {
            var members = group.ToArray();
            long maxLen = members.Max(packed.Length);
            var gather = new long[members.Length * maxLen];
            Array.Fill(gather, length);
            for (int r = 0; r < members.Length; r++)
            {
                long start = packed.Start(members[r]);
                for (long t = 0; t < packed.Length(members[r]); t++)
                {
                    gather[r * maxLen + t] = start + t;
                    positions[start + t] = offset + r * maxLen + t;
                }
            }
            var batch = row.index_select(0, tensor(gather, device: u.device)).reshape(members.Length, maxLen, channels);
            var y = Causal(batch, kernel.narrow(1, 0, Math.Min(kernelLength, maxLen)));
            pieces.Add(y.reshape(members.Length * maxLen, channels));
            offset += members.Length * maxLen;
        }
        var joined = pieces.Count == 1 ? pieces[0] : cat(pieces.ToArray(), 0);
        return joined.index_select(0, tensor(positions, device: u.device)).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The smallest size at least <paramref name="n"/> whose only prime factors are 2, 3 and 5 (a size every
    /// common FFT backend, pocketfft, MKL and cuFFT, handles with its fast radix kernels).
    /// </summary>
    /// <param name="n">The minimum size, at least 1.</param>
    /// <returns>The smallest <c>m &gt;= n</c> with <c>m = 2^a 3^b 5^c</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is below 1 or above 2^60.</exception>
    public static long NextFastSize(long n)
    {
        Check.AtLeast(n, 1);
        if (n > (1L << 60)) throw new ArgumentOutOfRangeException(nameof(n), n, $"Expected a size of at most 2^60; got {n}.");
        long best = long.MaxValue;
        for (long p5 = 1; ; p5 *= 5)
        {
            for (long p35 = p5; ; p35 *= 3)
            {
                long m = p35;
                while (m < n) m *= 2;                 // smallest power-of-two multiple reaching n
                if (m < best) best = m;
                if (p35 >= n) break;
            }
            if (p5 >= n) break;
        }
        return best;
    }
}
