using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The wgmma kernel's build and launch choices: each a compile option or launch argument, a default, an override for
/// tests and an environment variable for A/B runs (read once; a bad value is the ArgumentException naming it).
/// </summary>
public static partial class GroupedGemmWgmma
{
    /// <summary>
    /// The launcher's compile options: <paramref name="smallTiles"/> and <paramref name="schedule"/> as the launch resolved
    /// them, the others the overrides' or the environment's, else the defaults.
    /// </summary>
    private static List<string> CompileOptions(SmallTileMode smallTiles, Schedule schedule, int cluster)
    {
        var options = new List<string>(schedule.CompileOptions);
        if (cluster > 1)
            options.Add($"-DGW_CLUSTER={cluster}");
        if (cluster > 1 && !ClusterSharesW.Value)
            options.Add("-DGW_CLUSTER_SHARE=0");
        if (TrapOnHang)
            options.Add("-DGW_HANG_TRAP");
        if ((GroupMOverride ?? GroupMFromEnvironment()) is { } groupM)
            options.Add($"-DGW_GROUP_M={groupM}");
        string epilogue = EpilogueOverride ?? EpilogueFromEnvironment() ?? DefaultEpilogue;
        options.Add($"-DGW_EPILOGUE_SMEM={(epilogue == SmemEpilogue ? 1 : 0)}");
        options.Add($"-DGW_SMALL_TILES={(int)smallTiles}");
        if (TraceRequested)
            options.Add("-DGW_TRACE");
        if (LateOddBlocksNsOverride is { } late)
            options.Add($"-DGW_LATE_ODD_BLOCKS={late}");
        if ((ProducerRegistersOverride ?? ProducerRegistersFromEnvironment()) is { } producer)
            options.Add($"-DGW_PRODUCER_REGS={producer}");
        return options;
    }

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_TRACE=1: every launch is the -DGW_TRACE build, which writes <see cref="TraceValues"/> values
    /// per work item into <see cref="TraceBuffer"/> (grouped_gemm_wgmma.cu, GW_TRACE; a diagnostic: the bench sets the buffer).
    /// </summary>
    internal static bool TraceRequested => TraceOverride ?? TraceSetting.Value;

    /// <summary>Tests: the traced build (or not) instead of the environment's choice.</summary>
    internal static bool? TraceOverride { get; set; }

    private static readonly EnvironmentSetting<bool> TraceSetting = new("MOE_GROUPED_GEMM_WGMMA_TRACE", ParseTrace);

    internal static bool ParseTrace(string? value) => value?.Trim() switch
    {
        null or "" or "0" => false,
        "1" => true,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_TRACE='{value}': expected 1 (the traced build) or 0"),
    };

    /// <summary>Values per work item of the traced build (GW_TRACE_VALUES): four stamps, where it ran, what it was.</summary>
    internal const int TraceValues = 6;

    /// <summary>Where the traced build writes: [work items, <see cref="TraceValues"/>] u64, zeroed by the bench.</summary>
    internal static MemoryBuffer<long>? TraceBuffer { get; set; }

    /// <summary>The last traced launch's bound on its work items (entries past the real count stay zero).</summary>
    internal static long TracedItems { get; private set; }

    /// <summary>Tests only: the odd blocks start this many ns late (GW_LATE_ODD_BLOCKS), as blocks do whose SMs another kernel holds.</summary>
    internal static int? LateOddBlocksNsOverride { get; set; }

    /// <summary>Tests: the producer's registers (GW_PRODUCER_REGS) instead of the environment's or the kernel's 56.</summary>
    internal static int? ProducerRegistersOverride { get; set; }

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_PRODUCER_REGS=24..64 (a multiple of 8; default the kernel's 56), for A/B runs: the producer
    /// warpgroup's registers after setmaxnreg; the consumers get the rest (3 x 168 - producer) / 2, to a multiple of 8. One
    /// H200, 2026-12-01 (twenty-first session): at 40 (consumers 232) ptxas spilled 16 bytes in the producer, at 56
    /// (consumers 224) nothing, and 56 was 0-2% faster on every call of the sweep.
    /// </summary>
    internal static int? ProducerRegistersFromEnvironment() => ProducerRegisters.Value;

    private static readonly EnvironmentSetting<int?> ProducerRegisters = new("MOE_GROUPED_GEMM_WGMMA_PRODUCER_REGS", ParseProducerRegisters);

    internal static int? ParseProducerRegisters(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return null;
        if (!int.TryParse(value, out int count) || count < 24 || count > 64 || count % 8 != 0)
            throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_PRODUCER_REGS='{value}': expected a multiple of 8 from 24 to 64 registers");
        return count;
    }

    /// <summary>The epilogue that stages each warp's rows in shared memory and stores 16-byte vectors, 128 bytes a row.</summary>
    public const string SmemEpilogue = "smem";

    /// <summary>The epilogue that stores straight from the accumulator registers (4- or 8-byte stores, 8 rows a warp store).</summary>
    public const string DirectEpilogue = "direct";

    /// <summary>The epilogue without an override or MOE_GROUPED_GEMM_WGMMA_EPILOGUE: flip here after an A/B run.</summary>
    public const string DefaultEpilogue = SmemEpilogue;

    /// <summary>Tests: compile with this epilogue (<see cref="SmemEpilogue"/> or <see cref="DirectEpilogue"/>) instead of the environment's or the default.</summary>
    internal static string? EpilogueOverride { get; set; }

    /// <summary>MOE_GROUPED_GEMM_WGMMA_EPILOGUE=direct|smem: how the output tile is stored, for A/B runs.</summary>
    internal static string? EpilogueFromEnvironment() => Epilogue.Value;

    private static readonly EnvironmentSetting<string?> Epilogue = new("MOE_GROUPED_GEMM_WGMMA_EPILOGUE", ParseEpilogue);

    internal static string? ParseEpilogue(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return null;
        string name = value.Trim().ToLowerInvariant();
        if (name is not (SmemEpilogue or DirectEpilogue))
            throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_EPILOGUE='{value}': expected {SmemEpilogue} or {DirectEpilogue}");
        return name;
    }

    /// <summary>What the kernel does for a tile of at most 64 rows of its expert (grouped_gemm_wgmma.cu, "Small tiles"; the GW_SMALL_TILES mask).</summary>
    [Flags]
    internal enum SmallTileMode
    {
        /// <summary>As for any tile: the 128-row X box, both consumer warpgroups multiply.</summary>
        Off = 0,

        /// <summary>X loaded in 16-row boxes, the expert's rows only.</summary>
        Boxes = 1,

        /// <summary>The consumer warpgroup whose 64 rows hold none of the expert's issues no wgmma.</summary>
        Idle = 2,

        /// <summary>Both.</summary>
        On = Boxes | Idle,
    }

    /// <summary>
    /// The mode without an override or MOE_GROUPED_GEMM_WGMMA_SMALL_TILES: both parts; the kernel idles a warpgroup only on an
    /// expert's only tile (grouped_gemm_wgmma.cu, "Small tiles"). Before that rule (nineteenth session) the host ran the idle
    /// warpgroup only up to 64 rows an expert on average: on every small tile, it lost where experts had several tiles.
    /// </summary>
    internal const SmallTileMode DefaultSmallTiles = SmallTileMode.On;

    /// <summary>Tests: compile with this small-tile mode instead of the environment's or the default.</summary>
    internal static SmallTileMode? SmallTilesOverride { get; set; }

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=auto|on|off|boxes|idle (default auto: <see cref="DefaultSmallTiles"/>), for A/B runs:
    /// <see cref="SmallTileMode"/>; null for auto. The output's bits are the same in every mode. Read once; a bad value is
    /// the ArgumentException naming it.
    /// </summary>
    internal static SmallTileMode? SmallTilesFromEnvironment() => SmallTiles.Value;

    private static readonly EnvironmentSetting<SmallTileMode?> SmallTiles = new("MOE_GROUPED_GEMM_WGMMA_SMALL_TILES", ParseSmallTiles);

    internal static SmallTileMode? ParseSmallTiles(string? value) => value?.Trim() switch
    {
        null or "" or "auto" => null,
        "on" => SmallTileMode.On,
        "off" => SmallTileMode.Off,
        "boxes" => SmallTileMode.Boxes,
        "idle" => SmallTileMode.Idle,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_SMALL_TILES='{value}': expected auto, on, off, boxes (a tile of at most 64 rows loads its rows' X only) or idle (its warpgroup without rows issues no wgmma)"),
    };

    /// <summary>The kinds of work order (wgmma_order.cuh).</summary>
    internal enum ScheduleKind
    {
        /// <summary>Block b takes items b, b + grid, ...: no device state, the blocks drift apart where tiles differ in cost.</summary>
        Static,

        /// <summary>Each block claims its next item from the workspace's tickets (<see cref="GroupedGemmWorkspace.Tickets"/>).</summary>
        Dynamic,

        /// <summary>The static order, no block more than a few rounds of items ahead of the last (a count in the tickets).</summary>
        Bounded,

        /// <summary>Bounded (one round) where few of the m-tiles are an expert's only one, else dynamic: the kernel reads the offsets and chooses.</summary>
        Auto,
    }

    /// <summary>
    /// How the persistent blocks walk the work items (wgmma_order.cuh): <see cref="ScheduleKind"/>, with the rounds a block
    /// may run ahead (<see cref="ScheduleKind.Bounded"/>, and 1 for <see cref="ScheduleKind.Auto"/>'s bounded choice). Written
    /// as the environment variable takes it: static, dynamic, bounded:D, auto.
    /// </summary>
    internal readonly record struct Schedule(ScheduleKind Kind, int DriftRounds = 0)
    {
        public static Schedule Static => new(ScheduleKind.Static);

        public static Schedule Dynamic => new(ScheduleKind.Dynamic);

        public static Schedule Auto => new(ScheduleKind.Auto, DriftRounds: 1);

        public static Schedule Bounded(int rounds) => new(ScheduleKind.Bounded, DriftRounds: rounds);

        /// <summary>The build's options for this order (none for static and dynamic: the tickets argument says which).</summary>
        public string[] CompileOptions => Kind switch
        {
            ScheduleKind.Bounded => [$"-DGW_ORDER_BOUNDED={DriftRounds}"],
            ScheduleKind.Auto => [$"-DGW_ORDER_BOUNDED={DriftRounds}", "-DGW_ORDER_AUTO"],
            _ => [],
        };

        public override string ToString() => Kind == ScheduleKind.Bounded ? $"bounded:{DriftRounds}" : Kind.ToString().ToLowerInvariant();
    }

    /// <summary>
    /// The schedule of a call: with a workspace (the tickets live there), the override's, the environment's or
    /// <see cref="DefaultSchedule"/>, where auto is dynamic on a workspace that shares the device
    /// (<see cref="GroupedGemmWorkspace.SharesDevice"/>: a bounded block would wait for blocks that start late); without
    /// one, static.
    /// </summary>
    internal static Schedule ScheduleFor(GroupedGemmWorkspace? workspace)
    {
        if (workspace?.Tickets is null)
            return Schedule.Static;
        var schedule = ScheduleOverride ?? ScheduleFromEnvironment() ?? DefaultSchedule;
        return schedule.Kind == ScheduleKind.Auto && workspace.SharesDevice ? Schedule.Dynamic : schedule;
    }

    /// <summary>
    /// The schedule where a workspace allows any: dynamic. In the layer, whose shared experts run beside the routed ones on
    /// a second stream, a static block that starts late keeps its items. One H200, 2026-12-01 (twentieth session,
    /// docs/PERFORMANCE.md), dynamic / static: the DeepSeek-V3 T = 8192 layer 14.69-14.97 / 16.54-17.52 ms. Auto (twenty-second
    /// session) was faster on isolated calls whose experts all have several m-tiles (Mixtral-8x7B T = 1024: gate_up+silu 826
    /// against 872 us, down 427 against 449, random routing, two processes; DeepSeek-V3 T = 8192 gate_up 1-4%) and slower
    /// on Qwen3-30B-A3B T = 8192 gate_up and down (2%), but not in the Mixtral-8x7B T = 1024 layer: 1515-1767 us against
    /// 1487-1751 dynamic over ten alternating pairs in three calls. So dynamic stays; auto and bounded:D remain for A/B runs.
    /// </summary>
    internal static Schedule DefaultSchedule => Schedule.Dynamic;

    /// <summary>Tests and the sweep: this schedule instead of the environment's or the default (calls without a workspace stay static).</summary>
    internal static Schedule? ScheduleOverride { get; set; }

    /// <summary>MOE_GROUPED_GEMM_WGMMA_SCHEDULE=dynamic|static|bounded:D|auto, for A/B runs; null when unset. The output's bits are the same in every order.</summary>
    internal static Schedule? ScheduleFromEnvironment() => ScheduleSetting.Value;

    private static readonly EnvironmentSetting<Schedule?> ScheduleSetting = new("MOE_GROUPED_GEMM_WGMMA_SCHEDULE", ParseSchedule);

    internal static Schedule? ParseSchedule(string? value) =>
        (value?.Trim().ToLowerInvariant() ?? "").Split(':') switch
        {
            [""] => null,
            ["dynamic"] => Schedule.Dynamic,
            ["static"] => Schedule.Static,
            ["auto"] => Schedule.Auto,
            ["bounded", var rounds] when int.TryParse(rounds, out int d) && d is >= 1 and <= 64 => Schedule.Bounded(d),
            _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_SCHEDULE='{value}': expected dynamic (blocks claim work items from a counter in the workspace), static (block b takes items b, b + grid, ...), bounded:D (static, no block more than D = 1..64 rounds ahead) or auto (bounded:1 where few m-tiles are an expert's only one, else dynamic)"),
        };

    /// <summary>
    /// Blocks a cluster (grouped_gemm_wgmma.cu, "Clusters"): 1, or 2, paired blocks sharing each W tile by TMA multicast.
    /// The override's, the environment's, else <see cref="DefaultCluster"/>.
    /// </summary>
    internal static int ClusterSize => ClusterOverride ?? ClusterFromEnvironment() ?? DefaultCluster;

    /// <summary>
    /// Unpaired. One H200, 2026-12-02 (twenty-eighth session, docs/PERFORMANCE.md): paired blocks tied on Mixtral-8x7B's
    /// T = 8192 down, timed alone (2822-2834 against 2819-2832 us), were 1-3% slower on its gate_up in full sweeps, and lost
    /// where experts have one m-tile, whose partner block idles its SM (DeepSeek-V3 T = 1024 gate_up 4086 against 3605 us).
    /// </summary>
    internal const int DefaultCluster = 1;

    /// <summary>Tests: blocks a cluster (1 or 2) instead of the environment's or the rule's.</summary>
    internal static int? ClusterOverride { get; set; }

    /// <summary>MOE_GROUPED_GEMM_WGMMA_CLUSTER=1|2 (unset or auto: <see cref="DefaultCluster"/>), for A/B runs. The output's bits are the same either way.</summary>
    internal static int? ClusterFromEnvironment() => ClusterSetting.Value;

    private static readonly EnvironmentSetting<int?> ClusterSetting = new("MOE_GROUPED_GEMM_WGMMA_CLUSTER", ParseCluster);

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE=0, an A/B diagnostic: paired blocks walk the paired work but each loads its own
    /// W tiles (no multicast, no shared barriers): what the pairing costs apart from the sharing. Default 1.
    /// </summary>
    private static readonly EnvironmentSetting<bool> ClusterSharesW = new("MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE", ParseClusterShare);

    internal static bool ParseClusterShare(string? value) => value?.Trim() switch
    {
        null or "" or "1" => true,
        "0" => false,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE='{value}': expected 1 (paired blocks share each W tile) or 0 (each loads its own)"),
    };

    internal static int? ParseCluster(string? value) => value?.Trim() switch
    {
        null or "" or "auto" => null,
        "1" => 1,
        "2" => 2,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_CLUSTER='{value}': expected 1 (each block loads its own W tiles), 2 (pairs of blocks share each W tile by TMA multicast) or auto"),
    };

    /// <summary>Rows of the second X map's box: a small tile's X is loaded this many rows at a time.</summary>
    internal const int SmallTileBoxRows = 16;

    /// <summary>Tests: compile with this many m-tiles per work group instead of the environment's or the default.</summary>
    internal static int? GroupMOverride { get; set; }

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_GROUP_M: m-tiles per group of the work order (default 8), for A/B runs of L2 reuse:
    /// the blocks running at once share the W tiles of a group's experts and the X rows of its m-tiles.
    /// </summary>
    internal static int? GroupMFromEnvironment() => GroupM.Value;

    private static readonly EnvironmentSetting<int?> GroupM = new("MOE_GROUPED_GEMM_WGMMA_GROUP_M", ParseGroupM);

    internal static int? ParseGroupM(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return null;
        if (!int.TryParse(value, out int groupM) || groupM < 1 || groupM > 64)
            throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_GROUP_M='{value}': expected 1 to 64 m-tiles per group");
        return groupM;
    }
}
