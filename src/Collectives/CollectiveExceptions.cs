namespace MoeRuntime.Collectives;

/// <summary>
/// A rank waited longer than the communicator's timeout for a peer (a peer that never arrived, or a hung
/// device). Names the collective, the rank that gave up and the step it was waiting at (-1 when the host's
/// deadline expired before the device reported a step). After it the communicator refuses further calls.
/// </summary>
public sealed class CollectiveTimeoutException : Exception
{
    public CollectiveTimeoutException(CollectiveKind collective, int rank, int step, TimeSpan timeout, string detail)
        : base($"{collective} timed out on rank {rank} at step {(step >= 0 ? step.ToString() : "unknown")} after {timeout.TotalMilliseconds:F0} ms: {detail}")
    {
        Collective = collective;
        Rank = rank;
        Step = step;
        Timeout = timeout;
    }

    public CollectiveKind Collective { get; }
    public int Rank { get; }
    public int Step { get; }
    public TimeSpan Timeout { get; }
}

/// <summary>A call on a communicator that an earlier failure (a timeout) left unusable.</summary>
public sealed class CommunicatorFailedException(string message) : InvalidOperationException(message);
