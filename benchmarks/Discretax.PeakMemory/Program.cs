using Discretax.Kernels;
using static TorchSharp.torch;

// Peak resident memory of one forward+backward of a chunked kernel, in a fresh process: the growth of the process's
// peak RSS (VmHWM in /proc/self/status, Linux) from just before the call to just after it, inputs already allocated.
// B = 4, NH = 4, Dk = Dv = 64, chunk 64, float32, every input requiring grad, loss = output.sum() + state.sum()
// (mLSTM: output.sum()), the shapes of the BenchmarkDotNet kernel benchmarks.
// Run: dotnet run -c Release --project benchmarks/Discretax.PeakMemory -- <deltarule|mlstm|gateddeltarule|ssd> <L>
var kernel = args.Length > 0 ? args[0] : "deltarule";
long l = args.Length > 1 ? long.Parse(args[1]) : 16384;
const long B = 4, NH = 4, D = 64;
var g = new Generator(7);
Tensor Leaf(Tensor t) => t.detach().requires_grad_();
Func<Tensor> run;
switch (kernel)
{
    case "deltarule":
    {
        var q = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var kr = randn(new[] { B, NH, l, D }, generator: g);
        var k = Leaf(kr / kr.norm(-1, keepdim: true));
        var v = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var beta = Leaf(rand(new[] { B, NH, l }, generator: g));
        run = () => { var (o, s) = DeltaRule.Chunked(q, k, v, beta, 64); return o.sum() + s.sum(); };
        break;
    }
    case "mlstm":
    {
        var q = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var k = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var v = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var i = Leaf(randn(new[] { B, NH, l }, generator: g));
        var f = Leaf(randn(new[] { B, NH, l }, generator: g).add_(3.0));
        run = () => { var (h, s) = MLSTMKernel.Chunked(q, k, v, i, f, 64); s.Dispose(); return h.sum(); };
        break;
    }
    case "gateddeltarule":
    {
        var q = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var kr = randn(new[] { B, NH, l, D }, generator: g);
        var k = Leaf(kr / kr.norm(-1, keepdim: true));
        var v = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var gate = Leaf(nn.functional.logsigmoid(randn(new[] { B, NH, l }, generator: g)));
        var beta = Leaf(rand(new[] { B, NH, l }, generator: g));
        run = () => { var (o, s) = GatedDeltaRule.Chunked(q, k, v, gate, beta, 64); return o.sum() + s.sum(); };
        break;
    }
    case "ssd":
    {
        // x [B, NH, L, P], a [B, NH, L], b, c [B, NH, L, N] (G = NH), P = N = 64: the SSD benchmark's shapes.
        var x = Leaf(randn(new[] { B, NH, l, D }, generator: g));
        var a = Leaf(-nn.functional.softplus(randn(new[] { B, NH, l }, generator: g)) * 0.1);
        var bm = Leaf(randn(new[] { B, NH, l, D }, generator: g) * 0.125);
        var cm = Leaf(randn(new[] { B, NH, l, D }, generator: g) * 0.125);
        run = () => { var (y, s) = SSD.Chunked(x, a, bm, cm, 64); return y.sum() + s.sum(); };
        break;
    }
    default:
        Console.Error.WriteLine($"unknown kernel '{kernel}': expected deltarule, mlstm, gateddeltarule or ssd");
        return 2;
}

static long PeakKiB()
{
    foreach (var line in File.ReadLines("/proc/self/status"))
        if (line.StartsWith("VmHWM:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    return -1;
}

long before = PeakKiB();
using (var scope = NewDisposeScope())
{
    run().backward();
}
long after = PeakKiB();
Console.WriteLine($"{kernel} L={l}: peak RSS growth of forward+backward {(after - before) / 1024.0:F0} MiB (peak {after / 1024.0:F0} MiB, before {before / 1024.0:F0} MiB)");
return 0;
