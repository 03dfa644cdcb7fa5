namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// How the one host thread of an <see cref="ExpertParallelMoe"/> forward enqueues the ranks' experts (the phase between the
/// dispatch and the combine). Each rank's stream runs its own work in the same order either way, so outputs are the same bits.
/// </summary>
public enum EpEnqueueOrder
{
    /// <summary>
    /// Step by step across ranks (rank 0's permute, rank 1's permute, rank 0's gate_up, rank 1's gate_up, ...): rank r's
    /// experts start one step's enqueue after rank r - 1's, not its whole phase's.
    /// </summary>
    Interleaved,
    /// <summary>Rank after rank: rank r's experts start once ranks 0..r-1 have enqueued all theirs (the default).</summary>
    Ranked,
}

/// <summary>
/// The process default of <see cref="EpEnqueueOrder"/>: MOE_EP_ENQUEUE=interleaved|ranked (ranked when unset); the EP bench's
/// JSON names it. Ranked by default: on 2 x H200 (2026-11-30, sixth session, `epstart-check.sh`) interleaving started rank
/// 1's experts 25 us after rank 0's instead of 110 (Qwen3-30B-A3B, T=128), but its host enqueue of the phase took longer
/// (DeepSeek-V3 T=128: 252 against 135 us), and the forward's device phases came out slower at T &lt;= 128 (DeepSeek-V3
/// 366/1586/2314 against 303/1411/2143 us at T=1/16/128; Qwen3 T=1 346 against 251) and 1-7% faster only for Qwen3 at
/// T >= 128.
/// </summary>
public static class EpEnqueue
{
    private static EpEnqueueOrder? s_default;

    /// <summary>Read once; a bad value throws an ArgumentException naming it (not a type initializer's wrapper) at each read.</summary>
    public static EpEnqueueOrder Default => s_default ??= Parse(Environment.GetEnvironmentVariable("MOE_EP_ENQUEUE"));

    /// <summary>"interleaved" or "ranked" (any case; null or empty: ranked).</summary>
    public static EpEnqueueOrder Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "interleaved" => EpEnqueueOrder.Interleaved,
        null or "" or "ranked" => EpEnqueueOrder.Ranked,
        _ => throw new ArgumentException($"MOE_EP_ENQUEUE='{value}': expected interleaved or ranked"),
    };

    /// <summary>The name <see cref="Parse"/> reads back.</summary>
    public static string Name(EpEnqueueOrder order) => order.ToString().ToLowerInvariant();
}
