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
public class SSDBenchmark
{
    private const long B = 4, NH = 4, P = 64, N = 64;
    private const int ChunkSize = 64;

    private Tensor _x = null!, _a = null!, _b = null!, _c = null!;
    private Tensor _xg = null!, _ag = null!, _bg = null!, _cg = null!;
    private bool _chunked;

    /// <summary>The form and the sequence length, e.g. <c>Chunked-4096</c>.</summary>
    [ParamsSource(nameof(Cases))]
    public string Case { get; set; } = "";

    /// <summary>The measured cases.</summary>
    public static IEnumerable<string> Cases() => new[]
    {
        "Chunked-1024", "Chunked-4096", "Chunked-16384", "Recurrent-1024", "Recurrent-4096",
    };

    [GlobalSetup]
    public void Setup()
    {
        var parts = Case.Split('-');
        _chunked = parts[0] == "Chunked";
        long l = long.Parse(parts[1]);
        var g = new Generator(7);
        _x = randn(new[] { B, NH, l, P }, generator: g);
        _a = -nn.functional.softplus(randn(new[] { B, NH, l }, generator: g)) * 0.1;
        _b = randn(new[] { B, NH, l, N }, generator: g) * 0.125;
        _c = randn(new[] { B, NH, l, N }, generator: g) * 0.125;
        _xg = _x.detach().clone().requires_grad_();
        _ag = _a.detach().clone().requires_grad_();
        _bg = _b.detach().clone().requires_grad_();
        _cg = _c.detach().clone().requires_grad_();
    }

    [Benchmark]
    public void Forward()
    {
        using var scope = NewDisposeScope();
        _ = _chunked ? SSD.Chunked(_x, _a, _b, _c, ChunkSize) : SSD.Recurrent(_x, _a, _b, _c);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (y, s) = _chunked ? SSD.Chunked(_xg, _ag, _bg, _cg, ChunkSize) : SSD.Recurrent(_xg, _ag, _bg, _cg);
        (y.sum() + s.sum()).backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _a, _b, _c, _xg, _ag, _bg, _cg }) t.Dispose();
    }
}
