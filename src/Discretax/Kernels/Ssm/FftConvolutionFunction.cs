using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Discretax.Kernels;

/// <summary>
/// The custom autograd function of <see cref="FftConvolution.Causal"/>, on every device. Forward:
/// <c>y = irfft(U K, n)[:L]</c> with <c>U = rfft(u, n)</c>, <c>K = rfft(kernel, n)</c>. Backward, with
/// <c>G = rfft(g, n)</c> of the zero-padded output gradient g:
/// <code>
/// du[b, t, h] = sum_{s >= t} g[b, s, h] kernel[h, s - t]  = irfft(G conj(K), n)[:L]
/// dk[h, j]    = sum_{b, t} g[b, t, h] u[b, t - j, h]      = irfft(sum_b G conj(U), n)[:Lk]
/// </code>
/// Both are circular correlations that equal the linear ones because <c>n &gt;= L + Lk - 1</c> (the same condition
/// as the forward's). The backward costs one batched rfft and one batched irfft, the forward's own cost;
/// differentiating through libtorch's FFTs instead made forward+backward 1.7x slower at <c>[64, 784, 64]</c> on CPU
/// (docs/benchmarks.md, "Pixels-layout layer costs"). Called as <c>apply(u, kernel)</c> with same-dtype float32/float64 tensors,
/// <c>u [B, L, H]</c> and <c>kernel [H, Lk]</c>, already validated; no double backward.
/// </summary>
internal sealed class FftConvolutionFunction : SingleTensorFunction<FftConvolutionFunction>
{
    private sealed record Sizes(long Length, long KernelLength, long FftSize, bool NeedsU, bool NeedsKernel);

    /// <inheritdoc/>
    public override string Name => "FftCausalConvolutionBackward";

    /// <summary>The forward product, shared with the no-grad path: returns y and the spectra U, K.</summary>
    /// <param name="u">The input <c>[B, L, H]</c>.</param>
    /// <param name="kernel">The kernels <c>[H, Lk]</c>.</param>
    /// <param name="n">The FFT size, at least <c>L + Lk - 1</c>.</param>
    internal static (Tensor Y, Tensor U, Tensor K) Compute(Tensor u, Tensor kernel, long n)
    {
        var uf = fft.rfft(u, n, dim: 1);                                   // [B, n/2+1, H]
        var kf = fft.rfft(kernel, n, dim: 1).t();                          // [n/2+1, H]
        var y = fft.irfft(uf * kf, n, dim: 1).narrow(1, 0, u.shape[1]).contiguous();
        return (y, uf, kf);
    }

    /// <inheritdoc/>
    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        AutogradBuffers.Flush();
        var u = (Tensor)vars[0];
        var kernel = (Tensor)vars[1];
        var sizes = new Sizes(u.shape[1], kernel.shape[1], FftConvolution.NextFastSize(u.shape[1] + kernel.shape[1] - 1),
            u.requires_grad, kernel.requires_grad);
        var (y, uf, kf) = Compute(u, kernel, sizes.FftSize);
        // dk needs U, du needs K.
        ctx.save_for_backward(new List<Tensor> { sizes.NeedsKernel ? uf : null!, sizes.NeedsU ? kf : null! });
        ctx.save_data("sizes", sizes);
        return y;
    }

    /// <inheritdoc/>
    public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
    {
        AutogradBuffers.Flush();
        var sizes = (Sizes)ctx.get_data("sizes");
        Tensor? du = null, dk = null;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var saved = ctx.get_saved_variables();
            var gf = fft.rfft(grad_output, sizes.FftSize, dim: 1);                        // [B, n/2+1, H]
            if (sizes.NeedsU)
                du = fft.irfft(gf * saved[1].conj(), sizes.FftSize, dim: 1).narrow(1, 0, sizes.Length)
                    .contiguous().MoveToOuterDisposeScope();
            if (sizes.NeedsKernel)
                dk = fft.irfft((gf * saved[0].conj()).sum(0L), sizes.FftSize, dim: 0).narrow(0, 0, sizes.KernelLength)
                    .t().contiguous().MoveToOuterDisposeScope();                         // [H, Lk]
        }
        AutogradBuffers.Release(grad_output);
        return AutogradBuffers.Return(du, dk);
    }
}
