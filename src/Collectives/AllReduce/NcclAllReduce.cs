using MoeRuntime.Accelerators;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>AllReduce through NCCL (ncclCommInitAll over the communicator's GPUs, made on first use). CUDA only; needs libnccl.so.2.</summary>
public sealed class NcclAllReduce : IAllReduceAlgorithm
{
    public AllReduceAlgorithm Kind => AllReduceAlgorithm.Nccl;

    public void Run(Communicator communicator, IReadOnlyList<MemoryBuffer> perRankInput, IReadOnlyList<MemoryBuffer> perRankOutput, IReadOnlyList<AcceleratorStream> streams)
    {
        var nccl = communicator.Nccl;
        nccl.AllReduce(perRankInput, perRankOutput, streams);
        if (communicator.CallWaits(streams))
            nccl.Wait(streams, communicator.Options.Timeout, CollectiveKind.AllReduce);
    }
}
