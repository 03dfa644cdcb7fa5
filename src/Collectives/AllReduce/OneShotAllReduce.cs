using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// One-shot AllReduce: every rank reads the whole tensor from every peer and sums it, rank 0 + rank 1 + ... in
/// F32 (one communication step; each rank reads N times the tensor). Best for small tensors, where latency, not
/// bandwidth, decides.
/// <para>Out of place it reads the peers' inputs directly: barrier (every rank has arrived, its input ready),
/// sum, barrier (no rank returns, and lets its input be overwritten, while a peer still reads it). In place a
/// rank's output is its input, which peers may still be reading, so the inputs are first copied into the
/// registered staging buffers (step 0) and the sum reads those.</para>
/// <para>On CUDA, calls of at most LowLatencyLayout.OneShotMaxBytes bytes skip this schedule: they run the same sums
/// over the low-latency transport (ll_allreduce.cu: flagged 8-byte lines pushed into peers' receive buffers, no
/// barriers); <see cref="Communicator.LastAllReduceLowLatency"/> says which ran.</para>
/// </summary>
public sealed class OneShotAllReduce : ScheduledAllReduce
{
    public override AllReduceAlgorithm Kind => AllReduceAlgorithm.OneShot;

    internal override CollectiveOp[] BuildSchedule(int rank, int ranks, bool inPlace)
    {
        var ops = new List<CollectiveOp>();
        int source = OpBuffer.Input;
        if (inPlace)
        {
            CollectiveSchedules.StageIn(ops, ranks);
            source = OpBuffer.Staging;
        }
        else
        {
            ops.Add(CollectiveOp.Barrier(0));
        }
        for (int c = 0; c < ranks; c++)
            ops.Add(CollectiveOp.ReduceAll(1, c, source, OpBuffer.Output));
        ops.Add(CollectiveOp.Barrier(1));
        return ops.ToArray();
    }
}
