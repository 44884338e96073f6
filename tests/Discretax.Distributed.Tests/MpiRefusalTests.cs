using static TorchSharp.torch;

namespace Discretax.Distributed.Tests;

/// <summary>
/// Bad use of the binding in this process, where MPI is never initialized: each is one clear .NET exception, thrown
/// before any native MPI call. Tensor arguments are checked first (an <see cref="ArgumentException"/> naming
/// <c>tensor</c>), then the state (<see cref="InvalidOperationException"/>). No test here initializes MPI, so the state
/// is shared safely by the tests running in parallel.
/// </summary>
public sealed class MpiRefusalTests
{
    [Fact]
    public void CollectivesBeforeInitializeAreRefused()
    {
        Mpi.IsInitialized.Should().BeFalse();
        using var t = ones(4);
        foreach (var (name, call) in new (string, Action)[]
                 {
                     ("AllReduceSum", () => Mpi.AllReduceSum(t)),
                     ("Broadcast", () => Mpi.Broadcast(t)),
                     ("Barrier", Mpi.Barrier),
                     ("Rank", () => _ = Mpi.Rank),
                     ("WorldSize", () => _ = Mpi.WorldSize),
                     ("LibraryVersion", () => _ = Mpi.LibraryVersion),
                 })
            call.Should().Throw<InvalidOperationException>(name)
                .WithMessage($"Mpi.{name}: MPI is not initialized. Call Mpi.Initialize()*");
        using var net = nn.Linear(2, 2);
        FluentActions.Invoking(() => new DataParallel(net)).Should().Throw<InvalidOperationException>().WithMessage("*not initialized*");
        Mpi.Shutdown();   // before Initialize: nothing to do
        Mpi.IsInitialized.Should().BeFalse();
    }

    [Fact]
    public void ANonCpuTensorIsRefused()
    {
        // The meta device stands for every non-CPU device here (the same check refuses CUDA; see the next test).
        using var t = empty(4, device: META);
        FluentActions.Invoking(() => Mpi.AllReduceSum(t)).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "tensor").WithMessage("AllReduceSum: expected a CPU tensor (MPI reads and writes host memory); got one on meta*");
        FluentActions.Invoking(() => Mpi.Broadcast(t)).Should().Throw<ArgumentException>().WithMessage("Broadcast: expected a CPU tensor*");
    }

    [SkippableFact]
    public void ACudaTensorIsRefused()
    {
        Skip.IfNot(cuda.is_available(), "CUDA is not available (the meta-device test covers the same check)");
        using var t = ones(4, device: CUDA);
        FluentActions.Invoking(() => Mpi.AllReduceSum(t)).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "tensor").WithMessage("*expected a CPU tensor*got one on cuda*NCCL*");
    }

    [Fact]
    public void ANonContiguousTensorIsRefused()
    {
        using var t = ones(2, 3).t();
        FluentActions.Invoking(() => Mpi.AllReduceSum(t)).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "tensor")
            .WithMessage("AllReduceSum: expected a contiguous tensor*got a non-contiguous view of shape [3, 2] with strides [1, 3]*");
        using var column = ones(4, 4).narrow(1, 1, 1);
        FluentActions.Invoking(() => Mpi.Broadcast(column)).Should().Throw<ArgumentException>().WithMessage("Broadcast: expected a contiguous tensor*");
    }

    [Theory]
    [InlineData(ScalarType.Int64)]
    [InlineData(ScalarType.Int32)]
    [InlineData(ScalarType.Bool)]
    [InlineData(ScalarType.ComplexFloat64)]
    public void AllReduceSumRefusesDtypesItDoesNotSum(ScalarType dtype)
    {
        using var t = ones(4, dtype);
        FluentActions.Invoking(() => Mpi.AllReduceSum(t)).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "tensor")
            .WithMessage($"AllReduceSum: expected a float32, float64, bfloat16 or float16 tensor*got {dtype}.*");
    }

    [Fact]
    public void NullDisposedAndSparseTensorsAreRefused()
    {
        FluentActions.Invoking(() => Mpi.AllReduceSum(null!)).Should().Throw<ArgumentNullException>().Where(e => e.ParamName == "tensor");
        var t = ones(3);
        t.Dispose();
        FluentActions.Invoking(() => Mpi.Broadcast(t)).Should().Throw<ArgumentException>().WithMessage("Broadcast: the tensor has been disposed*");
        using var sparse = eye(3).to_sparse();
        FluentActions.Invoking(() => Mpi.AllReduceSum(sparse)).Should().Throw<ArgumentException>().WithMessage("*expected a dense tensor*");
    }

    [Fact]
    public void DataParallelChecksItsArgumentsFirst()
    {
        using var net = nn.Linear(2, 2);
        FluentActions.Invoking(() => new DataParallel(null!)).Should().Throw<ArgumentNullException>().Where(e => e.ParamName == "module");
        FluentActions.Invoking(() => new DataParallel(net, bucketBytes: 0)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "bucketBytes");
        using var onMeta = nn.Linear(2, 2, device: META);
        FluentActions.Invoking(() => new DataParallel(onMeta)).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "module").WithMessage("Expected a module on the CPU*parameter 'weight' is on meta*");
    }

    [Fact]
    public void ALibraryThatCannotBeLoadedIsADllNotFoundException()
    {
        FluentActions.Invoking(() => Mpi.Initialize("/nonexistent/libmpi.so.40")).Should().Throw<DllNotFoundException>()
            .WithMessage("Could not load the MPI library '/nonexistent/libmpi.so.40'*apt-get install openmpi-bin libopenmpi-dev*DISCRETAX_MPI_LIBRARY*");
        Mpi.IsInitialized.Should().BeFalse();
    }

    [Fact]
    public void ALibraryThatIsNotMpiIsRefused()
    {
        FluentActions.Invoking(() => Mpi.Initialize("libm.so.6")).Should().Throw<NotSupportedException>()
            .WithMessage("'libm.so.6' is not an MPI library*");
        Mpi.IsInitialized.Should().BeFalse();
    }

    [Fact]
    public void AnMpichAbiLibraryIsRefusedByItsVersionAndExports()
    {
        // MPICH-ABI libraries export no ompi_mpi_comm_world; their version string names them.
        MpiLibrary.AbiProblem("libmpich.so.12", "MPICH Version:\t4.0.2\nMPICH Release date: ...", exportsOpenMpiHandles: false)
            .Should().StartWith("'libmpich.so.12' is MPICH Version: 4.0.2, with the MPICH ABI, whose handles are integers (MPI_COMM_WORLD = 0x44000000).")
            .And.Contain("binds Open MPI's ABI only").And.Contain("apt-get install openmpi-bin libopenmpi-dev");
        MpiLibrary.AbiProblem("libmpi.so.12", "Intel(R) MPI Library 2021.6 for Linux* OS", false).Should().Contain("the MPICH ABI");
        MpiLibrary.AbiProblem("libother.so", "Some MPI 1.0", false).Should().Contain("an ABI other than Open MPI's (it exports no ompi_mpi_comm_world)");
        MpiLibrary.AbiProblem("libmpi.so.40", "Open MPI v4.1.4", true).Should().BeNull();
    }

    [SkippableFact]
    public void AnInstalledMpichLibraryIsRefused()
    {
        // Runs where an MPICH library is installed next to Open MPI (apt-get install libmpich12), or where
        // DISCRETAX_TEST_MPICH_LIBRARY names one (e.g. unpacked from the package); skips elsewhere.
        string? mpich = new[] { Environment.GetEnvironmentVariable("DISCRETAX_TEST_MPICH_LIBRARY") ?? "", "/usr/lib/x86_64-linux-gnu/libmpich.so.12",
                "/usr/lib/aarch64-linux-gnu/libmpich.so.12", "/usr/lib64/mpich/lib/libmpi.so.12" }
            .FirstOrDefault(File.Exists);
        Skip.If(mpich is null, "no MPICH library installed (libmpich.so.12; or name one in DISCRETAX_TEST_MPICH_LIBRARY)");
        FluentActions.Invoking(() => Mpi.Initialize(mpich)).Should().Throw<NotSupportedException>()
            .WithMessage($"'{mpich}' is MPICH Version: *, with the MPICH ABI, whose handles are integers (MPI_COMM_WORLD = 0x44000000)*");
        Mpi.IsInitialized.Should().BeFalse();
    }
}
