using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Layers;

namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// The experts phase of a forward on every rank that received rows, enqueued in <see cref="EnqueueOrder"/>:
/// <code>
/// interleaved  r0 permute, r1 permute, ..., r0 gate_up, r1 gate_up, ..., r0 down, ..., r0 un-permute, r1 un-permute, ...
/// ranked       r0 permute, r0 gate_up, r0 down, r0 un-permute, r1 permute, ...
/// </code>
/// One host thread drives every rank and a grouped GEMM call costs it ~14 us, so ranked, rank 1's GPU idled until rank 0's
/// whole phase was enqueued (~100-150 us at Qwen3-30B-A3B's shapes on an H200) and rank 0's combine then waited for rank 1's
/// experts. Interleaved, the GPUs start one step apart; each stream still runs its own rank's steps in the same order.
/// </summary>
public sealed partial class ExpertParallelMoe
{
    /// <summary>How the experts phase is enqueued across ranks (default <see cref="EpEnqueue.Default"/>: MOE_EP_ENQUEUE).</summary>
    public EpEnqueueOrder EnqueueOrder { get; set; } = EpEnqueue.Default;

    /// <summary>
    /// Every rank d with rows (<paramref name="received"/>[d] &gt; 0): the local expert ids of its rows (laid out as
    /// <see cref="FillLocalIds"/> says) and its experts <paramref name="weightsOf"/>(d), marking the phase on the
    /// timer when <paramref name="timed"/>.
    /// </summary>
    private void RunExpertsOnRanks(long[] received, long[,] rowsPerGroup, int perRank, Func<int, (MemoryBuffer GateUp, MemoryBuffer Down)> weightsOf, bool timed)
    {
        var ranks = Enumerable.Range(0, Ranks).Where(d => received[d] > 0).ToArray();
        var steps = ReceivedRowsWorkspace.Steps;
        void Step(int d, ReceivedRowsStep step)
        {
            int rows = checked((int)received[d]);
            if (step == steps[0])
            {
                if (timed)
                    PhaseTimer?.Begin(ExpertParallelPhase.Experts, d);
                FillLocalIds(d, rows, rowsPerGroup, perRank);
            }
            var (gateUp, down) = weightsOf(d);
            Buffers(d).Received.RunStep(step, _layers[d], gateUp, down, rows);
            if (step == steps[^1] && timed)
                PhaseTimer?.End(ExpertParallelPhase.Experts, d);
        }
        if (EnqueueOrder == EpEnqueueOrder.Ranked)
        {
            foreach (int d in ranks)
                foreach (var step in steps)
                    Step(d, step);
        }
        else
        {
            foreach (var step in steps)
                foreach (int d in ranks)
                    Step(d, step);
        }
    }

    /// <summary>
    /// Rank <paramref name="d"/>'s local expert id of each of the <paramref name="rows"/> rows it received, laid out as
    /// [source rank][local expert] blocks of <paramref name="rowsPerGroup"/>[r, d * perRank + local] rows.
    /// </summary>
    private void FillLocalIds(int d, int rows, long[,] rowsPerGroup, int perRank)
    {
        var localIds = Buffers(d).Received.LocalIds(rows);
        int at = 0, sources = rowsPerGroup.GetLength(0);
        for (int r = 0; r < sources; r++)
            for (int local = 0; local < perRank; local++)
            {
                // One vectorised fill per block, not a store per row: on the host's critical path before rank d's permute.
                int count = checked((int)rowsPerGroup[r, d * perRank + local]);
                localIds.Slice(at, count).Fill(local);
                at += count;
            }
    }
}
