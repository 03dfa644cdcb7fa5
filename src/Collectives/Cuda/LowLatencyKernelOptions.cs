using System.Globalization;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// The A/B switches of the LL AllReduce kernel (ll_allreduce.cu) and of its two-shot grid, fixed when a communicator
/// is created: from the environment (<see cref="FromEnvironment"/>) unless the communicator's options carry them
/// (tests run every variant in one process that way).
/// </summary>
/// <param name="Fence">LL_FENCE: the two-shot fence (MOE_LL_FENCE; <see cref="DefaultFence"/>, lazy, by default).</param>
/// <param name="LazyCycles">LL_LAZY_CYCLES: under <see cref="LowLatencyFence.Lazy"/>, SM cycles a two-shot wait polls before it fences (MOE_LL_LAZY_CYCLES).</param>
/// <param name="Tail">LL_TAIL: where the epoch is kept and how a call publishes it (MOE_LL_TAIL=counter|single|blocks; blocks by default).</param>
/// <param name="TwoShotUnitsPerThread">Units per thread a two-shot grid aims at before it adds blocks (MOE_LL_UNITS_PER_THREAD; 1 by default).</param>
/// <param name="Trace">LL_TRACE: the build that stamps each call's steps (<see cref="LowLatencyTrace"/>; MOE_LL_TRACE=1; off by default).</param>
/// <param name="Unroll">LL_UNROLL: units a thread's loops keep in flight in calls above <paramref name="SmallCallMaxBytes"/> (MOE_LL_UNROLL: 1, 2 or 4; 4 by default).</param>
/// <param name="NcPeers">LL_NC_PEERS: the receive regions' addresses read through the read-only cache (MOE_LL_NC_PEERS=1).</param>
/// <param name="SplitEntries">One-shot and two-shot calls launch the _one and _two entries, each with only its path's code (MOE_LL_SPLIT;
/// on by default: 2 x H200, x2-11f.sh, three runs each, two-shot at 1 MB 11.53-11.61 -> 11.32-11.47 us, one-shot at 256 KB
/// 5.14-5.19 -> 4.95-5.02, the other sizes within 0.1 us; MOE_LL_SPLIT=0 launches the one kernel holding both).</param>
/// <param name="SmallCallMaxBytes">Two-shot calls of at most this many bytes run the unroll-1 build (<see cref="UnrollFor"/>; MOE_LL_SMALL_MAX_BYTES, 0: never).</param>
/// <param name="OneShotSmallCallMaxBytes">One-shot calls of at most this many bytes run the unroll-1 build (MOE_LL_ONESHOT_SMALL_MAX_BYTES, 0: never).</param>
/// <param name="OneShotMaxBlocks">The largest one-shot grid (MOE_LL_ONESHOT_MAX_BLOCKS, 1-264; two-shot's is LowLatencyLayout.MaxBlocks).</param>
/// <param name="BlockThreads">Threads a block of a grid under its cap (MOE_LL_BLOCK_THREADS, 32-512 by 32; LowLatencyLayout.Grid).</param>
/// <param name="Line128MinBytes">Calls of at least this many bytes run the 128-byte-line build (LL_LINE128, ll_allreduce.cu; MOE_LL128_MIN_BYTES; <see cref="DefaultLine128MinBytes"/>; 0: never).</param>
/// <param name="OneShotUnitsPerThread">Units per thread a one-shot grid aims at before it adds blocks (MOE_LL_ONESHOT_UNITS_PER_THREAD; 1 by default).</param>
internal sealed record LowLatencyKernelOptions(
    LowLatencyFence Fence = LowLatencyKernelOptions.DefaultFence,
    int LazyCycles = LowLatencyKernelOptions.DefaultLazyCycles,
    LowLatencyTail Tail = LowLatencyTail.Blocks,
    int TwoShotUnitsPerThread = LowLatencyKernelOptions.DefaultTwoShotUnitsPerThread,
    bool Trace = false,
    int Unroll = LowLatencyKernelOptions.DefaultUnroll,
    bool NcPeers = false,
    long SmallCallMaxBytes = LowLatencyKernelOptions.DefaultSmallCallMaxBytes,
    bool SplitEntries = true,
    long OneShotSmallCallMaxBytes = LowLatencyKernelOptions.DefaultOneShotSmallCallMaxBytes,
    int OneShotMaxBlocks = LowLatencyKernelOptions.DefaultOneShotMaxBlocks,
    int BlockThreads = LowLatencyKernelOptions.DefaultBlockThreads,
    int OneShotUnitsPerThread = LowLatencyKernelOptions.DefaultOneShotUnitsPerThread,
    long Line128MinBytes = LowLatencyKernelOptions.DefaultLine128MinBytes)
{
    /// <summary>
    /// 2 x H200, bf16, graph-timed, NCCL in the same run (fifth session, tools/gpu/twoshot6-check.sh): two-shot over LL
    /// 7.97 / 9.98 us at 1 / 32 KB with the system fence, 6.57 / 8.42 lazy, 6.53 / 7.66 lazy with one unit a thread
    /// (1 MB: 12.20); the LL test class passed under lazy, sleep and step0 and twice more with every variant.
    /// </summary>
    public const LowLatencyFence DefaultFence = LowLatencyFence.Lazy;

    /// <summary>One unit (16 bytes) a thread: more threads, shorter poll chains (7.66 against 8.42 us at 32 KB).</summary>
    public const int DefaultTwoShotUnitsPerThread = 1;

    /// <summary>About 2 us at an H200's 1.98 GHz: longer than a line's one-way trip (~1.2 us), so a healthy call never fences.</summary>
    public const int DefaultLazyCycles = 4096;
    public const int MaxLazyCycles = 1 << 24;
    public const int MaxUnitsPerThread = 64;
    public const int DefaultUnroll = 4;

    /// <summary>
    /// 2 x H200, bf16, graph-timed, NCCL in the same run (eleventh session, tools/gpu/x2-11d.sh, two runs each): the unroll-1
    /// build took two-shot from 6.1-6.3 to 5.2-5.3 us at 1 KB and 7.3-7.45 to 6.6 at 256 KB, one-shot 3.4-3.5 to 3.2 and 5.6-5.7
    /// to 5.1, but lost at 1 MB (two-shot 11.7-11.9 against 12.4-12.55, one-shot 10.75-10.9 against 11.0-11.15).
    /// The trace put the difference in the code between a call's wait and its first store and between a line's arrival
    /// and the push: unroll 1 is 50 registers and far less code on that path than unroll 4's 122. At 512 KB (x2-11e.sh,
    /// two runs each) unroll 1 took two-shot 8.04-8.05 -> 7.79 us and one-shot 7.16-7.19 -> 7.25-7.27, so the line is there.
    /// </summary>
    public const long DefaultSmallCallMaxBytes = 512L << 10;
    public const long MaxSmallCallMaxBytes = 1L << 30;

    /// <summary>
    /// One-shot at 1 MB (2 x H200, x2-11h.sh, two runs each, alternating): 10.27-10.30 us with 64 blocks and unroll 4, 9.52-9.53
    /// with 128 blocks, 9.86-9.87 with unroll 1, 9.37-9.38 with both; at 512 KB all four within 0.1 us. Two-shot at 1 MB lost
    /// with either (11.34-11.41 against 12.76-12.81, 12.08, 11.92-11.93), so these are one-shot's own. Unroll 1 over one-shot's
    /// whole LL range (1 MB) is the default (x2-11i.sh: one-shot at 1 MB 9.96 us, the LL classes passed with it). The cap stays
    /// 64: its first default of 128 never reached the grid (the resident-block count started from two-shot's cap), which
    /// x2-11i's test caught after the device time for a run with the fix had gone; MOE_LL_ONESHOT_MAX_BLOCKS=128 is the
    /// measured 9.37 us, not yet through the test classes.
    /// </summary>
    public const long DefaultOneShotSmallCallMaxBytes = 1L << 20;
    public const int DefaultOneShotMaxBlocks = 64;

    /// <summary>
    /// Closing table of the eleventh session (2 x H200, bf16): a call's time stayed flat while its one block grew from 64 to
    /// 256 busy threads (two-shot 5.16 -> 5.31 us, 1 to 4 KB), rose 0.5 us at 512 (8 KB: 5.81; one-shot 3.41 -> 4.12), and
    /// stayed there as blocks of 512 were added (16-128 KB: 5.77-5.96): what a block's SM pushes and polls costs, not the
    /// number of SMs. So grids under their cap spread over blocks of at most 256 threads.
    /// </summary>
    public const int DefaultBlockThreads = 256;

    /// <summary>
    /// One unit a thread for one-shot too (2 x H200, bf16, x2-12e.sh, three runs each, alternating): one-shot 3.64-3.80 ->
    /// 3.17-3.32 us at 4-8 KB, 3.98-4.13 -> 3.55-3.63 at 64 KB, 5.00-5.13 -> 4.76-4.85 at 256 KB, 1 KB and 512 KB-1 MB within
    /// 0.1 us. Two were the default while a block was always 512 threads, where a unit a thread only set the blocks.
    /// </summary>
    public const int DefaultOneShotUnitsPerThread = 1;

    /// <summary>
    /// 2 x H200, bf16, graph-timed, x2-12f.sh (two runs each, alternating, NCCL in the same run), 8-byte lines against
    /// 128-byte lines from 128 KB: two-shot 11.34 -> 9.15 us at 1 MB (NCCL 15.72-16.10), 7.46-7.54 -> 7.00-7.02 at 512 KB,
    /// 6.26-6.31 -> 6.26-6.27 at 256 KB, 5.67-5.74 -> 6.24-6.25 at 128 KB; one-shot 9.98 -> 8.23-8.31, 6.56-6.59 -> 5.98-5.99,
    /// 4.76-4.77 -> 4.50-4.51, 3.92-3.93 -> 4.01. Lines from 256 KB.
    /// </summary>
    public const long DefaultLine128MinBytes = 256L << 10;

    public static LowLatencyKernelOptions Default { get; } = new();

    public static LowLatencyKernelOptions FromEnvironment() => Parse(
        Environment.GetEnvironmentVariable("MOE_LL_FENCE"),
        Environment.GetEnvironmentVariable("MOE_LL_LAZY_CYCLES"),
        Environment.GetEnvironmentVariable("MOE_LL_TAIL"),
        Environment.GetEnvironmentVariable("MOE_LL_UNITS_PER_THREAD"),
        Environment.GetEnvironmentVariable("MOE_LL_TRACE"),
        Environment.GetEnvironmentVariable("MOE_LL_UNROLL"),
        Environment.GetEnvironmentVariable("MOE_LL_NC_PEERS"),
        Environment.GetEnvironmentVariable("MOE_LL_SMALL_MAX_BYTES"),
        Environment.GetEnvironmentVariable("MOE_LL_SPLIT"),
        Environment.GetEnvironmentVariable("MOE_LL_ONESHOT_SMALL_MAX_BYTES"),
        Environment.GetEnvironmentVariable("MOE_LL_ONESHOT_MAX_BLOCKS"),
        Environment.GetEnvironmentVariable("MOE_LL_BLOCK_THREADS"),
        Environment.GetEnvironmentVariable("MOE_LL_ONESHOT_UNITS_PER_THREAD"),
        Environment.GetEnvironmentVariable("MOE_LL128_MIN_BYTES"));

    /// <summary>The switches from their environment variables' text (null or blank: the default); bad text is refused by name.</summary>
    internal static LowLatencyKernelOptions Parse(string? fence, string? lazyCycles, string? tail, string? unitsPerThread, string? trace = null,
                                                  string? unroll = null, string? ncPeers = null, string? smallMaxBytes = null,
                                                  string? split = null, string? oneShotSmallMaxBytes = null, string? oneShotMaxBlocks = null,
                                                  string? blockThreads = null, string? oneShotUnitsPerThread = null,
                                                  string? line128MinBytes = null) => new(
        LowLatencyLayout.ParseFence(fence),
        Number("MOE_LL_LAZY_CYCLES", lazyCycles, DefaultLazyCycles, 0, MaxLazyCycles),
        tail?.Trim().ToLowerInvariant() switch
        {
            null or "" or "blocks" => LowLatencyTail.Blocks,
            "single" => LowLatencyTail.Single,
            "counter" => LowLatencyTail.Counter,
            _ => throw new ArgumentException($"MOE_LL_TAIL='{tail}': expected blocks (the default: an epoch word per block, no fence or atomic), "
                + "single (the counter, but a one-block grid stores its epoch straight away) or counter (one word, fence + atomic count of finished blocks)"),
        },
        Number("MOE_LL_UNITS_PER_THREAD", unitsPerThread, DefaultTwoShotUnitsPerThread, 1, MaxUnitsPerThread),
        Number("MOE_LL_TRACE", trace, 0, 0, 1) == 1,
        Number("MOE_LL_UNROLL", unroll, DefaultUnroll, 1, 4) is var u && u != 3 ? u : throw new ArgumentException($"MOE_LL_UNROLL='{unroll}': expected 1, 2 or 4"),
        Number("MOE_LL_NC_PEERS", ncPeers, 0, 0, 1) == 1,
        Bytes("MOE_LL_SMALL_MAX_BYTES", smallMaxBytes, DefaultSmallCallMaxBytes),
        Number("MOE_LL_SPLIT", split, 1, 0, 1) == 1,
        Bytes("MOE_LL_ONESHOT_SMALL_MAX_BYTES", oneShotSmallMaxBytes, DefaultOneShotSmallCallMaxBytes),
        Number("MOE_LL_ONESHOT_MAX_BLOCKS", oneShotMaxBlocks, DefaultOneShotMaxBlocks, 1, LowLatencyLayout.EpochWordsForBlocks),
        Number("MOE_LL_BLOCK_THREADS", blockThreads, DefaultBlockThreads, 32, LowLatencyLayout.BlockThreads) is var t && t % 32 == 0 ? t
            : throw new ArgumentException($"MOE_LL_BLOCK_THREADS='{blockThreads}': expected a multiple of 32 from 32 to {LowLatencyLayout.BlockThreads}"),
        Number("MOE_LL_ONESHOT_UNITS_PER_THREAD", oneShotUnitsPerThread, LowLatencyKernelOptions.DefaultOneShotUnitsPerThread, 1, MaxUnitsPerThread),
        Bytes("MOE_LL128_MIN_BYTES", line128MinBytes, DefaultLine128MinBytes));

    private static long Bytes(string name, string? text, long fallback) =>
        string.IsNullOrWhiteSpace(text) ? fallback
            : long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long bytes) && bytes <= MaxSmallCallMaxBytes ? bytes
            : throw new ArgumentException($"{name}='{text}': expected bytes from 0 (never) to {MaxSmallCallMaxBytes}");

    /// <summary>The kernel a call of <paramref name="dtypeEntry"/> (ll_allreduce_bf16, ...) launches: with _one or _two appended when the entries are split.</summary>
    public string EntryFor(string dtypeEntry, bool twoShot) => SplitEntries ? dtypeEntry + (twoShot ? "_two" : "_one") : dtypeEntry;

    /// <summary>
    /// The unroll of the build a call of <paramref name="bytes"/> runs: 1 up to <see cref="SmallCallMaxBytes"/> (two-shot) or
    /// <see cref="OneShotSmallCallMaxBytes"/> (one-shot), else <see cref="Unroll"/>.
    /// </summary>
    public int UnrollFor(long bytes, bool twoShot) => bytes <= (twoShot ? SmallCallMaxBytes : OneShotSmallCallMaxBytes) ? 1 : Unroll;

    /// <summary>
    /// The build a call of <paramref name="bytes"/> runs: 128-byte lines from <see cref="Line128MinBytes"/> on (when on;
    /// the transport falls back to <see cref="UnrollFor"/>'s build for a call its line slots cannot hold), else the unroll's.
    /// </summary>
    public LowLatencyBuild BuildFor(long bytes, bool twoShot) =>
        Line128MinBytes > 0 && bytes >= Line128MinBytes ? LowLatencyBuild.Line128 : new(UnrollFor(bytes, twoShot), false);

    /// <summary>The NVRTC defines of <paramref name="build"/> of this variant (<see cref="CompileOptions()"/> with its unroll, and LL_LINE128).</summary>
    public string[] CompileOptions(LowLatencyBuild build) =>
        [.. (this with { Unroll = build.Unroll }).CompileOptions(), .. build.Lines128 ? ["-DLL_LINE128=1"] : Array.Empty<string>()];

    private static int Number(string name, string? text, int fallback, int min, int max)
    {
        if (string.IsNullOrWhiteSpace(text))
            return fallback;
        if (int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max)
            return value;
        throw new ArgumentException($"{name}='{text}': expected a whole number from {min} to {max}");
    }

    /// <summary>
    /// The NVRTC defines that build this variant of ll_allreduce.cu (part of the kernel cache's key). Trace, unroll and
    /// nc-peers add nothing at their defaults, so the default build's key stays what it was.
    /// </summary>
    public string[] CompileOptions() =>
    [
        $"-DLL_FENCE={(int)Fence}", $"-DLL_LAZY_CYCLES={LazyCycles}", $"-DLL_TAIL={(int)Tail}",
        .. Trace ? ["-DLL_TRACE=1"] : Array.Empty<string>(),
        .. Unroll != DefaultUnroll ? [$"-DLL_UNROLL={Unroll}"] : Array.Empty<string>(),
        .. NcPeers ? ["-DLL_NC_PEERS=1"] : Array.Empty<string>(),
    ];

    /// <summary>A short name for logs and test output, e.g. "fence=lazy lazy=4096 tail=blocks upt=2".</summary>
    public override string ToString() =>
        $"fence={Fence.ToString().ToLowerInvariant()} lazy={LazyCycles} tail={Tail.ToString().ToLowerInvariant()} upt={TwoShotUnitsPerThread}{(Trace ? " trace" : "")}{(Unroll != DefaultUnroll ? $" unroll={Unroll}" : "")}{(NcPeers ? " nc-peers" : "")}{(SmallCallMaxBytes != DefaultSmallCallMaxBytes ? $" small={SmallCallMaxBytes}" : "")}{(SplitEntries ? "" : " combined")}{(OneShotSmallCallMaxBytes != DefaultOneShotSmallCallMaxBytes ? $" one-shot-small={OneShotSmallCallMaxBytes}" : "")}{(OneShotMaxBlocks != DefaultOneShotMaxBlocks ? $" one-shot-blocks={OneShotMaxBlocks}" : "")}{(BlockThreads != DefaultBlockThreads ? $" block-threads={BlockThreads}" : "")}{(OneShotUnitsPerThread != LowLatencyKernelOptions.DefaultOneShotUnitsPerThread ? $" one-shot-upt={OneShotUnitsPerThread}" : "")}{(Line128MinBytes != DefaultLine128MinBytes ? $" ll128-from={Line128MinBytes}" : "")}";
}

/// <summary>A build of ll_allreduce.cu a call runs: its unroll (LL_UNROLL), or the 128-byte lines (LL_LINE128; unroll 1, which that code ignores).</summary>
internal readonly record struct LowLatencyBuild(int Unroll, bool Lines128)
{
    public static LowLatencyBuild Line128 { get; } = new(1, true);
}
