using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// Ring AllReduce, 2(N-1) communication steps between neighbours, each moving 1/N of the tensor.
/// <para>Reduce-scatter, steps s = 0..N-2: rank r adds its chunk c = (r-1-s) mod N to the running sum rank r-1
/// holds for it (rank r-1's staging at s = 0, its F32 partial after) into its own F32 partial. Chunk c is
/// summed in the order c, c+1, ..., c-1 (mod N): fixed for the chunk, so results are the same on every rank and
/// every run. After step N-2, rank r holds the full sum of chunk (r+1) mod N; it rounds it once to the dtype
/// into its staging and output.</para>
/// <para>All-gather, steps s = 0..N-2: rank r copies chunk (r-s) mod N from rank r-1's staging into its own
/// staging and output.</para>
/// Example, N = 3, rank 0: RS step 0 adds chunk 2 (staging@2 + own), step 1 chunk 1 (partial@2 + own), then owns
/// chunk 1; AG step 0 takes chunk 0 from rank 2, step 1 chunk 2.
/// </summary>
public sealed class RingAllReduce : ScheduledAllReduce
{
    public override AllReduceAlgorithm Kind => AllReduceAlgorithm.Ring;

    internal override CollectiveOp[] BuildSchedule(int rank, int ranks, bool inPlace)
    {
        if (ranks == 1)
            return new OneShotAllReduce().BuildSchedule(rank, ranks, inPlace: true);
        int previous = (rank - 1 + ranks) % ranks;
        var ops = new List<CollectiveOp>();
        CollectiveSchedules.StageIn(ops, ranks);
        int step = 1;
        for (int s = 0; s < ranks - 1; s++, step++)
        {
            int chunk = Mod(rank - 1 - s, ranks);
            int runningSum = s == 0 ? OpBuffer.Staging : OpBuffer.Partial;
            ops.Add(CollectiveOp.Add(step, chunk, runningSum, previous, OpBuffer.Staging, rank, OpBuffer.Partial));
            if (s == ranks - 2)
            {
                // The chunk is complete here: round once, publish in staging for the all-gather.
                ops.Add(CollectiveOp.Copy(step, chunk, OpBuffer.Partial, rank, OpBuffer.Staging));
                ops.Add(CollectiveOp.Copy(step, chunk, OpBuffer.Staging, rank, OpBuffer.Output));
            }
            ops.Add(CollectiveOp.Barrier(step));
        }
        for (int s = 0; s < ranks - 1; s++, step++)
        {
            int chunk = Mod(rank - s, ranks);
            ops.Add(CollectiveOp.Copy(step, chunk, OpBuffer.Staging, previous, OpBuffer.Staging));
            ops.Add(CollectiveOp.Copy(step, chunk, OpBuffer.Staging, rank, OpBuffer.Output));
            ops.Add(CollectiveOp.Barrier(step));
        }
        return ops.ToArray();
    }

    private static int Mod(int value, int n) => ((value % n) + n) % n;
}
