using System.Diagnostics;

namespace Discretax.Tests.Build;

/// <summary>Serial: these tests run <c>dotnet build</c> in child processes.</summary>
[CollectionDefinition(nameof(BuildProcessCollection), DisableParallelization = true)]
public sealed class BuildProcessCollection;

/// <summary>
/// The package's buildTransitive targets warn (DISCRETAX001) when an application's output has no libtorch native
/// library, and stay silent with a backend or with the warning turned off. Each case builds a small console project
/// that imports the targets as NuGet imports them from the package, with the package cache as set for this process.
/// </summary>
[Collection(nameof(BuildProcessCollection))]
public class BackendWarningTests
{
    [Theory]
    [InlineData(false, "", true)]
    [InlineData(true, "", false)]
    [InlineData(false, "-p:DiscretaxWarnWithoutTorchBackend=false", false)]
    public void AnAppWithoutABackendIsWarnedAtBuildTime(bool withBackend, string extraArgs, bool expectWarning)
    {
        var repo = RepositoryRoot();
        var dir = Directory.CreateTempSubdirectory("discretax-backend-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "App.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImportDirectoryBuildProps>false</ImportDirectoryBuildProps>
                    <ImportDirectoryBuildTargets>false</ImportDirectoryBuildTargets>
                    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="TorchSharp" Version="0.107.0" />
                    {(withBackend ? "<PackageReference Include=\"TorchSharp-cpu\" Version=\"0.107.0\" />" : "")}
                  </ItemGroup>
                  <Import Project="{Path.Combine(repo, "src", "Discretax", "buildTransitive", "Discretax.targets")}" />
                </Project>
                """);
            File.WriteAllText(Path.Combine(dir, "Program.cs"), "System.Console.WriteLine(TorchSharp.torch.ones(1).shape.Length);");
            var (code, output) = Run("dotnet", $"build \"{dir}\" -c Release -nologo {extraArgs}", dir);
            code.Should().Be(0, output);
            if (expectWarning)
                output.Should().Contain("warning DISCRETAX001").And.Contain("TorchSharp-cpu").And.Contain("TorchSharp-cuda-linux");
            else
                output.Should().NotContain("DISCRETAX001");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "Discretax.sln"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("The repository root (Discretax.sln) was not found above the test binaries.");
    }

    private static (int Code, string Output) Run(string file, string arguments, string workingDirectory)
    {
        var info = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit(600_000).Should().BeTrue("the build must finish within 10 minutes");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
