namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// How the one host thread of an <see cref="ExpertParallelMoe"/> forward enqueues the ranks' experts (the phase between the
/// dispatch and the combine). Each rank's stream runs its own work in the same order either way, so outputs are the same bits.
/// </summary>
public enum EpEnqueueOrder
{
    /// <summary>
    /// Step by step across ranks (rank 0's permute, rank 1's permute, rank 0's gate_up, rank 1's gate_up, ...): rank r's
    /// experts start one step's enqueue after rank r - 1's, not its whole phase's (the default).
    /// </summary>
    Interleaved,
    /// <summary>Rank after rank: rank r's experts start once ranks 0..r-1 have enqueued all theirs (the order before).</summary>
    Ranked,
}

/// <summary>The process default of <see cref="EpEnqueueOrder"/>: MOE_EP_ENQUEUE=interleaved|ranked (interleaved when unset); the EP bench's JSON names it.</summary>
public static class EpEnqueue
{
    private static EpEnqueueOrder? s_default;

    /// <summary>Read once; a bad value throws an ArgumentException naming it (not a type initializer's wrapper) at each read.</summary>
    public static EpEnqueueOrder Default => s_default ??= Parse(Environment.GetEnvironmentVariable("MOE_EP_ENQUEUE"));

    /// <summary>"interleaved" or "ranked" (any case; null or empty: interleaved).</summary>
    public static EpEnqueueOrder Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "interleaved" => EpEnqueueOrder.Interleaved,
        "ranked" => EpEnqueueOrder.Ranked,
        _ => throw new ArgumentException($"MOE_EP_ENQUEUE='{value}': expected interleaved or ranked"),
    };

    /// <summary>The name <see cref="Parse"/> reads back.</summary>
    public static string Name(EpEnqueueOrder order) => order.ToString().ToLowerInvariant();
}
