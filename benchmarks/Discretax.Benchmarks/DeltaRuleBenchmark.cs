using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The delta-rule kernel at B = 4, NH = 4, Dk = Dv = 64, chunk 64, float32: forward and forward+backward of
/// <see cref="DeltaRule.Chunked"/> for L in {1024, 4096, 16384} and of <see cref="DeltaRule.Recurrent"/> for
/// L in {1024, 4096} (the literal loop at L = 16384 takes minutes per measurement and ~4 GB for its
/// autograd graph). Run together with <see cref="GemmBenchmark"/> for the GEMM reference rate:
/// <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*DeltaRule*' '*Gemm*'</c>.
/// Three measured iterations after one warm-up: single operations take 0.1-60 s on the 2-core machine.
/// </summary>
[WarmupCount(1)]
[IterationCount(3)]
public class DeltaRuleBenchmark : ChunkedKernelBenchmark
{
    private const long B = 4, NH = 4, D = 64;

    /// <inheritdoc />
    protected override Tensor[] Inputs(long l, Generator g)
    {
        var q = randn(new[] { B, NH, l, D }, generator: g);
        var k = randn(new[] { B, NH, l, D }, generator: g);
        var v = randn(new[] { B, NH, l, D }, generator: g);
        var beta = rand(new[] { B, NH, l }, generator: g);
        return new[] { q, k / k.norm(-1, keepdim: true), v, beta };
    }

    /// <inheritdoc />
    protected override (Tensor Output, Tensor FinalState) Run(Tensor[] x, bool chunked) =>
        chunked ? DeltaRule.Chunked(x[0], x[1], x[2], x[3], ChunkSize) : DeltaRule.Recurrent(x[0], x[1], x[2], x[3]);
}
