using System.Diagnostics;

namespace Discretax.Distributed.Tests;

/// <summary>What one <c>mpirun</c> job of the test program left: its exit code, output and each rank's result file.</summary>
/// <param name="ExitCode">mpirun's exit code (-1 when it was killed at the timeout).</param>
/// <param name="TimedOut">Whether the job ran past its timeout and was killed.</param>
/// <param name="Seconds">The wall time of the job.</param>
/// <param name="Output">mpirun's standard output and standard error.</param>
/// <param name="Ranks">Each rank's <c>key=value</c> lines (rank -> key -> value); a rank that wrote nothing is missing.</param>
public sealed record MpiJob(int ExitCode, bool TimedOut, double Seconds, string Output, IReadOnlyDictionary<int, IReadOnlyDictionary<string, string>> Ranks)
{
    /// <summary>The value of <paramref name="key"/> on <paramref name="rank"/>, failing with the job's output when absent.</summary>
    public string Value(int rank, string key)
    {
        Ranks.Should().ContainKey(rank, $"rank {rank} should have written its results; mpirun said:\n{Output}");
        Ranks[rank].Should().ContainKey(key, $"rank {rank} should have written '{key}'; mpirun said:\n{Output}");
        return Ranks[rank][key];
    }

    /// <summary>The space-separated numbers of <paramref name="key"/> on <paramref name="rank"/>.</summary>
    public double[] Numbers(int rank, string key) =>
        Value(rank, key).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}

/// <summary>
/// Starts the test program (tests/Discretax.Distributed.TestProgram, copied next to the tests by the build) under
/// Open MPI: <c>mpirun --oversubscribe -np 2 dotnet Discretax.Distributed.TestProgram.dll MODE DIR</c>. As root
/// (containers, CI) Open MPI refuses to start without consent: the launcher sets <c>OMPI_ALLOW_RUN_AS_ROOT=1</c> and
/// <c>OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1</c> (the same as <c>--allow-run-as-root</c>). Every job has a timeout, after which
/// mpirun and its processes are killed: a hang fails a test instead of stopping the suite.
/// </summary>
public static class MpiLauncher
{
    /// <summary>The processes of every job.</summary>
    public const int Processes = 2;

    private static readonly Lazy<string?> SkipReasonValue = new(FindSkipReason);

    /// <summary>Why the MPI jobs cannot run here (no <c>mpirun</c>, or not Open MPI's), or null when they can.</summary>
    public static string? SkipReason => SkipReasonValue.Value;

    /// <summary>The <c>mpirun</c> on the PATH, or null.</summary>
    public static string? Mpirun { get; } = FindOnPath("mpirun");

    /// <summary>Runs the test program in <paramref name="mode"/> on <see cref="Processes"/> ranks.</summary>
    /// <param name="mode">checks, fail-throw, fail-exit or fail-return.</param>
    /// <param name="timeout">The most the job may take.</param>
    public static MpiJob Run(string mode, TimeSpan timeout)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"discretax-mpi-{mode}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        try
        {
            var (exitCode, timedOut, seconds, output) = Start("Discretax.Distributed.TestProgram.dll", [mode, directory], timeout);
            var ranks = new Dictionary<int, IReadOnlyDictionary<string, string>>();
            for (int r = 0; r < Processes; r++)
            {
                string file = Path.Combine(directory, $"rank{r}.txt");
                if (!File.Exists(file)) continue;
                var lines = new Dictionary<string, string>();
                foreach (var line in File.ReadAllLines(file))
                {
                    int eq = line.IndexOf('=');
                    if (eq > 0) lines[line[..eq]] = line[(eq + 1)..];
                }
                ranks[r] = lines;
            }
            return new MpiJob(exitCode, timedOut, seconds, output, ranks);
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Runs <c>mpirun --oversubscribe -np 2 dotnet PROGRAM ARGUMENTS</c>, the program being a .dll next to the tests
    /// (the build copies a referenced program there), and kills the job and its processes at the timeout.
    /// </summary>
    /// <param name="program">The program's file name, e.g. <c>MnistClassifier.dll</c>.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="timeout">The most the job may take.</param>
    /// <returns>mpirun's exit code (-1 when killed), whether it timed out, the seconds it took and its output.</returns>
    public static (int ExitCode, bool TimedOut, double Seconds, string Output) Start(string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        string path = Path.Combine(AppContext.BaseDirectory, program);
        File.Exists(path).Should().BeTrue($"the build copies the program to {path}");
        var start = new ProcessStartInfo(Mpirun!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--oversubscribe", "-np", Processes.ToString(), DotnetHost(), path }.Concat(arguments))
            start.ArgumentList.Add(a);
        // Open MPI's consent to run as root (no effect for other users), one thread per rank on a small machine,
        // and no single-copy shared memory (process_vm_readv), which containers without ptrace rights refuse.
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        start.Environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none";
        start.Environment["OMP_NUM_THREADS"] = "1";
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        bool finished = process.WaitForExit(timeout);
        if (!finished) process.Kill(entireProcessTree: true);
        process.WaitForExit();   // the output is complete
        return (finished ? process.ExitCode : -1, !finished, clock.Elapsed.TotalSeconds, stdout.Result + stderr.Result);
    }

    /// <summary>The dotnet host running the tests (the SDK sets <c>DOTNET_HOST_PATH</c>), else <c>dotnet</c>.</summary>
    private static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host;
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }

    private static string? FindSkipReason()
    {
        if (!OperatingSystem.IsLinux()) return "the MPI tests run on Linux only (Open MPI's libmpi.so.40)";
        if (Mpirun is null)
            return "mpirun is not on the PATH: install Open MPI (apt-get install openmpi-bin libopenmpi-dev; .ci/run does) to run the 2-process tests";
        try
        {
            var info = new ProcessStartInfo(Mpirun, "--version") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(info)!;
            var err = p.StandardError.ReadToEndAsync();
            string version = p.StandardOutput.ReadToEnd() + err.Result;
            if (!p.WaitForExit(TimeSpan.FromSeconds(30))) { p.Kill(true); return $"{Mpirun} --version did not answer within 30 s"; }
            if (!version.Contains("Open MPI", StringComparison.Ordinal) && !version.Contains("OpenRTE", StringComparison.Ordinal))
                return $"{Mpirun} is not Open MPI's mpirun ({version.Split('\n')[0].Trim()}); Discretax.Distributed binds Open MPI only";
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            return $"{Mpirun} could not be started: {e.Message}";
        }
        return null;
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
