using MoeRuntime.Accelerators;
using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives;

/// <summary>One call of a collective, validated: what each rank runs and on which buffers.</summary>
internal sealed record CollectiveCall(
    CollectiveKind Kind,
    string? ScheduleKey,                 // a schedule registered at creation, or null: uploaded with this call
    CollectiveOp[][] OpsPerRank,
    IReadOnlyList<MemoryBuffer> Inputs,
    IReadOnlyList<MemoryBuffer> Outputs,
    long Count,                          // the element count chunks are cut from
    int Grain,                           // chunk starts are multiples of this (Chunks)
    DType DType,
    IReadOnlyList<AcceleratorStream> Streams,
    bool Wait,
    int? RankThatNeverArrives);          // test hook: that rank runs nothing

/// <summary>Runs step schedules over a group of accelerators of one kind (CPU tasks, or CUDA kernels over peer memory).</summary>
internal abstract class CollectiveBackend : IDisposable
{
    /// <summary>Elements of staging and of F32 partials each rank registered.</summary>
    public abstract long StagingBytes { get; }
    public abstract long PartialElements { get; }

    /// <summary>Makes a fixed schedule available under <paramref name="key"/> (uploaded once, so calls copy nothing).</summary>
    public abstract void RegisterSchedule(string key, CollectiveOp[][] opsPerRank);

    /// <summary>Launches every rank's schedule; when <see cref="CollectiveCall.Wait"/>, returns once all have finished.</summary>
    public abstract void Run(CollectiveCall call);

    /// <summary>
    /// Whether an AllReduce by <paramref name="algorithm"/> of <paramref name="count"/> elements of
    /// <paramref name="elementSize"/> bytes runs on a low-latency transport instead of the schedule (CUDA only).
    /// </summary>
    public virtual bool TakesLowLatency(AllReduce.AllReduceAlgorithm algorithm, long count, int elementSize) => false;

    /// <summary>Launches an AllReduce on the low-latency transport (one-shot or two-shot); as <see cref="Run"/> otherwise.</summary>
    public virtual void RunLowLatency(CollectiveCall call, bool twoShot) =>
        throw new NotSupportedException("this backend has no low-latency transport");

    /// <summary>Waits (with the timeout as deadline) for the calls enqueued without waiting.</summary>
    public abstract void Synchronize(CollectiveKind lastKind, IReadOnlyList<AcceleratorStream> streams);

    /// <summary>The unroll of the low-latency build the last low-latency call ran (0: none ran, or no such transport).</summary>
    public virtual int LastLowLatencyUnroll => 0;

    /// <summary>Whether the last low-latency call ran the 128-byte-line build.</summary>
    public virtual bool LastLowLatencyLines128 => false;

    /// <summary>The grid (blocks per rank) of the last low-latency call (0: none ran).</summary>
    public virtual int LastLowLatencyBlocks => 0;

    /// <summary>Threads a block of the last low-latency call (0: none ran).</summary>
    public virtual int LastLowLatencyThreads => 0;

    /// <summary>The low-latency transport's trace of its last call, a line per rank (a traced CUDA build only; else none).</summary>
    public virtual IReadOnlyList<string> DescribeLowLatencyTrace() => [];

    public abstract void Dispose();
}
