using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// Two-shot AllReduce: rank r reduces chunk r, reading that chunk of every rank's input (the reduce-scatter shot),
/// sums in rank order in F32 and writes the result straight into chunk r of every rank's output (the all-gather
/// shot, pushed: no second pass, no staging copy). Schedule: barrier (every rank has arrived, inputs ready,
/// outputs free), reduce-and-push, barrier (every chunk has landed everywhere). Each rank reads the tensor once
/// and writes it once, (N-1)/N of each over NVLink, whatever N is. In place is safe: chunk r of every buffer is
/// touched only by rank r, and each element is read by the thread that then writes it.
/// <para>On CUDA, calls of at most the communicator's CommunicatorOptions.TwoShotLowLatencyMaxBytes (32 KB by default, the
/// measured crossover on 2 x H200) skip this schedule: they run the same sums
/// over the low-latency transport (ll_allreduce.cu: flagged 8-byte lines pushed into peers' receive buffers, no
/// barriers); <see cref="Communicator.LastAllReduceLowLatency"/> says which ran.</para>
/// </summary>
public sealed class TwoShotAllReduce : ScheduledAllReduce
{
    public override AllReduceAlgorithm Kind => AllReduceAlgorithm.TwoShot;

    internal override CollectiveOp[] BuildSchedule(int rank, int ranks, bool inPlace) =>
    [
        CollectiveOp.Barrier(0),
        CollectiveOp.ReduceAllPush(1, rank, OpBuffer.Input, OpBuffer.Output),
        CollectiveOp.Barrier(1),
    ];
}
