namespace MoeRuntime.Collectives;

/// <summary>The collectives a <see cref="Communicator"/> runs (what errors and timeouts name).</summary>
public enum CollectiveKind
{
    AllReduce,
    ReduceScatter,
    AllGather,
    AllToAllV,
}
