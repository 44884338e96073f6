using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Discretax.Distributed;

/// <summary>
/// The system's MPI C library, loaded with <c>dlopen(RTLD_NOW | RTLD_GLOBAL)</c> (Open MPI loads its components as
/// plug-ins that need libmpi's symbols in the global scope) and bound through unmanaged function pointers taken
/// from its exports: no managed marshalling on the way. Only Open MPI's ABI is bound: its handles
/// (<c>MPI_COMM_WORLD</c>, <c>MPI_FLOAT</c>, <c>MPI_SUM</c>, ...) are the addresses of exported globals
/// (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, <c>ompi_mpi_op_sum</c>, ...). MPICH and its derivatives
/// (Intel MPI, MVAPICH, Cray MPICH) use integer handles (<c>MPI_COMM_WORLD = 0x44000000</c>) and are refused.
/// </summary>
internal sealed unsafe class MpiLibrary
{
    /// <summary>The library loaded when no path is given: Open MPI 3, 4 and 5's soname.</summary>
    public const string DefaultName = "libmpi.so.40";

    /// <summary>The environment variable that names another library file to load.</summary>
    public const string PathVariable = "DISCRETAX_MPI_LIBRARY";

    /// <summary>Open MPI's <c>MPI_IN_PLACE</c>: <c>(void *) 1</c>.</summary>
    public static readonly void* InPlace = (void*)1;

    /// <summary>MPI's <c>MPI_SUCCESS</c>.</summary>
    public const int Success = 0;

    /// <summary>MPI's <c>MPI_THREAD_SERIALIZED</c> (Open MPI's value): any thread may call, one at a time.</summary>
    public const int ThreadSerialized = 2;

    private const int RtldNow = 0x2, RtldGlobal = 0x100;

    private MpiLibrary(string path, nint handle, string version)
    {
        Path = path;
        Handle = handle;
        Version = version;
    }

    /// <summary>The file or soname that was loaded.</summary>
    public string Path { get; }

    /// <summary>The <c>dlopen</c> handle.</summary>
    public nint Handle { get; }

    /// <summary><c>MPI_Get_library_version</c>'s string, e.g. <c>Open MPI v4.1.4, package: Debian OpenMPI, ...</c>.</summary>
    public string Version { get; }

    /// <summary><c>int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)</c>.</summary>
    public delegate* unmanaged<int*, byte***, int, int*, int> InitThread { get; private set; }

    /// <summary><c>int MPI_Finalize(void)</c>.</summary>
    public delegate* unmanaged<int> Finalize { get; private set; }

    /// <summary><c>int MPI_Comm_rank(MPI_Comm, int *)</c>.</summary>
    public delegate* unmanaged<nint, int*, int> CommRank { get; private set; }

    /// <summary><c>int MPI_Comm_size(MPI_Comm, int *)</c>.</summary>
    public delegate* unmanaged<nint, int*, int> CommSize { get; private set; }

    /// <summary><c>int MPI_Barrier(MPI_Comm)</c>.</summary>
    public delegate* unmanaged<nint, int> Barrier { get; private set; }

    /// <summary><c>int MPI_Bcast(void *buffer, int count, MPI_Datatype, int root, MPI_Comm)</c>.</summary>
    public delegate* unmanaged<void*, int, nint, int, nint, int> Bcast { get; private set; }

    /// <summary><c>int MPI_Allreduce(const void *send, void *recv, int count, MPI_Datatype, MPI_Op, MPI_Comm)</c>.</summary>
    public delegate* unmanaged<void*, void*, int, nint, nint, nint, int> Allreduce { get; private set; }

    /// <summary><c>int MPI_Abort(MPI_Comm, int errorcode)</c>.</summary>
    public delegate* unmanaged<nint, int, int> Abort { get; private set; }

    /// <summary><c>int MPI_Error_string(int errorcode, char *string, int *resultlen)</c>.</summary>
    public delegate* unmanaged<int, byte*, int*, int> ErrorString { get; private set; }

    /// <summary><c>MPI_COMM_WORLD</c>: the address of <c>ompi_mpi_comm_world</c>.</summary>
    public nint CommWorld { get; private set; }

    /// <summary><c>MPI_FLOAT</c>: the address of <c>ompi_mpi_float</c>.</summary>
    public nint Float { get; private set; }

    /// <summary><c>MPI_DOUBLE</c>: the address of <c>ompi_mpi_double</c>.</summary>
    public nint Double { get; private set; }

    /// <summary><c>MPI_BYTE</c>: the address of <c>ompi_mpi_byte</c>.</summary>
    public nint Byte { get; private set; }

    /// <summary><c>MPI_SUM</c>: the address of <c>ompi_mpi_op_sum</c>.</summary>
    public nint OpSum { get; private set; }

    /// <summary>
    /// Loads <paramref name="path"/> (null: the environment variable <see cref="PathVariable"/>, else
    /// <see cref="DefaultName"/>), reads its version string and checks its ABI. Throws
    /// <see cref="DllNotFoundException"/> when it cannot be loaded and <see cref="NotSupportedException"/> when it is
    /// not an MPI library or not Open MPI's ABI.
    /// </summary>
    public static MpiLibrary Load(string? path)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("Discretax.Distributed binds Open MPI's libmpi.so.40 on Linux only.");
        string? fromEnvironment = Environment.GetEnvironmentVariable(PathVariable);
        string name = path ?? (string.IsNullOrEmpty(fromEnvironment) ? DefaultName : fromEnvironment);
        nint handle = Dl.Open(name, RtldNow | RtldGlobal, out string? error);
        if (handle == 0)
            throw new DllNotFoundException(
                $"Could not load the MPI library '{name}'{(path is null && !string.IsNullOrEmpty(fromEnvironment) ? $" (from {PathVariable})" : "")}: {error}. " +
                "Install Open MPI (Debian and Ubuntu: apt-get install openmpi-bin libopenmpi-dev), or name its libmpi.so.40 " +
                $"in {PathVariable} or in Mpi.Initialize(libraryPath).");

        if (!NativeLibrary.TryGetExport(handle, "MPI_Init_thread", out nint init) ||
            !NativeLibrary.TryGetExport(handle, "MPI_Get_library_version", out nint getVersion))
        {
            Dl.Close(handle);
            throw new NotSupportedException($"'{name}' is not an MPI library: it exports no MPI_Init_thread / MPI_Get_library_version.");
        }

        // MPI_Get_library_version may be called before MPI_Init (MPI 3.0, section 8.1.1). MPICH's buffer bound is 8192.
        var buffer = new byte[8192];
        int length = 0;
        fixed (byte* b = buffer)
            ((delegate* unmanaged<byte*, int*, int>)getVersion)(b, &length);
        string version = Encoding.UTF8.GetString(buffer, 0, Math.Clamp(length, 0, buffer.Length)).TrimEnd('\0', '\n', ' ');

        bool openMpiAbi = NativeLibrary.TryGetExport(handle, "ompi_mpi_comm_world", out _);
        if (AbiProblem(name, version, openMpiAbi) is string problem)
        {
            // Unloaded again, so that its MPI_* symbols do not shadow those of an Open MPI loaded later.
            Dl.Close(handle);
            throw new NotSupportedException(problem);
        }

        var lib = new MpiLibrary(name, handle, version);
        lib.InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)init;
        lib.Finalize = (delegate* unmanaged<int>)lib.Export("MPI_Finalize");
        lib.CommRank = (delegate* unmanaged<nint, int*, int>)lib.Export("MPI_Comm_rank");
        lib.CommSize = (delegate* unmanaged<nint, int*, int>)lib.Export("MPI_Comm_size");
        lib.Barrier = (delegate* unmanaged<nint, int>)lib.Export("MPI_Barrier");
        lib.Bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)lib.Export("MPI_Bcast");
        lib.Allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)lib.Export("MPI_Allreduce");
        lib.Abort = (delegate* unmanaged<nint, int, int>)lib.Export("MPI_Abort");
        lib.ErrorString = (delegate* unmanaged<int, byte*, int*, int>)lib.Export("MPI_Error_string");
        lib.CommWorld = lib.Export("ompi_mpi_comm_world");
        lib.Float = lib.Export("ompi_mpi_float");
        lib.Double = lib.Export("ompi_mpi_double");
        lib.Byte = lib.Export("ompi_mpi_byte");
        lib.OpSum = lib.Export("ompi_mpi_op_sum");
        return lib;
    }

    /// <summary>
    /// Why a library whose version string is <paramref name="version"/> cannot be bound, or null when it can: it must
    /// export Open MPI's handle globals (<paramref name="exportsOpenMpiHandles"/>: <c>ompi_mpi_comm_world</c>).
    /// </summary>
    public static string? AbiProblem(string name, string version, bool exportsOpenMpiHandles)
    {
        if (exportsOpenMpiHandles) return null;
        string v = version.Length == 0 ? "an MPI library without a version string" : Regex.Replace(version.Split('\n')[0].Trim(), @"\s+", " ");
        bool mpich = version.Contains("MPICH", StringComparison.OrdinalIgnoreCase) ||
                     version.Contains("Intel(R) MPI", StringComparison.OrdinalIgnoreCase) ||
                     version.Contains("MVAPICH", StringComparison.OrdinalIgnoreCase);
        string abi = mpich
            ? "the MPICH ABI, whose handles are integers (MPI_COMM_WORLD = 0x44000000)"
            : "an ABI other than Open MPI's (it exports no ompi_mpi_comm_world)";
        return $"'{name}' is {v}, with {abi}. Discretax.Distributed binds Open MPI's ABI only, where communicators, " +
               "datatypes and ops are the addresses of exported globals (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum): " +
               $"install Open MPI (apt-get install openmpi-bin libopenmpi-dev) and load its libmpi.so.40 (the default, or {PathVariable}), " +
               "and start the processes with Open MPI's mpirun.";
    }

    /// <summary>The text of MPI error code <paramref name="code"/>.</summary>
    public string Describe(int code)
    {
        var buffer = stackalloc byte[1024];
        int length = 0;
        if (ErrorString(code, buffer, &length) != Success) return $"MPI error {code}";
        return Encoding.UTF8.GetString(buffer, Math.Clamp(length, 0, 1023));
    }

    private nint Export(string symbol) =>
        NativeLibrary.TryGetExport(Handle, symbol, out nint address)
            ? address
            : throw new NotSupportedException($"'{Path}' ({Version}) exports no {symbol}: not an Open MPI library this binding supports.");

    /// <summary><c>dlopen</c> from the C library (glibc 2.34 and later), else from libdl (older glibc).</summary>
    private static class Dl
    {
        public static nint Open(string file, int flags, out string? error)
        {
            var bytes = Encoding.UTF8.GetBytes(file + "\0");
            fixed (byte* f = bytes)
            {
                try
                {
                    return Result(LibC.dlopen(f, flags), LibC.dlerror, out error);
                }
                catch (EntryPointNotFoundException)
                {
                    return Result(LibDl.dlopen(f, flags), LibDl.dlerror, out error);
                }
            }
        }

        public static void Close(nint handle)
        {
            try
            {
                LibC.dlclose(handle);
            }
            catch (EntryPointNotFoundException)
            {
                LibDl.dlclose(handle);
            }
        }

        private static nint Result(nint handle, Func<nint> dlerror, out string? error)
        {
            error = handle == 0 ? Marshal.PtrToStringUTF8(dlerror()) ?? "dlopen failed" : null;
            return handle;
        }
    }

    private static class LibC
    {
        [DllImport("libc.so.6")] public static extern nint dlopen(byte* file, int flags);
        [DllImport("libc.so.6")] public static extern nint dlerror();
        [DllImport("libc.so.6")] public static extern int dlclose(nint handle);
    }

    private static class LibDl
    {
        [DllImport("libdl.so.2")] public static extern nint dlopen(byte* file, int flags);
        [DllImport("libdl.so.2")] public static extern nint dlerror();
        [DllImport("libdl.so.2")] public static extern int dlclose(nint handle);
    }
}
