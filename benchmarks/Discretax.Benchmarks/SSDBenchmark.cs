using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The SSD kernel of Mamba2 at B = 4, NH = 4, P = N = 64 (G = NH: b and c per head), chunk 64, float32: forward and
/// forward+backward of <see cref="SSD.Chunked"/> for L in {1024, 4096, 16384} and of <see cref="SSD.Recurrent"/> for
/// L in {1024, 4096} (the literal loop at L = 16384 takes minutes per measurement and GBs for its autograd graph).
/// The log decays are realistic: <c>a = -softplus(z) * 0.1</c>, Mamba2's <c>dt * A</c> for small steps. Run together
/// with <see cref="GemmBenchmark"/> for the GEMM reference rate:
/// <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*SSDBenchmark*' '*Gemm*'</c>.
/// Three measured iterations after one warm-up: single operations take 0.05-30 s on the 2-core machine.
/// </summary>
[WarmupCount(1)]
[IterationCount(3)]
public class SSDBenchmark : ChunkedKernelBenchmark
{
    private const long B = 4, NH = 4, P = 64, N = 64;

    /// <inheritdoc />
    protected override Tensor[] Inputs(long l, Generator g)
    {
        var x = randn(new[] { B, NH, l, P }, generator: g);
        var a = -nn.functional.softplus(randn(new[] { B, NH, l }, generator: g)) * 0.1;
        var b = randn(new[] { B, NH, l, N }, generator: g) * 0.125;
        var c = randn(new[] { B, NH, l, N }, generator: g) * 0.125;
        return new[] { x, a, b, c };
    }

    /// <inheritdoc />
    protected override (Tensor Output, Tensor FinalState) Run(Tensor[] x, bool chunked) =>
        chunked ? SSD.Chunked(x[0], x[1], x[2], x[3], ChunkSize) : SSD.Recurrent(x[0], x[1], x[2], x[3]);
}
