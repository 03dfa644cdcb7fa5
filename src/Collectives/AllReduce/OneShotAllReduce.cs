using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// One-shot AllReduce: after staging, every rank reads the whole tensor from every peer and sums it,
/// rank 0 + rank 1 + ... in F32 (one communication step; each rank reads N times the tensor).
/// Best for small tensors, where latency, not bandwidth, decides.
/// </summary>
public sealed class OneShotAllReduce : ScheduledAllReduce
{
    public override AllReduceAlgorithm Kind => AllReduceAlgorithm.OneShot;

    internal override CollectiveOp[] BuildSchedule(int rank, int ranks)
    {
        var ops = new List<CollectiveOp>();
        CollectiveSchedules.StageIn(ops, ranks);
        for (int c = 0; c < ranks; c++)
            ops.Add(CollectiveOp.ReduceAll(1, c, OpBuffer.Staging, OpBuffer.Output));
        ops.Add(CollectiveOp.Barrier(1));
        return ops.ToArray();
    }
}
