using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives.Nccl;

namespace MoeRuntime.Collectives.Distributed;

/// <summary>
/// One rank of a multi-process NCCL group: rank 0 makes the unique id, <see cref="RankRendezvous"/> hands it out,
/// every rank calls ncclCommInitRank on its GPU (cuda:LOCAL_RANK). Calls run on the GPU's default stream and wait
/// for it with a deadline, checking NCCL's asynchronous errors; past the deadline the communicator is aborted and
/// the call throws <see cref="CollectiveTimeoutException"/>. All-to-allv is NCCL grouped Send/Recv.
/// </summary>
public sealed class NcclProcessGroup : ProcessGroup
{
    private NcclProcessGroup(NcclCommunicator communicator, TimeSpan timeout)
        : base(communicator.Rank, communicator.Size, communicator.Accelerator)
    {
        Communicator = communicator;
        Timeout = timeout;
    }

    public override string Backend => "nccl";

    /// <summary>The NCCL communicator, for stream-ordered use (benchmarks, graph capture).</summary>
    public NcclCommunicator Communicator { get; }

    /// <summary>How long a call waits for its peers.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// Joins the group <paramref name="environment"/> describes on <paramref name="accelerator"/>: the id rendezvous
    /// (within <paramref name="rendezvousTimeout"/>) then ncclCommInitRank (blocks until every rank has joined).
    /// </summary>
    public static NcclProcessGroup Create(LaunchEnvironment environment, CudaAccelerator accelerator, TimeSpan rendezvousTimeout, TimeSpan? callTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(accelerator);
        NcclLibrary.EnsureAvailable();
        byte[] token = environment.Rank == 0 ? NcclCommunicator.NewUniqueId().ToArray() : new byte[Rendezvous.TokenBytes];
        byte[] id = RankRendezvous.Exchange(environment, token, rendezvousTimeout);
        var communicator = NcclCommunicator.InitRank(accelerator, NcclUniqueId.FromBytes(id), environment.Rank, environment.WorldSize);
        return new NcclProcessGroup(communicator, callTimeout ?? TimeSpan.FromMinutes(5));
    }

    private CudaStream Stream => (CudaStream)Accelerator.DefaultStream;

    protected override void AllReduceCore(MemoryBuffer input, MemoryBuffer output)
    {
        Communicator.AllReduce(input, output, Stream);
        Wait(CollectiveKind.AllReduce);
    }

    protected override void AllGatherCore(MemoryBuffer input, MemoryBuffer output)
    {
        Communicator.AllGather(input, output, Stream);
        Wait(CollectiveKind.AllGather);
    }

    protected override void AllToAllVCore(MemoryBuffer send, IReadOnlyList<long> sendCounts, MemoryBuffer receive, IReadOnlyList<long> receiveCounts)
    {
        // NcclCommunicator reads row Rank (what it sends) and column Rank (what it receives) of the matrix.
        var counts = new long[Size, Size];
        for (int p = 0; p < Size; p++)
        {
            counts[Rank, p] = sendCounts[p];
            counts[p, Rank] = receiveCounts[p];
        }
        NcclCheck.ThrowIfFailed(Nccl.Nccl.ncclGroupStart());
        try
        {
            Communicator.EnqueueAllToAllV(send, counts, receive, Stream);
        }
        finally
        {
            NcclCheck.ThrowIfFailed(Nccl.Nccl.ncclGroupEnd());
        }
        Wait(CollectiveKind.AllToAllV);
    }

    private void Wait(CollectiveKind kind)
    {
        var clock = Stopwatch.StartNew();
        while (!Stream.IsIdle())
        {
            Communicator.ThrowIfAsyncError();
            if (clock.Elapsed > Timeout)
            {
                Communicator.Abort();
                throw new CollectiveTimeoutException(kind, Rank, -1, Timeout, $"NCCL on {Accelerator.Name} did not finish (a peer process is gone or stuck); the communicator was aborted");
            }
            Thread.Sleep(0);
        }
        Communicator.ThrowIfAsyncError();
    }

    public override void Dispose() => Communicator.Dispose();
}
