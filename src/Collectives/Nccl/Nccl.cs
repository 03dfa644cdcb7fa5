using System.Runtime.InteropServices;

namespace MoeRuntime.Collectives.Nccl;

/// <summary>Declarations of the NCCL functions we call (libnccl.so.2), returning the raw <see cref="NcclResult"/>. Checked use: <see cref="NcclCheck"/>.</summary>
internal static unsafe partial class Nccl
{
    public const string Library = "moe_libnccl";

    [LibraryImport(Library)] public static partial NcclResult ncclGetVersion(out int version);
    [LibraryImport(Library)] public static partial NcclResult ncclGetUniqueId(out NcclUniqueId uniqueId);
    [LibraryImport(Library)] public static partial NcclResult ncclCommInitRank(out nint comm, int ranks, NcclUniqueId uniqueId, int rank);
    [LibraryImport(Library)] public static partial NcclResult ncclCommInitAll(nint* comms, int devices, int* deviceList);
    [LibraryImport(Library)] public static partial NcclResult ncclCommGetAsyncError(nint comm, out NcclResult asyncError);
    [LibraryImport(Library)] public static partial NcclResult ncclCommAbort(nint comm);
    [LibraryImport(Library)] public static partial NcclResult ncclCommDestroy(nint comm);
    [LibraryImport(Library)] public static partial nint ncclGetErrorString(NcclResult result);

    [LibraryImport(Library)] public static partial NcclResult ncclAllReduce(nint sendBuffer, nint receiveBuffer, nuint count, NcclDataType dataType, NcclReduceOp op, nint comm, nint stream);
    [LibraryImport(Library)] public static partial NcclResult ncclReduceScatter(nint sendBuffer, nint receiveBuffer, nuint receiveCount, NcclDataType dataType, NcclReduceOp op, nint comm, nint stream);
    [LibraryImport(Library)] public static partial NcclResult ncclAllGather(nint sendBuffer, nint receiveBuffer, nuint sendCount, NcclDataType dataType, nint comm, nint stream);
    [LibraryImport(Library)] public static partial NcclResult ncclSend(nint sendBuffer, nuint count, NcclDataType dataType, int peer, nint comm, nint stream);
    [LibraryImport(Library)] public static partial NcclResult ncclRecv(nint receiveBuffer, nuint count, NcclDataType dataType, int peer, nint comm, nint stream);
    [LibraryImport(Library)] public static partial NcclResult ncclGroupStart();
    [LibraryImport(Library)] public static partial NcclResult ncclGroupEnd();
}

internal enum NcclResult
{
    Success = 0,
    UnhandledCudaError = 1,
    SystemError = 2,
    InternalError = 3,
    InvalidArgument = 4,
    InvalidUsage = 5,
    RemoteError = 6,
    InProgress = 7,
}

internal enum NcclDataType
{
    Int32 = 2,
    Int64 = 4,
    Float16 = 6,
    Float32 = 7,
    BFloat16 = 9,
}

internal enum NcclReduceOp
{
    Sum = 0,
}

/// <summary>ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank must receive.</summary>
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
public unsafe struct NcclUniqueId
{
    public const int Bytes = 128;
    private fixed byte _internal[Bytes];

    public byte[] ToArray()
    {
        var result = new byte[Bytes];
        fixed (byte* p = _internal)
            new ReadOnlySpan<byte>(p, Bytes).CopyTo(result);
        return result;
    }

    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Bytes)
            throw new ArgumentException($"an NCCL unique id is {Bytes} bytes; got {bytes.Length}", nameof(bytes));
        var id = new NcclUniqueId();
        bytes.CopyTo(new Span<byte>(id._internal, Bytes));
        return id;
    }
}
