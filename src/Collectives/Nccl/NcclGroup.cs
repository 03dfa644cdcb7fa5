using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Collectives.Nccl;

/// <summary>
/// NCCL over every GPU of one process (ncclCommInitAll): one <see cref="NcclCommunicator"/> per GPU, and
/// collectives issued for all of them from this thread inside ncclGroupStart / ncclGroupEnd.
/// </summary>
public sealed class NcclGroup : IDisposable
{
    private readonly NcclCommunicator[] _ranks;

    private NcclGroup(NcclCommunicator[] ranks) => _ranks = ranks;

    public IReadOnlyList<NcclCommunicator> Ranks => _ranks;

    public static unsafe NcclGroup Create(IReadOnlyList<CudaAccelerator> accelerators)
    {
        ArgumentNullException.ThrowIfNull(accelerators);
        if (accelerators.Count == 0)
            throw new ArgumentException("at least one GPU", nameof(accelerators));
        NcclLibrary.EnsureAvailable();
        int n = accelerators.Count;
        var devices = accelerators.Select(a => a.Device).ToArray();
        var comms = new nint[n];
        using var restore = CurrentContextGuard.Save();
        fixed (nint* c = comms)
        fixed (int* d = devices)
            NcclCheck.ThrowIfFailed(Nccl.ncclCommInitAll(c, n, d), $"ncclCommInitAll({string.Join(", ", accelerators.Select(a => a.Name))})");
        return new NcclGroup(Enumerable.Range(0, n).Select(r => new NcclCommunicator(accelerators[r], comms[r], r, n)).ToArray());
    }

    public void AllReduce(IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, IReadOnlyList<AcceleratorStream> streams) =>
        Grouped(r => _ranks[r].AllReduce(inputs[r], outputs[r], (CudaStream)streams[r]));

    public void ReduceScatter(IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, IReadOnlyList<AcceleratorStream> streams) =>
        Grouped(r => _ranks[r].ReduceScatter(inputs[r], outputs[r], (CudaStream)streams[r]));

    public void AllGather(IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, IReadOnlyList<AcceleratorStream> streams) =>
        Grouped(r => _ranks[r].AllGather(inputs[r], outputs[r], (CudaStream)streams[r]));

    public void AllToAllV(IReadOnlyList<MemoryBuffer> send, long[,] sendCounts, IReadOnlyList<MemoryBuffer> receive, IReadOnlyList<AcceleratorStream> streams) =>
        Grouped(r => _ranks[r].EnqueueAllToAllV(send[r], sendCounts, receive[r], (CudaStream)streams[r]));

    /// <summary>
    /// Waits for every rank's stream with a deadline, checking NCCL's asynchronous errors while it waits; past the
    /// deadline it aborts the communicators (so the devices do not stay blocked) and throws a timeout naming the rank.
    /// </summary>
    internal void Wait(IReadOnlyList<AcceleratorStream> streams, TimeSpan timeout, CollectiveKind kind)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int r = 0; r < _ranks.Length; r++)
        {
            var stream = (CudaStream)streams[r];
            while (!stream.IsIdle())
            {
                _ranks[r].ThrowIfAsyncError();
                if (clock.Elapsed > timeout)
                {
                    Abort();
                    throw new CollectiveTimeoutException(kind, r, -1, timeout, $"NCCL on {_ranks[r].Accelerator.Name} did not finish; the NCCL communicators were aborted");
                }
                Thread.Yield();
            }
        }
        ThrowIfAsyncError();
    }

    public void ThrowIfAsyncError()
    {
        foreach (var rank in _ranks)
            rank.ThrowIfAsyncError();
    }

    /// <summary>One call per rank from this thread: NCCL needs them in one group or it deadlocks.</summary>
    private void Grouped(Action<int> perRank)
    {
        using var restore = CurrentContextGuard.Save();
        NcclCheck.ThrowIfFailed(Nccl.ncclGroupStart());
        try
        {
            for (int r = 0; r < _ranks.Length; r++)
                perRank(r);
        }
        finally
        {
            NcclCheck.ThrowIfFailed(Nccl.ncclGroupEnd());
        }
    }

    public void Abort()
    {
        foreach (var rank in _ranks)
            rank.Abort();
    }

    public void Dispose()
    {
        foreach (var rank in _ranks)
            rank.Dispose();
    }
}
