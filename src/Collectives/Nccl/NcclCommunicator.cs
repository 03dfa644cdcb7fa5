using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Collectives.Nccl;

/// <summary>
/// One NCCL communicator (ncclComm_t) of one rank on one GPU, with every call checked. Made by
/// <see cref="InitRank"/> (one process per GPU, the id passed through <see cref="Rendezvous"/>) or by
/// <see cref="NcclGroup"/> (ncclCommInitAll: every GPU of this process). Dispose destroys it, Abort aborts it.
/// </summary>
public sealed class NcclCommunicator : IDisposable
{
    private nint _comm;

    internal NcclCommunicator(CudaAccelerator accelerator, nint comm, int rank, int size)
    {
        Accelerator = accelerator;
        _comm = comm;
        Rank = rank;
        Size = size;
    }

    public CudaAccelerator Accelerator { get; }
    public int Rank { get; }
    public int Size { get; }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_comm == 0, this);
            return _comm;
        }
    }

    /// <summary>A new unique id (rank 0 makes it; the others receive it through <see cref="Rendezvous"/>).</summary>
    public static NcclUniqueId NewUniqueId()
    {
        NcclLibrary.EnsureAvailable();
        NcclCheck.ThrowIfFailed(Nccl.ncclGetUniqueId(out var id));
        return id;
    }

    /// <summary>Joins communicator <paramref name="uniqueId"/> as <paramref name="rank"/> of <paramref name="size"/> on <paramref name="accelerator"/> (blocks until every rank has joined).</summary>
    public static NcclCommunicator InitRank(CudaAccelerator accelerator, NcclUniqueId uniqueId, int rank, int size)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (size < 1)
            throw new ArgumentOutOfRangeException(nameof(size), size, "at least one rank");
        if (rank < 0 || rank >= size)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {size})");
        NcclLibrary.EnsureAvailable();
        accelerator.Bind();
        using var restore = CurrentContextGuard.Save();
        NcclCheck.ThrowIfFailed(Nccl.ncclCommInitRank(out nint comm, size, uniqueId, rank), $"ncclCommInitRank(rank {rank} of {size} on {accelerator.Name})");
        return new NcclCommunicator(accelerator, comm, rank, size);
    }

    /// <summary>Throws the error NCCL's background work hit, if any (ncclCommGetAsyncError).</summary>
    public void ThrowIfAsyncError()
    {
        NcclCheck.ThrowIfFailed(Nccl.ncclCommGetAsyncError(Handle, out var asyncError), $"ncclCommGetAsyncError(rank {Rank})");
        NcclCheck.ThrowIfFailed(asyncError, $"NCCL asynchronous error on rank {Rank} ({Accelerator.Name})");
    }

    public void AllReduce(MemoryBuffer input, MemoryBuffer output, CudaStream stream)
    {
        Check(input, output, stream);
        if (input.Length != output.Length)
            throw new ArgumentException($"ncclAllReduce: input {input.Describe()} and output {output.Describe()} differ in length", nameof(output));
        Accelerator.Bind();
        using var restore = CurrentContextGuard.Save();
        NcclCheck.ThrowIfFailed(Nccl.ncclAllReduce(input.Pointer, output.Pointer, (nuint)input.Length, NcclCheck.DataType(input.DType), NcclReduceOp.Sum, Handle, stream.Handle));
    }

    /// <summary>Output of m elements per rank = chunk r of the sum of every rank's N*m input elements.</summary>
    public void ReduceScatter(MemoryBuffer input, MemoryBuffer output, CudaStream stream)
    {
        Check(input, output, stream);
        if (input.Length != output.Length * Size)
            throw new ArgumentException($"ncclReduceScatter: input {input.Describe()} must be {Size} x output {output.Describe()}", nameof(output));
        Accelerator.Bind();
        using var restore = CurrentContextGuard.Save();
        NcclCheck.ThrowIfFailed(Nccl.ncclReduceScatter(input.Pointer, output.Pointer, (nuint)output.Length, NcclCheck.DataType(input.DType), NcclReduceOp.Sum, Handle, stream.Handle));
    }

    public void AllGather(MemoryBuffer input, MemoryBuffer output, CudaStream stream)
    {
        Check(input, output, stream);
        if (output.Length != input.Length * Size)
            throw new ArgumentException($"ncclAllGather: output {output.Describe()} must be {Size} x input {input.Describe()}", nameof(output));
        Accelerator.Bind();
        using var restore = CurrentContextGuard.Save();
        NcclCheck.ThrowIfFailed(Nccl.ncclAllGather(input.Pointer, output.Pointer, (nuint)input.Length, NcclCheck.DataType(input.DType), Handle, stream.Handle));
    }

    /// <summary>This rank's part of an all-to-allv: sends and receives of one NCCL group (call inside ncclGroupStart/End when driving several ranks from one thread).</summary>
    internal void EnqueueAllToAllV(MemoryBuffer send, long[,] sendCounts, MemoryBuffer receive, CudaStream stream)
    {
        Check(send, receive, stream);
        var type = NcclCheck.DataType(send.DType);
        int element = send.ElementSize;
        long sendOffset = 0, receiveOffset = 0;
        Accelerator.Bind();
        using var restore = CurrentContextGuard.Save();
        for (int peer = 0; peer < Size; peer++)
        {
            long toPeer = sendCounts[Rank, peer], fromPeer = sendCounts[peer, Rank];
            if (toPeer > 0)
                NcclCheck.ThrowIfFailed(Nccl.ncclSend(send.Pointer + (nint)(sendOffset * element), (nuint)toPeer, type, peer, Handle, stream.Handle));
            if (fromPeer > 0)
                NcclCheck.ThrowIfFailed(Nccl.ncclRecv(receive.Pointer + (nint)(receiveOffset * element), (nuint)fromPeer, type, peer, Handle, stream.Handle));
            sendOffset += toPeer;
            receiveOffset += fromPeer;
        }
    }

    private void Check(MemoryBuffer input, MemoryBuffer output, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(stream);
        input.ThrowIfDisposed();
        output.ThrowIfDisposed();
        if (!ReferenceEquals(input.Accelerator, Accelerator) || !ReferenceEquals(output.Accelerator, Accelerator) || !ReferenceEquals(stream.Accelerator, Accelerator))
            throw new ArgumentException($"NCCL rank {Rank} runs on {Accelerator.Name}: buffers and stream must belong to it");
        if (input.DType != output.DType)
            throw new ArgumentException($"NCCL: {input.Describe()} and {output.Describe()} differ in dtype");
    }

    /// <summary>Aborts outstanding work (after a failure); the communicator is gone afterwards.</summary>
    public void Abort()
    {
        if (_comm == 0)
            return;
        Nccl.ncclCommAbort(_comm);
        _comm = 0;
    }

    public void Dispose()
    {
        if (_comm == 0)
            return;
        Nccl.ncclCommDestroy(_comm);
        _comm = 0;
    }
}
