using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Discretax.Distributed;

/// <summary>
/// The MPI collectives data-parallel training needs, on <c>MPI_COMM_WORLD</c> of the system's Open MPI
/// (<c>libmpi.so.40</c>, bound through <c>NativeLibrary</c> and unmanaged function pointers; docs/distributed.md).
/// Start the processes with <c>mpirun -np N dotnet app.dll</c>; each calls <see cref="Initialize"/> (or runs its main
/// program through <see cref="Run"/>) and then the collectives, which every rank calls in the same order with tensors of
/// the same shape and dtype.
/// <para>
/// The collectives work in place on the memory of contiguous CPU tensors through their data pointer: no managed array
/// holds tensor data on the way, and autograd does not see the write. Misuse is refused before any native call: a
/// null, disposed, sparse, non-CPU or non-contiguous tensor, or a dtype the operation does not take, with an
/// <see cref="ArgumentException"/> naming the argument; a collective before <see cref="Initialize"/> or after
/// <see cref="Shutdown"/> with an <see cref="InvalidOperationException"/>.
/// </para>
/// <para>
/// A rank that fails must not leave the others waiting in a collective: <see cref="Run"/> calls <see cref="Abort"/>
/// when its program throws or returns a non-zero code, and <see cref="Initialize"/> installs a handler that aborts on
/// an unhandled exception. Open MPI's <c>mpirun</c> then ends every process of the job and exits with an error code; it
/// does the same when a process exits without <see cref="Shutdown"/> (<c>MPI_Finalize</c>).
/// </para>
/// </summary>
public static unsafe class Mpi
{
    private static readonly Lock Gate = new();
    private static MpiLibrary? library;
    // The library while MPI is live (initialized, not shut down), read without the lock by Abort: another thread may
    // hold the lock inside a collective that will never complete.
    private static volatile MpiLibrary? live;
    private static bool initialized, shutDown, abortHandlerInstalled;
    private static int rank, worldSize;
    private static int initThreadId;
    private static bool serializedCalls;

    /// <summary>The most elements (bytes for <see cref="Broadcast"/>) one MPI call moves, since its <c>count</c> is a C
    /// <c>int</c>: longer tensors go in pieces. 2^30; the tests set it smaller to check the pieces.</summary>
    internal static int MaxCount { get; set; } = 1 << 30;

    /// <summary>Whether <see cref="Initialize"/> has run and <see cref="Shutdown"/> has not.</summary>
    public static bool IsInitialized
    {
        get { lock (Gate) return initialized && !shutDown; }
    }

    /// <summary>This process's rank in <c>MPI_COMM_WORLD</c>, in <c>[0, WorldSize)</c>.</summary>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static int Rank
    {
        get { lock (Gate) { Require(nameof(Rank)); return rank; } }
    }

    /// <summary>The number of processes in <c>MPI_COMM_WORLD</c> (1 for a program started without <c>mpirun</c>).</summary>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static int WorldSize
    {
        get { lock (Gate) { Require(nameof(WorldSize)); return worldSize; } }
    }

    /// <summary>Whether this process is rank 0, the one that logs, plots and saves.</summary>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static bool IsRoot => Rank == 0;

    /// <summary>The MPI library's version string (<c>MPI_Get_library_version</c>), e.g. <c>Open MPI v4.1.4, ...</c>.</summary>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static string LibraryVersion
    {
        get { lock (Gate) { Require(nameof(LibraryVersion)); return library!.Version; } }
    }

    /// <summary>
    /// Loads the MPI library and initializes MPI (<c>MPI_Init_thread</c>, asking for <c>MPI_THREAD_SERIALIZED</c>:
    /// calls may come from any thread, and this class runs them one at a time). Call it once per process, before any
    /// collective. Without <c>mpirun</c> the process is a world of one (Open MPI's singleton start).
    /// </summary>
    /// <param name="libraryPath">The MPI library to load; null: the file named by the environment variable
    /// <c>DISCRETAX_MPI_LIBRARY</c>, else <c>libmpi.so.40</c> from the loader's search path.</param>
    /// <exception cref="InvalidOperationException">MPI was already initialized in this process (MPI allows it once).</exception>
    /// <exception cref="DllNotFoundException">The library could not be loaded (the message says how to install Open MPI).</exception>
    /// <exception cref="NotSupportedException">The library is not MPI, or not Open MPI's ABI (MPICH and its derivatives).</exception>
    /// <exception cref="PlatformNotSupportedException">Not Linux.</exception>
    /// <exception cref="MpiException"><c>MPI_Init_thread</c> failed.</exception>
    public static void Initialize(string? libraryPath = null)
    {
        lock (Gate)
        {
            if (shutDown) throw new InvalidOperationException("MPI was shut down in this process (Mpi.Shutdown): MPI cannot be initialized again.");
            if (initialized) throw new InvalidOperationException("MPI is already initialized in this process (Mpi.Initialize runs once).");
            var lib = MpiLibrary.Load(libraryPath);
            int provided = 0;
            Call(lib, lib.InitThread(null, null, MpiLibrary.ThreadSerialized, &provided), "MPI_Init_thread");
            int r = 0, n = 0;
            Call(lib, lib.CommRank(lib.CommWorld, &r), "MPI_Comm_rank");
            Call(lib, lib.CommSize(lib.CommWorld, &n), "MPI_Comm_size");
            library = lib;
            rank = r;
            worldSize = n;
            // Below MPI_THREAD_SERIALIZED only the thread that initialized may call MPI.
            serializedCalls = provided >= MpiLibrary.ThreadSerialized;
            initThreadId = Environment.CurrentManagedThreadId;
            initialized = true;
            live = lib;
            if (!abortHandlerInstalled)
            {
                AppDomain.CurrentDomain.UnhandledException += AbortOnUnhandledException;
                abortHandlerInstalled = true;
            }
        }
    }

    /// <summary>
    /// Shuts MPI down (<c>MPI_Finalize</c>, which waits for every rank): call it once at the end of a successful run,
    /// never after a failure (then <see cref="Abort"/>). Does nothing when MPI is not initialized or already shut down.
    /// </summary>
    /// <exception cref="MpiException"><c>MPI_Finalize</c> failed.</exception>
    public static void Shutdown()
    {
        lock (Gate)
        {
            if (!initialized || shutDown) return;
            shutDown = true;
            live = null;
            Call(library!, library!.Finalize(), "MPI_Finalize");
        }
    }

    /// <summary>
    /// Ends every process of the job (<c>MPI_Abort</c> on <c>MPI_COMM_WORLD</c>) with <paramref name="errorCode"/>, which
    /// <c>mpirun</c> returns. Use it when this rank cannot go on: the other ranks would otherwise wait for it in their
    /// next collective. Before <see cref="Initialize"/> or after <see cref="Shutdown"/> the process just exits.
    /// </summary>
    /// <param name="errorCode">The exit code of the job (non-zero).</param>
    [DoesNotReturn]
    public static void Abort(int errorCode = 1)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        // Not under the lock: another thread may hold it inside a collective that will never complete.
        if (live is MpiLibrary lib) lib.Abort(lib.CommWorld, errorCode);
        Environment.Exit(errorCode);
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// Runs a distributed program: <see cref="Initialize"/>, then <paramref name="main"/>; when it returns 0,
    /// <see cref="Shutdown"/> and 0. When it throws, the exception goes to standard error with the rank; when it throws
    /// or returns a non-zero code, <see cref="Abort"/> ends the whole job with that code (1 for an exception), so the
    /// other ranks do not wait for this one.
    /// </summary>
    /// <param name="main">The program; it may use the collectives.</param>
    /// <param name="libraryPath">Passed to <see cref="Initialize"/>.</param>
    /// <returns>0 (a failure does not return).</returns>
    public static int Run(Func<int> main, string? libraryPath = null)
    {
        ArgumentNullException.ThrowIfNull(main);
        Initialize(libraryPath);
        int code;
        try
        {
            code = main();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"rank {rank} of {worldSize} failed: {e}");
            Abort(1);
            throw; // not reached: Abort ends the process
        }
        if (code != 0)
        {
            Console.Error.WriteLine($"rank {rank} of {worldSize} exited with code {code}: aborting the job so that no rank waits for it.");
            Abort(code);
        }
        Shutdown();
        return 0;
    }

    /// <summary>Blocks until every rank has called it (<c>MPI_Barrier</c>).</summary>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static void Barrier()
    {
        lock (Gate)
        {
            var lib = Require(nameof(Barrier));
            Call(lib, lib.Barrier(lib.CommWorld), "MPI_Barrier");
        }
    }

    /// <summary>
    /// Copies rank <paramref name="root"/>'s <paramref name="tensor"/> into every rank's <paramref name="tensor"/>, in
    /// place (<c>MPI_Bcast</c> of its bytes, so any dtype). Every rank passes a tensor of the same shape and dtype.
    /// </summary>
    /// <param name="tensor">A contiguous CPU tensor: the data on the root, overwritten on the other ranks.</param>
    /// <param name="root">The rank whose values are sent, in <c>[0, WorldSize)</c>.</param>
    /// <exception cref="ArgumentException">The tensor is null, disposed, sparse, not on the CPU or not contiguous.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank.</exception>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static void Broadcast(Tensor tensor, int root = 0)
    {
        TensorChecks.HostContiguous(tensor, nameof(Broadcast));
        lock (Gate)
        {
            var lib = Require(nameof(Broadcast));
            if (root < 0 || root >= worldSize)
                throw new ArgumentOutOfRangeException(nameof(root), root, $"Expected a rank in [0, {worldSize}); got {root}.");
            long bytes = checked(tensor.numel() * tensor.element_size());
            if (bytes == 0) return;
            byte* p = DataPointer(tensor);
            for (long done = 0; done < bytes; done += MaxCount)
            {
                int count = (int)Math.Min(MaxCount, bytes - done);
                Call(lib, lib.Bcast(p + done, count, lib.Byte, root, lib.CommWorld), "MPI_Bcast");
            }
            GC.KeepAlive(tensor);
        }
    }

    /// <summary>
    /// Replaces <paramref name="tensor"/> on every rank by the elementwise sum over all ranks, in place
    /// (<c>MPI_Allreduce</c> with <c>MPI_IN_PLACE</c> and <c>MPI_SUM</c>): <c>t_r &lt;- sum_{q=0}^{W-1} t_q</c>. float32
    /// and float64 are summed in their own type. MPI has no bfloat16 or float16 type: those are widened into a float32
    /// buffer (exact), summed there and rounded back once (round to nearest even), so the result is the float32 sum
    /// rounded to the tensor's type. Every rank passes a tensor of the same shape and dtype.
    /// </summary>
    /// <param name="tensor">A contiguous CPU float32, float64, bfloat16 or float16 tensor.</param>
    /// <exception cref="ArgumentException">The tensor is null, disposed, sparse, not on the CPU, not contiguous, or of
    /// another dtype.</exception>
    /// <exception cref="InvalidOperationException">MPI is not initialized.</exception>
    public static void AllReduceSum(Tensor tensor)
    {
        TensorChecks.HostContiguous(tensor, nameof(AllReduceSum));
        TensorChecks.Summable(tensor);
        lock (Gate)
        {
            var lib = Require(nameof(AllReduceSum));
            if (tensor.numel() == 0) return;
            if (tensor.dtype is ScalarType.Float32 or ScalarType.Float64)
            {
                SumInPlace(lib, tensor);
                return;
            }
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var wide = tensor.to(ScalarType.Float32).contiguous();
            SumInPlace(lib, wide);
            tensor.copy_(wide);
        }
    }

    /// <summary>The sum all-reduce of a contiguous CPU float32 / float64 tensor, in pieces of at most
    /// <see cref="MaxCount"/> elements.</summary>
    private static void SumInPlace(MpiLibrary lib, Tensor t)
    {
        nint type = t.dtype == ScalarType.Float64 ? lib.Double : lib.Float;
        long n = t.numel(), size = t.element_size();
        byte* p = DataPointer(t);
        for (long done = 0; done < n; done += MaxCount)
        {
            int count = (int)Math.Min(MaxCount, n - done);
            Call(lib, lib.Allreduce(MpiLibrary.InPlace, p + done * size, count, type, lib.OpSum, lib.CommWorld), "MPI_Allreduce");
        }
        GC.KeepAlive(t);
    }

    /// <summary>The address of element 0 of a non-empty contiguous CPU tensor (the tensor's own memory).</summary>
    private static byte* DataPointer(Tensor t)
    {
        using var flat = t.reshape(-1);
        using var first = flat.narrow(0, 0, 1);
        return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first.bytes));
    }

    /// <summary>The library, after checking that MPI is initialized, not shut down, and callable from this thread.</summary>
    private static MpiLibrary Require(string operation)
    {
        if (shutDown)
            throw new InvalidOperationException($"Mpi.{operation}: MPI was shut down (Mpi.Shutdown); no MPI call may follow.");
        if (!initialized)
            throw new InvalidOperationException($"Mpi.{operation}: MPI is not initialized. Call Mpi.Initialize() (or run the program through Mpi.Run) first, in every process started by mpirun.");
        if (!serializedCalls && Environment.CurrentManagedThreadId != initThreadId)
            throw new InvalidOperationException($"Mpi.{operation}: this MPI library gave less than MPI_THREAD_SERIALIZED, so only the thread that called Mpi.Initialize may call MPI.");
        return library!;
    }

    private static void Call(MpiLibrary lib, int code, string function)
    {
        if (code != MpiLibrary.Success) throw new MpiException(function, code, lib.Describe(code));
    }

    private static void AbortOnUnhandledException(object sender, UnhandledExceptionEventArgs e)
    {
        if (live is null) return;
        Console.Error.WriteLine($"rank {rank}: unhandled exception, aborting the MPI job so that no rank waits for this one: {e.ExceptionObject}");
        Abort(1);
    }
}
