using Discretax.Build;

namespace Discretax.Tests.Build;

/// <summary>
/// The libLibTorchSharp.so patch on a real, unpatched copy of the library, extracted from the TorchSharp package
/// file (copied into the test output as TestAssets/torchsharp.nupkg).
/// </summary>
public sealed class ElfVersionNeedsTests : IDisposable
{
    private static readonly Lazy<string> OriginalFile = new(ExtractOriginal);

    /// <summary>The unpatched libLibTorchSharp.so, extracted once from the TorchSharp package file.</summary>
    private static string Original => OriginalFile.Value;

    private static string ExtractOriginal()
    {
        string package = Path.Combine(AppContext.BaseDirectory, "TestAssets", "torchsharp.nupkg");
        string path = Path.Combine(Path.GetTempPath(), $"discretax-libLibTorchSharp-{Environment.ProcessId}.original.so");
        using var zip = new System.IO.Compression.ZipArchive(File.OpenRead(package));
        using (var entry = zip.GetEntry("runtimes/linux-x64/native/libLibTorchSharp.so")!.Open())
        using (var file = File.Create(path))
            entry.CopyTo(file);
        return path;
    }

    private readonly string _dir = Directory.CreateTempSubdirectory("discretax-elf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Copy(string name = "lib.so")
    {
        string path = Path.Combine(_dir, name);
        File.Copy(Original, path);
        return path;
    }

    [Fact]
    public void TheShippedLibraryNeedsGlibcxx3432FromLibstdcxxAsAStrongVersion()
    {
        var needs = ElfVersionNeeds.Read(Original);
        var need = needs.Single(n => n.Version == "GLIBCXX_3.4.32");
        need.Library.Should().Be("libstdc++.so.6");
        need.IsWeak.Should().BeFalse();
        needs.Should().Contain(n => n.Library == "libc.so.6" && n.Version == "GLIBC_2.2.5");
        needs.Should().OnlyContain(n => !n.IsWeak);
    }

    [Fact]
    public void MarkWeakSetsTheFlagAndChangesNothingElse()
    {
        string path = Copy();
        byte[] before = File.ReadAllBytes(path);
        var need = ElfVersionNeeds.Read(path).Single(n => n.Version == "GLIBCXX_3.4.32");

        ElfVersionNeeds.MarkWeak(path, "libstdc++.so.6", "GLIBCXX_3.4.32").Should().Be(ElfPatchOutcome.Patched);

        byte[] after = File.ReadAllBytes(path);
        after.Length.Should().Be(before.Length);
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        changed.Should().Equal(new[] { (int)need.FlagsOffset }, "only the low byte of vna_flags may change");
        after[need.FlagsOffset].Should().Be((byte)(before[need.FlagsOffset] | ElfVersionNeeds.VerFlagWeak));
        var reread = ElfVersionNeeds.Read(path);
        reread.Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak.Should().BeTrue();
        reread.Where(n => n.Version != "GLIBCXX_3.4.32").Should().OnlyContain(n => !n.IsWeak);
    }

    [Fact]
    public void MarkWeakIsIdempotent()
    {
        string path = Copy();
        ElfVersionNeeds.MarkWeak(path, "libstdc++.so.6", "GLIBCXX_3.4.32").Should().Be(ElfPatchOutcome.Patched);
        byte[] once = File.ReadAllBytes(path);
        ElfVersionNeeds.MarkWeak(path, "libstdc++.so.6", "GLIBCXX_3.4.32").Should().Be(ElfPatchOutcome.AlreadyWeak);
        File.ReadAllBytes(path).Should().Equal(once);
    }

    /// <summary>
    /// An output copy that is a hard link to another file (as MSBuild's hard-link copies into the NuGet cache make
    /// it) is patched as a new file: the other link keeps the original bytes, and the file keeps its permissions.
    /// </summary>
    [SkippableFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void AHardLinkedCopyIsPatchedWithoutChangingTheOtherLink()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "hard links are made with ln here");
        string original = Copy();
        string linked = original + ".link";
        using (var ln = System.Diagnostics.Process.Start("ln", new[] { original, linked })!) ln.WaitForExit();
        File.Exists(linked).Should().BeTrue();
        byte[] before = File.ReadAllBytes(original);
        var mode = File.GetUnixFileMode(linked);
        ElfVersionNeeds.MarkWeak(linked, "libstdc++.so.6", "GLIBCXX_3.4.32").Should().Be(ElfPatchOutcome.Patched);
        File.ReadAllBytes(original).Should().Equal(before, "the other hard link (the cache's copy) must not change");
        ElfVersionNeeds.Read(linked).Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak.Should().BeTrue();
        File.GetUnixFileMode(linked).Should().Be(mode);
        File.Exists(linked + ".discretax-patch").Should().BeFalse();
    }

    [Fact]
    public void AVersionTheFileDoesNotNeedIsReportedAndNothingIsWritten()
    {
        string path = Copy();
        byte[] before = File.ReadAllBytes(path);
        ElfVersionNeeds.MarkWeak(path, "libstdc++.so.6", "GLIBCXX_9.9.99").Should().Be(ElfPatchOutcome.NotNeeded);
        ElfVersionNeeds.MarkWeak(path, "libfoo.so.1", "GLIBCXX_3.4.32").Should().Be(ElfPatchOutcome.NotNeeded);
        File.ReadAllBytes(path).Should().Equal(before);
    }

    [Fact]
    public void EveryCopyOfTheLibraryInThisBuildOutputWasPatchedByTheBuild()
    {
        string built = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        File.Exists(built).Should().BeTrue("the test project copies TorchSharp's natives into its output");
        // Including a cpu/ folder that TorchSharp's fallback loader may have left: no unpatched copy can load.
        var copies = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).ToList();
        copies.Should().Contain(built);
        foreach (string copy in copies)
            ElfVersionNeeds.Read(copy).Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak.Should().BeTrue(copy);
        // The NuGet cache copy (our TestAssets copy of it) stays unpatched.
        ElfVersionNeeds.Read(Original).Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak.Should().BeFalse();
    }

    [Fact]
    public void ANonElfFileIsRefusedWithAClearMessage()
    {
        string path = Path.Combine(_dir, "text.so");
        File.WriteAllText(path, new string('x', 200));
        var act = () => ElfVersionNeeds.MarkWeak(path, "libstdc++.so.6", "GLIBCXX_3.4.32");
        act.Should().Throw<InvalidDataException>().WithMessage("*text.so*is not an ELF file*");
    }

    [Theory]
    [InlineData(10, "*shorter than an ELF64 header*")]
    [InlineData(64, "*truncated*")]
    [InlineData(4096, "*truncated*")]
    public void ATruncatedFileIsRefusedWithAClearMessage(int length, string message)
    {
        string path = Path.Combine(_dir, "cut.so");
        File.WriteAllBytes(path, File.ReadAllBytes(Original).Take(length).ToArray());
        var act = () => ElfVersionNeeds.MarkWeak(path, "libstdc++.so.6", "GLIBCXX_3.4.32");
        act.Should().Throw<InvalidDataException>().WithMessage(message);
        File.ReadAllBytes(path).Length.Should().Be(length, "a refused file is not written");
    }

    [Theory]
    [InlineData(4, 1, "*not a 64-bit ELF file*")]
    [InlineData(5, 2, "*not a little-endian ELF file*")]
    public void AnElfOfAnotherKindIsRefused(int offset, byte value, string message)
    {
        string path = Copy();
        byte[] bytes = File.ReadAllBytes(path);
        bytes[offset] = value;
        File.WriteAllBytes(path, bytes);
        var act = () => ElfVersionNeeds.Read(path);
        act.Should().Throw<InvalidDataException>().WithMessage(message);
    }
}
