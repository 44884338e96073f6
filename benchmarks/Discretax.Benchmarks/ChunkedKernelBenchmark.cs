using BenchmarkDotNet.Attributes;
using static TorchSharp.torch;

namespace Discretax.Benchmarks;

/// <summary>
/// The cases and the two measurements shared by the chunked kernels' benchmarks (<see cref="DeltaRuleBenchmark"/>,
/// <see cref="GatedDeltaRuleBenchmark"/>, <see cref="SSDBenchmark"/>): the chunked form for L in {1024, 4096, 16384}
/// and the recurrent form for L in {1024, 4096}; <c>Forward</c> without autograd and <c>ForwardBackward</c>, the
/// <c>backward()</c> of <c>output.sum() + finalState.sum()</c> with every input requiring grad. Chunk 64.
/// </summary>
public abstract class ChunkedKernelBenchmark
{
    /// <summary>The chunk size of the chunked forms.</summary>
    protected const int ChunkSize = 64;

    private Tensor[] _inputs = Array.Empty<Tensor>(), _leaves = Array.Empty<Tensor>();
    private bool _chunked;

    /// <summary>The form and the sequence length, e.g. <c>Chunked-4096</c>.</summary>
    [ParamsSource(nameof(Cases))]
    public string Case { get; set; } = "";

    /// <summary>The measured cases.</summary>
    public static IEnumerable<string> Cases() => new[]
    {
        "Chunked-1024", "Chunked-4096", "Chunked-16384", "Recurrent-1024", "Recurrent-4096",
    };

    /// <summary>The kernel's inputs at sequence length <paramref name="length"/>, drawn from <paramref name="generator"/>.</summary>
    protected abstract Tensor[] Inputs(long length, Generator generator);

    /// <summary>The chunked (or recurrent) form on <paramref name="inputs"/>.</summary>
    protected abstract (Tensor Output, Tensor FinalState) Run(Tensor[] inputs, bool chunked);

    [GlobalSetup]
    public void Setup()
    {
        var parts = Case.Split('-');
        _chunked = parts[0] == "Chunked";
        _inputs = Inputs(long.Parse(parts[1]), new Generator(7));
        _leaves = _inputs.Select(t => t.detach().clone().requires_grad_()).ToArray();
    }

    [Benchmark]
    public void Forward()
    {
        using var scope = NewDisposeScope();
        _ = Run(_inputs, _chunked);
    }

    [Benchmark]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (o, s) = Run(_leaves, _chunked);
        (o.sum() + s.sum()).backward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in _inputs.Concat(_leaves)) t.Dispose();
    }
}
