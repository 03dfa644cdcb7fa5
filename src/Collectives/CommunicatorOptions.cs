namespace MoeRuntime.Collectives;

/// <summary>How a <see cref="Communicator"/> is set up.</summary>
public sealed record CommunicatorOptions
{
    /// <summary>
    /// Bytes of staging registered per rank: the largest tensor (AllReduce, ReduceScatter input, AllGather output,
    /// all-to-allv send buffer) a call may move. The ring's F32 partial sums take twice this again.
    /// </summary>
    public long CapacityBytes { get; init; } = 64L << 20;

    /// <summary>How long a rank waits for a peer at any step before the call fails with <see cref="CollectiveTimeoutException"/>.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// CUDA: the largest two-shot AllReduce, in bytes, that runs on the low-latency transport instead of the step
    /// schedule (0: none). Null: MOE_LL_TWOSHOT_MAX_BYTES when set, else 1 MB (LowLatencyLayout.DefaultTwoShotMaxBytes, measured on 2 x H200).
    /// Tests and A/B sweeps set it to keep larger two-shot calls on the low-latency transport.
    /// </summary>
    public long? TwoShotLowLatencyMaxBytes { get; init; }

    /// <summary>
    /// CUDA: the LL kernel's A/B switches (fence, lazy-fence cycles, epoch tail, two-shot units per thread).
    /// Null: from MOE_LL_FENCE, MOE_LL_LAZY_CYCLES, MOE_LL_TAIL and MOE_LL_UNITS_PER_THREAD. Tests set it
    /// to run every variant in one process.
    /// </summary>
    internal Cuda.LowLatencyKernelOptions? LowLatencyKernel { get; init; }
}
