// The "which model" benchmark behind docs/which-model.md: every model at hidden 128, 4 blocks (each model's defaults
// otherwise; TransformerDeltaNet, which has no default chunk size, gets DeltaNet's 64), float32, CPU.
//   dotnet run -c Release --project benchmarks/Discretax.WhichModel -- [--out docs] [--passes 3] [--threads 2]
//       [--point-timeout 180] [--mem-cap-gb 8] [--pass-budget 60] [--budget-min 25] [--models LRU,S5,...]
//       [--lengths 256,512,...]
// --pass-budget: seconds the timed passes of one point may take (judged from its warm-up; fewer passes, at least
// one, where 3 would not fit); --budget-min: points not started past this many minutes are recorded as not run.
// For every (model, L) it re-invokes itself in a fresh child process ("point MODEL L PASSES THREADS") that runs one
// warm-up and PASSES timed forward+backward passes in train mode of (model(x) * w).mean() with B x L = 16,384
// tokens, and reports the median time and the peak RSS (VmHWM of /proc/self/status) before and after, so one
// point's peak does not hide another's. Then per model a child "stream MODEL THREADS" measures the state of a
// Stream call (floats per layer, from StreamingState.Tensors / Children) and the mean time of one streamed token
// (B = 1, eval mode, 200 steps after 20 warm-up steps). It writes which-model.csv, which-model-streaming.csv and
// which-model.png to --out and prints a markdown table.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Discretax.Models;
using Discretax.Streaming;
using TorchSharp;
using static TorchSharp.torch;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

if (args.Length > 0 && args[0] == "point") return Child.Point(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]), double.Parse(args[5]));
if (args.Length > 0 && args[0] == "stream") return Child.Stream(args[1], int.Parse(args[2]));
if (args.Length > 0 && args[0] == "plot") return Parent.Replot(args[1]);
return Parent.Run(args);

/// <summary>Model construction shared by the modes.</summary>
internal static class Models
{
    public const int Hidden = 128, Blocks = 4, TokensPerPass = 16384;
    public static readonly string[] All = { "LRU", "S5", "S4D", "LinOSS", "DeltaNet", "GatedDeltaNet", "Mamba2", "TransformerDeltaNet", "MLSTM" };
    public static readonly int[] Lengths = { 256, 512, 1024, 2048, 4096, 8192, 16384 };

    public static SequenceModel Create(string name) => name switch
    {
        "LRU" => new LRU(Hidden, Blocks),
        "S5" => new S5(Hidden, Blocks),
        "S4D" => new S4D(Hidden, Blocks),
        "LinOSS" => new LinOSS(Hidden, Blocks),
        "DeltaNet" => new DeltaNet(Hidden, Blocks),
        "GatedDeltaNet" => new GatedDeltaNet(Hidden, Blocks),
        "Mamba2" => new Mamba2(Hidden, Blocks),
        "TransformerDeltaNet" => new TransformerDeltaNet(Hidden, chunkSize: 64, numLayers: Blocks),
        "MLSTM" => new MLSTM(Hidden, Blocks, dropRate: 0.1),   // dropout 0.1: the default until issue 14, as measured in docs/which-model.md
        _ => throw new ArgumentException($"Unknown model '{name}'; expected one of {string.Join(", ", All)}."),
    };

    /// <summary>Real scalars of the parameters (a complex parameter counts twice).</summary>
    public static long Parameters(nn.Module module) =>
        module.parameters().Sum(p => p.numel() * (p.is_complex() ? 2 : 1));

    /// <summary>kB of a line of /proc/self/status, e.g. VmHWM.</summary>
    public static long StatusKb(string key, int pid = 0)
    {
        var path = pid == 0 ? "/proc/self/status" : $"/proc/{pid}/status";
        foreach (var line in File.ReadLines(path))
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return -1;
    }
}

/// <summary>The child modes: one measurement each, printed as one "RESULT ..." line.</summary>
internal static class Child
{
    /// <summary>One (model, L) point; the timed passes are cut (to at least 1) when the warm-up says that
    /// <paramref name="passes"/> of them would take longer than <paramref name="budgetS"/> seconds.</summary>
    public static int Point(string name, int length, int passes, int threads, double budgetS)
    {
        torch.set_num_threads(threads);
        using (var probe = torch.ones(8) * 2) probe.sum().item<float>();
        long baseKb = Models.StatusKb("VmHWM");
        var total = Stopwatch.StartNew();
        torch.manual_seed(1);
        using var model = Models.Create(name);
        long parameters = Models.Parameters(model);
        model.train();
        int batch = Models.TokensPerPass / length;
        var g = new Generator(2);
        using var x = randn(new long[] { batch, length, Models.Hidden }, generator: g);
        using var w = randn(new long[] { batch, length, Models.Hidden }, generator: g);
        var times = new List<double>();
        for (int i = 0; i <= passes; i++)
        {
            if (i == 1 && times[0] * passes > budgetS * 1000) passes = Math.Max(1, (int)(budgetS * 1000 / times[0]));
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                model.zero_grad();
                (model.forward(x) * w).mean().backward();
            }
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        var timed = times.Skip(1).OrderBy(t => t).ToList();
        double median = timed.Count % 2 == 1 ? timed[timed.Count / 2] : (timed[timed.Count / 2 - 1] + timed[timed.Count / 2]) / 2;
        long peakKb = Models.StatusKb("VmHWM");
        Console.WriteLine(FormattableString.Invariant(
            $"RESULT point {name} {length} {batch} {parameters} {passes} {times[0]:F1} {median:F1} {timed[0]:F1} {peakKb} {baseKb} {total.Elapsed.TotalSeconds:F1}"));
        return 0;
    }

    public static int Stream(string name, int threads)
    {
        torch.set_num_threads(threads);
        torch.manual_seed(1);
        using var model = Models.Create(name);
        model.eval();
        long parameters = Models.Parameters(model);
        var g = new Generator(3);
        const int warmup = 20, steps = 200;
        using var xs = randn(new long[] { 1, warmup + steps, Models.Hidden }, generator: g);
        using var noGrad = torch.no_grad();
        StreamingState? state = null;
        double elapsedMs = 0;
        string shapes = "";
        long floats = 0;
        int tensorCount = 0;
        for (int t = 0; t < warmup + steps; t++)
        {
            using var xt = xs[.., t..(t + 1), ..];
            var sw = Stopwatch.StartNew();
            var (y, next) = model.Stream(xt, state);
            y.Dispose();
            if (t >= warmup) elapsedMs += sw.Elapsed.TotalMilliseconds;
            state?.Dispose();
            state = next;
            if (t == 0)
            {
                floats = Floats(next);
                tensorCount = next.TensorCount;
                shapes = Shapes(next.Children.Count > 0 ? next.Children[0] : next, "");
            }
        }
        state?.Dispose();
        long perLayer = floats / model.NumBlocks;
        Console.WriteLine(FormattableString.Invariant(
            $"RESULT stream {name} {parameters} {floats} {perLayer} {tensorCount} {elapsedMs * 1000 / steps:F1} {(shapes.Length == 0 ? "-" : shapes)}"));
        return 0;
    }

    /// <summary>Real scalars per sequence of the state and its children (complex counts twice).</summary>
    private static long Floats(StreamingState s) =>
        s.Tensors.Values.Sum(t => t.numel() * (t.is_complex() ? 2 : 1)) / s.BatchSize + s.Children.Sum(Floats);

    /// <summary>"name[shape]dtype" of the tensors of one block's state, joined by ';' (no spaces).</summary>
    private static string Shapes(StreamingState s, string prefix)
    {
        var parts = s.Tensors.Select(kv => $"{prefix}{kv.Key}[{string.Join("x", kv.Value.shape)}]{kv.Value.dtype}").ToList();
        for (int i = 0; i < s.Children.Count; i++) parts.Add(Shapes(s.Children[i], $"{prefix}{i}."));
        return string.Join(";", parts.Where(p => p.Length > 0));
    }
}

/// <summary>One training point's outcome.</summary>
internal sealed record Point(string Model, int Length, int Batch, string Status, long Parameters = 0, int Passes = 0,
    double WarmupMs = 0, double MedianMs = 0, double MinMs = 0, long PeakKb = 0, long BaseKb = 0, double WallS = 0)
{
    public bool Ok => Status == "ok";
    public double TokensPerSecond => Ok ? Models.TokensPerPass / (MedianMs / 1000) : double.NaN;
    public double PeakMb => PeakKb / 1024.0;
    public double IncrementMb => (PeakKb - BaseKb) / 1024.0;
}

/// <summary>One model's streaming outcome.</summary>
internal sealed record StreamPoint(string Model, string Status, long Parameters = 0, long Floats = 0, long FloatsPerLayer = 0,
    int TensorCount = 0, double MicrosPerStep = 0, string Shapes = "");

/// <summary>The parent: runs the children, writes the CSVs and the PNG, prints the table.</summary>
internal static class Parent
{
    public static int Run(string[] args)
    {
        string outDir = Option(args, "--out", "docs");
        int passes = int.Parse(Option(args, "--passes", "3"));
        int threads = int.Parse(Option(args, "--threads", "2"));
        double pointTimeout = double.Parse(Option(args, "--point-timeout", "180"));
        double memCapGb = double.Parse(Option(args, "--mem-cap-gb", "8"));
        double passBudget = double.Parse(Option(args, "--pass-budget", "60"));
        double budgetMin = double.Parse(Option(args, "--budget-min", "25"));
        var models = Option(args, "--models", string.Join(",", Models.All)).Split(',');
        var lengths = Option(args, "--lengths", string.Join(",", Models.Lengths)).Split(',').Select(int.Parse).ToArray();
        Directory.CreateDirectory(outDir);
        var clock = Stopwatch.StartNew();
        var points = new List<Point>();
        var streams = new List<StreamPoint>();
        foreach (var name in models)
        {
            string? failedAt = null;
            foreach (var length in lengths)
            {
                int batch = Models.TokensPerPass / length;
                Point p;
                if (failedAt is not null)
                    p = new Point(name, length, batch, $"skipped ({failedAt})");
                else if (clock.Elapsed.TotalMinutes > budgetMin)
                    p = new Point(name, length, batch, $"not run (past the {budgetMin:F0} min budget)");
                else
                {
                    var (status, fields) = RunChild(new[] { "point", name, $"{length}", $"{passes}", $"{threads}", $"{passBudget}" }, pointTimeout, memCapGb);
                    p = status != "ok" ? new Point(name, length, batch, status) : new Point(name, length, int.Parse(fields[4]), "ok",
                        long.Parse(fields[5]), int.Parse(fields[6]), double.Parse(fields[7]), double.Parse(fields[8]),
                        double.Parse(fields[9]), long.Parse(fields[10]), long.Parse(fields[11]), double.Parse(fields[12]));
                    if (!p.Ok) failedAt = $"{status} at L={length}";
                }
                points.Add(p);
                Console.Error.WriteLine(p.Ok
                    ? $"[{clock.Elapsed:mm\\:ss}] {name,-19} L={length,5} B={p.Batch,2}: median {p.MedianMs,8:F1} ms ({p.TokensPerSecond,8:N0} tok/s), warm-up {p.WarmupMs:F0} ms, peak {p.PeakMb:F0} MB (+{p.IncrementMb:F0})"
                    : $"[{clock.Elapsed:mm\\:ss}] {name,-19} L={length,5}: {p.Status}");
            }
            var (sstatus, s) = RunChild(new[] { "stream", name, $"{threads}" }, pointTimeout, memCapGb);
            var sp = sstatus != "ok" ? new StreamPoint(name, sstatus) : new StreamPoint(name, "ok", long.Parse(s[3]), long.Parse(s[4]),
                long.Parse(s[5]), int.Parse(s[6]), double.Parse(s[7]), s[8]);
            streams.Add(sp);
            Console.Error.WriteLine($"[{clock.Elapsed:mm\\:ss}] {name,-19} stream: {sp.Status} {sp.FloatsPerLayer} floats/layer, {sp.MicrosPerStep:F0} us/step, {sp.Shapes}");
        }
        WriteCsv(Path.Combine(outDir, "which-model.csv"), points);
        WriteStreamCsv(Path.Combine(outDir, "which-model-streaming.csv"), streams);
        Plotting.Save(Path.Combine(outDir, "which-model.png"), points, models, lengths, threads);
        Console.WriteLine(Table(points, streams, models, lengths));
        Console.WriteLine($"Total run time: {clock.Elapsed.TotalMinutes:F1} min");
        return 0;
    }

    /// <summary>Redraws which-model.png in <paramref name="dir"/> from its which-model.csv (no measurement).</summary>
    public static int Replot(string dir)
    {
        var points = new List<Point>();
        foreach (var line in File.ReadLines(Path.Combine(dir, "which-model.csv")).Skip(1))
        {
            var f = line.Split(',');
            points.Add(f[3] != "ok" ? new Point(f[0], int.Parse(f[1]), int.Parse(f[2]), f[3]) : new Point(f[0], int.Parse(f[1]), int.Parse(f[2]), "ok",
                long.Parse(f[4]), int.Parse(f[5]), double.Parse(f[6]), double.Parse(f[7]), double.Parse(f[8]),
                (long)(double.Parse(f[10]) * 1024), (long)(double.Parse(f[11]) * 1024), double.Parse(f[13])));
        }
        var models = points.Select(p => p.Model).Distinct().ToArray();
        var lengths = points.Select(p => p.Length).Distinct().OrderBy(l => l).ToArray();
        Plotting.Save(Path.Combine(dir, "which-model.png"), points, models, lengths, 2);
        return 0;
    }

    private static string Option(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>Runs this program with <paramref name="childArgs"/>; kills it past the timeout or the RSS cap.</summary>
    private static (string Status, string[] Fields) RunChild(string[] childArgs, double timeoutS, double memCapGb)
    {
        var self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(Parent).Assembly.Location);
        foreach (var a in childArgs) psi.ArgumentList.Add(a);
        using var proc = Process.Start(psi)!;
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        proc.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        proc.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        proc.BeginOutputReadLine();
        proc.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        long maxRssKb = 0;
        string? killed = null;
        while (!proc.WaitForExit(200))
        {
            try { maxRssKb = Math.Max(maxRssKb, Models.StatusKb("VmRSS", proc.Id)); } catch (IOException) { }
            if (maxRssKb > memCapGb * 1024 * 1024) killed = $"over {memCapGb:F0} GB RSS";
            else if (sw.Elapsed.TotalSeconds > timeoutS) killed = $"over {timeoutS:F0} s";
            if (killed is not null) { proc.Kill(entireProcessTree: true); proc.WaitForExit(); break; }
        }
        proc.WaitForExit();
        if (killed is not null) return (killed, Array.Empty<string>());
        var line = stdout.ToString().Split('\n').FirstOrDefault(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        if (proc.ExitCode != 0 || line is null)
        {
            var err = stderr.ToString().Split('\n').FirstOrDefault(l => l.Contains("Exception", StringComparison.Ordinal))?.Trim() ?? "";
            return ($"failed (exit {proc.ExitCode}{(err.Length > 0 ? ": " + err[..Math.Min(err.Length, 120)] : "")})", Array.Empty<string>());
        }
        return ("ok", line.Trim().Split(' '));
    }

    private static void WriteCsv(string path, List<Point> points)
    {
        var sb = new StringBuilder("model,L,B,status,parameters,timed_passes,warmup_ms,median_ms,min_ms,tokens_per_s,peak_rss_mb,baseline_rss_mb,increment_mb,child_wall_s\n");
        foreach (var p in points)
            sb.AppendLine(p.Ok
                ? FormattableString.Invariant($"{p.Model},{p.Length},{p.Batch},ok,{p.Parameters},{p.Passes},{p.WarmupMs:F1},{p.MedianMs:F1},{p.MinMs:F1},{p.TokensPerSecond:F0},{p.PeakMb:F1},{p.BaseKb / 1024.0:F1},{p.IncrementMb:F1},{p.WallS:F1}")
                : $"{p.Model},{p.Length},{p.Batch},\"{p.Status.Replace("\"", "'")}\",,,,,,,,,,");
        File.WriteAllText(path, sb.ToString());
    }

    private static void WriteStreamCsv(string path, List<StreamPoint> streams)
    {
        var sb = new StringBuilder("model,status,parameters,state_floats_model,state_floats_per_layer,state_tensors,us_per_step,block_state_tensors\n");
        foreach (var s in streams)
            sb.AppendLine(FormattableString.Invariant($"{s.Model},{s.Status},{s.Parameters},{s.Floats},{s.FloatsPerLayer},{s.TensorCount},{s.MicrosPerStep:F1},{s.Shapes}"));
        File.WriteAllText(path, sb.ToString());
    }

    private static string Table(List<Point> points, List<StreamPoint> streams, string[] models, int[] lengths)
    {
        string Cell(Point? p, Func<Point, string> ok) => p is null ? "" : p.Ok ? ok(p) : p.Status.StartsWith("skipped", StringComparison.Ordinal) ? "-" : p.Status;
        var sb = new StringBuilder();
        sb.AppendLine("Training throughput, tokens/s (median; B x L = 16,384 tokens per pass):");
        sb.AppendLine();
        sb.AppendLine("| model | params | " + string.Join(" | ", lengths.Select(l => $"L={l}")) + " | state floats/layer | us/token streamed |");
        sb.AppendLine("|---|---:|" + string.Concat(lengths.Select(_ => "---:|")) + "---:|---:|");
        foreach (var m in models)
        {
            var s = streams.First(x => x.Model == m);
            long parameters = points.FirstOrDefault(p => p.Model == m && p.Ok)?.Parameters ?? s.Parameters;
            sb.AppendLine($"| {m} | {parameters:N0} | " + string.Join(" | ", lengths.Select(l => Cell(points.FirstOrDefault(p => p.Model == m && p.Length == l), p => $"{p.TokensPerSecond:N0}")))
                + $" | {(s.Status == "ok" ? $"{s.FloatsPerLayer:N0}" : s.Status)} | {(s.Status == "ok" ? $"{s.MicrosPerStep:N0}" : "")} |");
        }
        sb.AppendLine();
        sb.AppendLine("Peak RSS in MB (increment over the baseline after TorchSharp loaded in parentheses):");
        sb.AppendLine();
        sb.AppendLine("| model | " + string.Join(" | ", lengths.Select(l => $"L={l}")) + " |");
        sb.AppendLine("|---|" + string.Concat(lengths.Select(_ => "---:|")));
        foreach (var m in models)
            sb.AppendLine($"| {m} | " + string.Join(" | ", lengths.Select(l => Cell(points.FirstOrDefault(p => p.Model == m && p.Length == l), p => $"{p.PeakMb:N0} (+{p.IncrementMb:N0})"))) + " |");
        return sb.ToString();
    }
}

/// <summary>The PNG: tokens/s and peak-memory increment against L (log x), one curve per model.</summary>
internal static class Plotting
{
    public static void Save(string path, List<Point> points, string[] models, int[] lengths, int threads)
    {
        double[] ticks = lengths.Select(l => Math.Log2(l)).ToArray();
        string[] labels = lengths.Select(l => l.ToString(CultureInfo.InvariantCulture)).ToArray();
        var speed = new ScottPlot.Plot();
        var memory = new ScottPlot.Plot();
        foreach (var m in models)
        {
            var ok = points.Where(p => p.Model == m && p.Ok).OrderBy(p => p.Length).ToList();
            if (ok.Count == 0) continue;
            double[] xs = ok.Select(p => Math.Log2(p.Length)).ToArray();
            var a = speed.Add.Scatter(xs, ok.Select(p => p.TokensPerSecond / 1000).ToArray());
            a.LegendText = m;
            a.MarkerSize = 7;
            var b = memory.Add.Scatter(xs, ok.Select(p => p.IncrementMb).ToArray());
            b.LegendText = m;
            b.MarkerSize = 7;
            b.Color = a.Color;
        }
        foreach (var (plot, ylabel) in new[] { (speed, "training throughput (k tokens/s)"), (memory, "peak RSS increment (MB)") })
        {
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks, labels);
            plot.XLabel("sequence length L (log scale; B x L = 16,384 tokens per pass)");
            plot.YLabel(ylabel);
            plot.Axes.SetLimitsX(ticks[0] - 0.3, ticks[^1] + 0.3);
            plot.ShowLegend(ScottPlot.Edge.Right);
        }
        speed.Axes.AutoScaleY();
        speed.Axes.SetLimitsY(0, speed.Axes.GetLimits().Top * 1.05);
        memory.Axes.AutoScaleY();
        memory.Axes.SetLimitsY(0, memory.Axes.GetLimits().Top * 1.05);
        speed.Title($"Which model: forward+backward, hidden 128, 4 blocks, float32, CPU, {threads} threads");
        memory.Title("Peak memory of one forward+backward (fresh process per point)");
        const int width = 1100, height = 520;
        using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(width, 2 * height));
        surface.Canvas.Clear(SkiaSharp.SKColors.White);
        int top = 0;
        foreach (var plot in new[] { speed, memory })
        {
            using var panel = SkiaSharp.SKBitmap.Decode(plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png));
            surface.Canvas.DrawBitmap(panel, 0, top);
            top += height;
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
