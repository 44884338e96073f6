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
public class GatedDeltaRuleBenchmark
{
    private const long B = 4, NH = 4, D = 64;
    private const int ChunkSize = 64;

    private Tensor _q = null!, _k = null!, _v = null!, _g = null!, _beta = null!;
    private Tensor _qg = null!, _kg = null!, _vg = null!, _gg = null!, _betag = null!;
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
        var gen = new Generator(7);
        _q = randn(new[] { B, NH, l, D }, generator: gen);
        var k = randn(new[] { B, NH, l, D }, generator: gen);
        _k = k / k.norm(-1, keepdim: true);
        _v = randn(new[] { B, NH, l, D }, generator: gen);
        _g = nn.functional.logsigmoid(randn(new[] { B, NH, l }, generator: gen));
        _beta = rand(new[] { B, NH, l }, generator: gen);
        _qg = _q.detach().clone().requires_grad_();
        _kg = _k.detach().clone().requires_grad_();
        _vg = _v.detach().clone().requires_grad_();
        _gg = _g.detach().clone().requires_grad_();
        _betag = _beta.detach().clone().requires_grad_();
    }

    [Benchmark]
    public void Forward()
    {
        using var scope = NewDisposeScope();
        _ = _chunked
            ? GatedDeltaRule.Chunked(_q, _k, _v, _g, _beta, ChunkSize)
            : GatedDeltaRule.Recurrent(_q, _k, _v, _g, _beta);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (o, s) = _chunked
            ? GatedDeltaRule.Chunked(_qg, _kg, _vg, _gg, _betag, ChunkSize)
            : GatedDeltaRule.Recurrent(_qg, _kg, _vg, _gg, _betag);
        (o.sum() + s.sum()).backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _q, _k, _v, _g, _beta, _qg, _kg, _vg, _gg, _betag }) t.Dispose();
    }
}
