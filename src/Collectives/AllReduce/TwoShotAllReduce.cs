using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// Two-shot AllReduce: step 1 (reduce-scatter) rank r sums chunk r over every rank's staging, rank order,
/// in F32, into its own staging and output; step 2 (all-gather) rank r copies every other chunk c from rank c's
/// staging. Two communication steps whatever N is; each rank reads about 2x the tensor.
/// </summary>
public sealed class TwoShotAllReduce : ScheduledAllReduce
{
    public override AllReduceAlgorithm Kind => AllReduceAlgorithm.TwoShot;

    internal override CollectiveOp[] BuildSchedule(int rank, int ranks)
    {
        var ops = new List<CollectiveOp>();
        CollectiveSchedules.StageIn(ops, ranks);
        // Same element, same thread: the sums of chunk r are read from every staging, then written over this rank's.
        ops.Add(CollectiveOp.ReduceAll(1, rank, OpBuffer.Staging, OpBuffer.Staging));
        ops.Add(CollectiveOp.Copy(1, rank, OpBuffer.Staging, rank, OpBuffer.Output));
        ops.Add(CollectiveOp.Barrier(1));
        for (int c = 0; c < ranks; c++)
        {
            if (c != rank)
                ops.Add(CollectiveOp.Copy(2, c, OpBuffer.Staging, c, OpBuffer.Output));
        }
        ops.Add(CollectiveOp.Barrier(2));
        return ops.ToArray();
    }
}
