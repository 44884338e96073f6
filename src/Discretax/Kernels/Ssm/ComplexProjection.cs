using static TorchSharp.torch;

namespace Discretax.Kernels;

/// <summary>
/// The real-to-complex and complex-to-real linear maps of the diagonal complex recurrences (LRU, S5), each as one
/// real GEMM over interleaved (re, im) pairs: no complex tensor is assembled from, or split into, separate real and
/// imaginary parts by a copy (<c>view_as_complex</c> / <c>view_as_real</c> are views). Autograd flows through both.
/// </summary>
internal static class ComplexProjection
{
    /// <summary>
    /// <c>(W_re + i W_im) u</c> per position: <c>u [B, L, H]</c> real, <c>W_re, W_im [N, H]</c> real, result
    /// <c>[B, L, N]</c> complex. Rows 2n, 2n+1 of the stacked weight are <c>W_re[n]</c>, <c>W_im[n]</c>, so the GEMM's
    /// output <c>[B, L, 2N]</c> is already the memory of the complex result.
    /// </summary>
    /// <param name="u">The real input <c>[B, L, H]</c>.</param>
    /// <param name="weightRe">The real part <c>[N, H]</c>, u's dtype.</param>
    /// <param name="weightIm">The imaginary part <c>[N, H]</c>, u's dtype.</param>
    internal static Tensor ToComplex(Tensor u, Tensor weightRe, Tensor weightIm)
    {
        long n = weightRe.shape[0];
        var w = stack(new[] { weightRe, weightIm }, 1).reshape(2 * n, weightRe.shape[1]);
        return view_as_complex(u.matmul(w.t()).unflatten(2, new[] { n, 2L }));
    }

    /// <summary>
    /// <c>Re((C_re + i C_im) h) = C_re Re(h) - C_im Im(h)</c> per position: <c>h [B, L, N]</c> complex (contiguous),
    /// <c>C_re, C_im [H, N]</c> real, result <c>[B, L, H]</c> real. Columns 2n, 2n+1 of the stacked weight are
    /// <c>C_re[:, n]</c>, <c>-C_im[:, n]</c>, matching the (re, im) pairs of <c>view_as_real(h)</c>.
    /// </summary>
    /// <param name="h">The complex input <c>[B, L, N]</c>.</param>
    /// <param name="cRe">The real part <c>[H, N]</c>, of h's real dtype.</param>
    /// <param name="cIm">The imaginary part <c>[H, N]</c>, of h's real dtype.</param>
    internal static Tensor RealPart(Tensor h, Tensor cRe, Tensor cIm)
    {
        var w = stack(new[] { cRe, -cIm }, 2).reshape(cRe.shape[0], 2 * cRe.shape[1]);
        return view_as_real(h).flatten(2).matmul(w.t());
    }
}
