namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The wgmma kernel's build and launch choices: each a compile option or launch argument, a default, an override for
/// tests and an environment variable for A/B runs (read once; a bad value is the ArgumentException naming it).
/// </summary>
public static partial class GroupedGemmWgmma
{
    /// <summary>
    /// The launcher's compile options: <paramref name="smallTiles"/> and <paramref name="tileTable"/> as the launch resolved
    /// them, the others the overrides' or the environment's, else the defaults.
    /// </summary>
    private static List<string> CompileOptions(SmallTileMode smallTiles, bool tileTable)
    {
        var options = new List<string>();
        if (TrapOnHang)
            options.Add("-DGW_HANG_TRAP");
        if ((GroupMOverride ?? GroupMFromEnvironment()) is { } groupM)
            options.Add($"-DGW_GROUP_M={groupM}");
        string epilogue = EpilogueOverride ?? EpilogueFromEnvironment() ?? DefaultEpilogue;
        options.Add($"-DGW_EPILOGUE_SMEM={(epilogue == SmemEpilogue ? 1 : 0)}");
        options.Add($"-DGW_SMALL_TILES={(int)smallTiles}");
        if (tileTable)
            options.Add("-DGW_TILE_TABLE=1");
        if ((ClaimAheadOverride ?? ClaimAheadFromEnvironment()) is { } ahead and > 0)
            options.Add($"-DGW_CLAIM_AHEAD={ahead}");
        return options;
    }

    /// <summary>Tests: build with the tile table (or without) instead of the environment's choice.</summary>
    internal static bool? TileTableOverride { get; set; }

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_TILE_TABLE=1: the producer finds each tile in a table it builds in shared memory once per block
    /// (grouped_gemm_wgmma.cu, "the tile table") instead of walking the offsets for every tile; default 0. An experiment for
    /// A/B runs (twentieth session): not yet run on a GPU.
    /// </summary>
    internal static bool TileTableFromEnvironment() => TileTable.Value;

    private static readonly EnvironmentSetting<bool> TileTable = new("MOE_GROUPED_GEMM_WGMMA_TILE_TABLE", ParseTileTable);

    internal static bool ParseTileTable(string? value) => value?.Trim() switch
    {
        null or "" or "0" => false,
        "1" => true,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_TILE_TABLE='{value}': expected 0 (walk the offsets for each tile) or 1 (a table in shared memory)"),
    };

    /// <summary>Tests: claim this many K steps before a tile's last instead of the environment's choice.</summary>
    internal static int? ClaimAheadOverride { get; set; }

    /// <summary>
    /// MOE_GROUPED_GEMM_WGMMA_CLAIM_AHEAD=N (0..8, default 0): the dynamic schedule claims a block's next item N K steps
    /// before its tile's last, for A/B runs (twentieth session: not yet run on a GPU).
    /// </summary>
    internal static int? ClaimAheadFromEnvironment() => ClaimAhead.Value;

    private static readonly EnvironmentSetting<int?> ClaimAhead = new("MOE_GROUPED_GEMM_WGMMA_CLAIM_AHEAD", ParseClaimAhead);

    internal static int? ParseClaimAhead(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return null;
        if (!int.TryParse(value, out int ahead) || ahead < 0 || ahead > 8)
            throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_CLAIM_AHEAD='{value}': expected 0 to 8 K steps before a tile's last");
        return ahead;
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

    /// <summary>How the persistent blocks walk the work items (grouped_gemm_wgmma.cu, "tickets").</summary>
    internal enum Schedule
    {
        /// <summary>Block b takes items b, b + grid, ...: no device state, the blocks drift apart where tiles differ in cost.</summary>
        Static,

        /// <summary>Each block claims its next item from the workspace's tickets (<see cref="GroupedGemmWorkspace.Tickets"/>).</summary>
        Dynamic,
    }

    /// <summary>
    /// The schedule of a call: dynamic when it has a workspace (the tickets live there) unless switched to static, else
    /// static. Why dynamic: see <see cref="DefaultSchedule"/>.
    /// </summary>
    internal static Schedule ScheduleFor(GroupedGemmWorkspace? workspace) =>
        workspace?.Tickets is null ? Schedule.Static : ScheduleOverride ?? ScheduleFromEnvironment() ?? DefaultSchedule;

    /// <summary>
    /// The schedule where a workspace allows either. Dynamic: in the layer, whose shared experts run beside the routed ones
    /// on a second stream, a static block that starts late keeps its items. One H200, 2026-12-01 (twentieth session,
    /// docs/PERFORMANCE.md), dynamic / static: the DeepSeek-V3 T = 8192 layer 14.69-14.97 / 16.54-17.52 ms, T = 1024 (4 layers
    /// cycled) 5.14 / 5.27, T = 128 3.26 / 3.29; Mixtral-8x7B equal. The isolated sweep is mixed: DeepSeek-V3 T = 1024
    /// gate_up 2.5% faster, Mixtral-8x7B T = 1024 gate_up 5% and DeepSeek-V3 T = 8192 down 6-9% slower.
    /// </summary>
    internal const Schedule DefaultSchedule = Schedule.Dynamic;

    /// <summary>Tests: this schedule instead of the environment's or the default (calls without a workspace stay static).</summary>
    internal static Schedule? ScheduleOverride { get; set; }

    /// <summary>MOE_GROUPED_GEMM_WGMMA_SCHEDULE=dynamic|static, for A/B runs; null when unset. The output's bits are the same either way.</summary>
    internal static Schedule? ScheduleFromEnvironment() => ScheduleSetting.Value;

    private static readonly EnvironmentSetting<Schedule?> ScheduleSetting = new("MOE_GROUPED_GEMM_WGMMA_SCHEDULE", ParseSchedule);

    internal static Schedule? ParseSchedule(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "dynamic" => Schedule.Dynamic,
        "static" => Schedule.Static,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_SCHEDULE='{value}': expected dynamic (blocks claim work items from a counter in the workspace) or static (block b takes items b, b + grid, ...)"),
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
