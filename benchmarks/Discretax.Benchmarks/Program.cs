using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Discretax.Benchmarks;

/// <summary>
/// Entry point: <c>dotnet run -c Release --project benchmarks/Discretax.Benchmarks -- --filter '*DeltaRule*'</c>.
/// <c>--fast</c> runs a smoke pass (one launch, few iterations) that only proves the benchmarks run.
/// Benchmarks run in process so that the libLibTorchSharp.so patch of this build output applies.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        bool fast = args.Contains("--fast");
        var rest = args.Where(a => a != "--fast").ToArray();
        // In process (so this build's patched libLibTorchSharp.so loads), with room for the slow reference loops.
        var toolchain = new InProcessEmitToolchain(TimeSpan.FromMinutes(30), logOutput: true);
        var job = fast
            ? Job.Dry.WithToolchain(toolchain).WithIterationCount(1).WithWarmupCount(0)
            : Job.Default.WithToolchain(toolchain).WithWarmupCount(2).WithIterationCount(8).WithLaunchCount(1);
        var config = DefaultConfig.Instance.AddJob(job.AsDefault()).WithOptions(ConfigOptions.DisableOptimizationsValidator);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest, config);
    }
}
