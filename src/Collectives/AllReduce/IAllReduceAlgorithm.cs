using MoeRuntime.Accelerators;

namespace MoeRuntime.Collectives.AllReduce;

/// <summary>The AllReduce algorithms a <see cref="Communicator"/> offers.</summary>
public enum AllReduceAlgorithm
{
    /// <summary>Picks one by rank count and size (<see cref="AllReduceSelector"/>); the communicator says which.</summary>
    Auto,
    Ring,
    TwoShot,
    OneShot,
    Nccl,
}

/// <summary>One AllReduce strategy: sums every rank's input into every rank's output.</summary>
public interface IAllReduceAlgorithm
{
    AllReduceAlgorithm Kind { get; }

    /// <summary>Enqueues the AllReduce on each rank's stream (inputs and outputs validated by the communicator).</summary>
    void Run(Communicator communicator, IReadOnlyList<MemoryBuffer> perRankInput, IReadOnlyList<MemoryBuffer> perRankOutput, IReadOnlyList<AcceleratorStream> streams);
}

/// <summary>An AllReduce written as a step schedule, executed by the communicator's backend (CPU or CUDA).</summary>
public abstract class ScheduledAllReduce : IAllReduceAlgorithm
{
    public abstract AllReduceAlgorithm Kind { get; }

    /// <summary>
    /// The ops rank <paramref name="rank"/> of <paramref name="ranks"/> runs, steps separated by barriers;
    /// <paramref name="inPlace"/>: for calls whose output is their input (some algorithms then stage the inputs).
    /// </summary>
    internal abstract Schedule.CollectiveOp[] BuildSchedule(int rank, int ranks, bool inPlace);

    /// <summary>The out-of-place schedule.</summary>
    internal Schedule.CollectiveOp[] BuildSchedule(int rank, int ranks) => BuildSchedule(rank, ranks, inPlace: false);

    public void Run(Communicator communicator, IReadOnlyList<MemoryBuffer> perRankInput, IReadOnlyList<MemoryBuffer> perRankOutput, IReadOnlyList<AcceleratorStream> streams) =>
        communicator.RunSchedule(CollectiveKind.AllReduce, Kind, perRankInput, perRankOutput, perRankInput[0].Length, streams);
}
