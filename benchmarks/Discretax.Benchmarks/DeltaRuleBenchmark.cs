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
public class DeltaRuleBenchmark
{
    private const long B = 4, NH = 4, D = 64;
    private const int ChunkSize = 64;

    private Tensor _q = null!, _k = null!, _v = null!, _beta = null!;
    private Tensor _qg = null!, _kg = null!, _vg = null!, _betag = null!;
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
        _q = randn(new[] { B, NH, l, D }, generator: g);
        var k = randn(new[] { B, NH, l, D }, generator: g);
        _k = k / k.norm(-1, keepdim: true);
        _v = randn(new[] { B, NH, l, D }, generator: g);
        _beta = rand(new[] { B, NH, l }, generator: g);
        _qg = _q.detach().clone().requires_grad_();
        _kg = _k.detach().clone().requires_grad_();
        _vg = _v.detach().clone().requires_grad_();
        _betag = _beta.detach().clone().requires_grad_();
    }

    [Benchmark]
    public void Forward()
    {
        using var scope = NewDisposeScope();
        _ = _chunked ? DeltaRule.Chunked(_q, _k, _v, _beta, ChunkSize) : DeltaRule.Recurrent(_q, _k, _v, _beta);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (o, s) = _chunked
            ? DeltaRule.Chunked(_qg, _kg, _vg, _betag, ChunkSize)
            : DeltaRule.Recurrent(_qg, _kg, _vg, _betag);
        (o.sum() + s.sum()).backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _q, _k, _v, _beta, _qg, _kg, _vg, _betag }) t.Dispose();
    }
}
