// Training throughput of the models as ModelThroughputBenchmark measures it (Model(128, 4), B = 16, L = 1024,
// float32, train mode, one forward+backward of (model(x) * w).mean()), as a plain loop: one warm-up pass, then
// N timed passes, reporting the median and the minimum. Meant for before/after comparisons of two builds run one
// after the other (BenchmarkDotNet's 3 passes were too noisy on the 2-core machine to see a few percent):
//   dotnet run -c Release --project benchmarks/Discretax.ThroughputLoop -- [passes] [model ...]
// The source uses only API that every version of the library has had, so it can be copied into an older tree.
using System.Diagnostics;
using Discretax.Models;
using TorchSharp;
using static TorchSharp.torch;

int passes = args.Length > 0 && int.TryParse(args[0], out var p) ? p : 12;
var names = args.Skip(args.Length > 0 && int.TryParse(args[0], out _) ? 1 : 0).ToArray();
if (names.Length == 0) names = new[] { "LRU", "DeltaNet", "S5", "S4D", "MLSTM", "LinOSS" };
const int batch = 16, length = 1024, hidden = 128, blocks = 4;
foreach (var name in names)
{
    torch.manual_seed(1);
    using nn.Module<Tensor, Tensor> model = name switch
    {
        "LRU" => new LRU(hidden, blocks),
        "DeltaNet" => new DeltaNet(hidden, blocks),
        "S5" => new S5(hidden, blocks),
        "S4D" => new S4D(hidden, blocks),
        "MLSTM" => new MLSTM(hidden, blocks, dropRate: 0.1),   // dropout 0.1: the default until issue 14, as measured
        "LinOSS" => new LinOSS(hidden, blocks),
        _ => throw new ArgumentException($"Unknown model '{name}'.", nameof(args)),
    };
    model.train();
    var g = new Generator(2);
    using var x = randn(new long[] { batch, length, hidden }, generator: g);
    using var w = randn(new long[] { batch, length, hidden }, generator: g);
    var times = new List<double>();
    for (int i = 0; i <= passes; i++)
    {
        var sw = Stopwatch.StartNew();
        using (var scope = NewDisposeScope())
        {
            model.zero_grad();
            (model.forward(x) * w).mean().backward();
        }
        if (i > 0) times.Add(sw.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    double median = times[times.Count / 2];
    Console.WriteLine($"{name,-9} median {median,8:F1} ms  min {times[0],8:F1} ms  tokens/s (median) {batch * length / (median / 1000),8:N0}");
}
