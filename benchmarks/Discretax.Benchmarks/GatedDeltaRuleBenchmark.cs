using BenchmarkDotNet.Attributes;
using Discretax.Kernels;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The gated delta-rule kernel at B = 4, NH = 4, Dk = Dv = 64, chunk 64, float32: forward and forward+backward of
/// <see cref="GatedDeltaRule.Chunked"/> for L in {1024, 4096, 16384} and of <see cref="GatedDeltaRule.Recurrent"/> for
/// L in {1024, 4096}, the cases of <see cref="DeltaRuleBenchmark"/> (the extra cost of the decays is the difference).
/// Inputs as a Gated DeltaNet layer makes them: L2-normalized keys, beta in (0, 1), <c>g = logsigmoid(x)</c> of a
/// standard normal x (decays spread over (0, 1)). Run with
/// <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*GatedDeltaRule*' '*DeltaRuleBenchmark*'</c>.
/// Three measured iterations after one warm-up: single operations take 0.1-60 s on the 2-core machine.
/// </summary>
[WarmupCount(1)]
[IterationCount(3)]
public class GatedDeltaRuleBenchmark : ChunkedKernelBenchmark
{
    private const long B = 4, NH = 4, D = 64;

    /// <inheritdoc />
    protected override Tensor[] Inputs(long l, Generator gen)
    {
        var q = randn(new[] { B, NH, l, D }, generator: gen);
        var k = randn(new[] { B, NH, l, D }, generator: gen);
        var v = randn(new[] { B, NH, l, D }, generator: gen);
        var g = nn.functional.logsigmoid(randn(new[] { B, NH, l }, generator: gen));
        var beta = rand(new[] { B, NH, l }, generator: gen);
        return new[] { q, k / k.norm(-1, keepdim: true), v, g, beta };
    }

    /// <inheritdoc />
    protected override (Tensor Output, Tensor FinalState) Run(Tensor[] x, bool chunked) => chunked
        ? GatedDeltaRule.Chunked(x[0], x[1], x[2], x[3], x[4], ChunkSize)
        : GatedDeltaRule.Recurrent(x[0], x[1], x[2], x[3], x[4]);
}
