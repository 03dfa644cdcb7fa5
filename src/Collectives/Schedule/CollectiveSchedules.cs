namespace MoeRuntime.Collectives.Schedule;

/// <summary>
/// The step schedules of the collectives other than AllReduce (AllReduce's live with their algorithms in
/// <c>AllReduce/</c>). A schedule is the list of ops one rank runs; ranks read peers' registered staging
/// memory and write only their own memory (a pull model), and barriers separate the steps. Every schedule
/// ends with a barrier so that no rank refills its staging while a peer still reads it.
/// </summary>
internal static class CollectiveSchedules
{
    /// <summary>Step 0 of most schedules: this rank's input into its own staging, chunk by chunk, then a barrier.</summary>
    public static void StageIn(List<CollectiveOp> ops, int ranks)
    {
        for (int c = 0; c < ranks; c++)
            ops.Add(CollectiveOp.Copy(0, c, OpBuffer.Input, -1, OpBuffer.Staging));
        ops.Add(CollectiveOp.Barrier(0));
    }

    /// <summary>
    /// ReduceScatter of <c>count</c> elements: rank r ends with chunk r of the sum ([count*r/N, count*(r+1)/N)),
    /// written from element 0 of its output. Step 0 stages, step 1 sums chunk r over every rank's staging.
    /// </summary>
    public static CollectiveOp[] ReduceScatter(int rank, int ranks)
    {
        var ops = new List<CollectiveOp>();
        StageIn(ops, ranks);
        ops.Add(CollectiveOp.ReduceAll(1, rank, OpBuffer.Staging, OpBuffer.Output | OpBuffer.BaseZero));
        ops.Add(CollectiveOp.Barrier(1));
        return ops.ToArray();
    }

    /// <summary>
    /// AllGather of m elements per rank (count = N*m): rank r's input goes to chunk r of its staging (step 0),
    /// then every rank copies chunk c from rank c's staging into chunk c of its output (step 1).
    /// </summary>
    public static CollectiveOp[] AllGather(int rank, int ranks)
    {
        var ops = new List<CollectiveOp>
        {
            CollectiveOp.Copy(0, rank, OpBuffer.Input | OpBuffer.BaseZero, -1, OpBuffer.Staging),
            CollectiveOp.Barrier(0),
        };
        for (int c = 0; c < ranks; c++)
            ops.Add(CollectiveOp.Copy(1, c, OpBuffer.Staging, c, OpBuffer.Output));
        ops.Add(CollectiveOp.Barrier(1));
        return ops.ToArray();
    }

    /// <summary>
    /// All-to-allv: <paramref name="sendCounts"/>[i, j] elements go from rank i to rank j. Rank i's send buffer
    /// holds its segments for j = 0..N-1 back to back; rank j's receive buffer gets the segments from
    /// i = 0..N-1 back to back. Example, 2 ranks, counts [[1, 2], [3, 0]]: rank 0 sends s0[0] to itself and
    /// s0[1..3) to rank 1; rank 1 sends s1[0..3) to rank 0; rank 0 receives [s0[0], s1[0], s1[1], s1[2]],
    /// rank 1 receives [s0[1], s0[2]].
    /// </summary>
    public static CollectiveOp[] AllToAllV(int rank, long[,] sendCounts)
    {
        int ranks = sendCounts.GetLength(0);
        long sent = 0;
        for (int j = 0; j < ranks; j++)
            sent += sendCounts[rank, j];
        var ops = new List<CollectiveOp>
        {
            CollectiveOp.CopyRange(0, OpBuffer.Input, -1, 0, OpBuffer.Staging, 0, sent),
            CollectiveOp.Barrier(0),
        };
        long received = 0;
        for (int i = 0; i < ranks; i++)
        {
            long sendOffset = 0;
            for (int j = 0; j < rank; j++)
                sendOffset += sendCounts[i, j];
            long length = sendCounts[i, rank];
            if (length > 0)
                ops.Add(CollectiveOp.CopyRange(1, OpBuffer.Staging, i, sendOffset, OpBuffer.Output, received, length));
            received += length;
        }
        ops.Add(CollectiveOp.Barrier(1));
        return ops.ToArray();
    }
}
