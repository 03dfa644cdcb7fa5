using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The Hopper (sm_90a) grouped GEMM: <c>grouped_gemm_wgmma.cu</c>, TMA loads of X and W tiles into 128-byte-swizzled
/// shared memory, a 4-stage mbarrier pipeline, one producer and two consumer warpgroups issuing
/// <c>wgmma.mma_async.m64n256k16</c>, a persistent grid over (expert m-tile, column tile). Same function as
/// <see cref="GroupedGemm.Run"/> (row scale and fused SiLU-and-mul included) for bf16/f16 operands on compute
/// capability 9.0 devices. Selected by <c>VariantOverride = "wgmma"</c> (the sweep's
/// <c>MOE_GROUPED_GEMM_VARIANT=wgmma</c>), or by the heuristic for prefill shapes while <see cref="ChosenByHeuristic"/> is on (the default).
/// </summary>
public static class GroupedGemmWgmma
{
    /// <summary>The name that forces this kernel (<see cref="GroupedGemmOptions"/>' variant override, the sweep's variable).</summary>
    public const string VariantName = "wgmma";

    /// <summary>
    /// Whether <see cref="GroupedGemm.Run"/> picks this kernel by itself on compute capability 9.0 devices when the rows
    /// per active expert are many (where the heuristic would otherwise take the 128x256 mma.sync tile). On: on an H200
    /// (2026-11-30) it ran Mixtral's T=8192 gate_up at 745 TFLOP/s against the mma.sync tile's 239 (docs/PERFORMANCE.md).
    /// MOE_GROUPED_GEMM_WGMMA=0 turns it off (A/B runs).
    /// </summary>
    public static bool ChosenByHeuristic { get; set; } = Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_WGMMA") != "0";

    /// <summary>Compile with GW_HANG_TRAP: a barrier wait longer than 4 s traps (a launch error) instead of hanging the device.</summary>
    internal static bool TrapOnHang { get; set; } = true;

    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemmWgmma).Assembly, "grouped_gemm_wgmma.cu");

    // Must match grouped_gemm_wgmma.cu: GW_BM, GW_BN, GW_BK, GW_STAGES, GW_THREADS, GW_EPI_WARP_BYTES, GW_SHARED_BYTES.
    internal const int TileRows = 128;
    internal const int TileCols = 256;
    internal const int TileK = 64;
    internal const int Stages = 4;
    internal const int Threads = 384;
    internal const int EpilogueBytesPerWarp = 16 * (128 + 32);
    internal const int SharedBytes = Stages * (TileRows + TileCols) * TileK * 2 + 8 * EpilogueBytesPerWarp + 1024 + 256;

    /// <summary>GW_TABLE_EXPERTS and GW_TABLE_BYTES: the tile table's experts and its bytes after <see cref="SharedBytes"/>.</summary>
    internal const int TableExperts = 512;
    internal const int TableBytes = (3 * TableExperts + 1) * 4 + 124;

    /// <summary>Dynamic shared memory of a launch, with or without the tile table (<see cref="TileTableFromEnvironment"/>).</summary>
    internal static int SharedBytesFor(bool tileTable) => SharedBytes + (tileTable ? TableBytes : 0);

    /// <summary>Whether the kernel can run on <paramref name="accelerator"/> for <paramref name="operands"/>; otherwise why not.</summary>
    public static bool Supports(Accelerator accelerator, DType operands, out string reason)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind != AcceleratorKind.Cuda)
            reason = $"{accelerator.Name} is not a CUDA device";
        else if (accelerator.Info is not { ComputeMajor: 9, ComputeMinor: 0 })
            reason = $"{accelerator.Name} is compute capability {accelerator.Info.ComputeCapability}; wgmma and setmaxnreg need sm_90a (9.0: H100, H200)";
        else if (operands is not (DType.BF16 or DType.F16))
            reason = $"{DTypes.Name(operands)} operands; the wgmma kernel takes bf16 or f16";
        else if (accelerator.Info.MaxSharedMemoryPerBlockOptin < SharedBytes)
            reason = $"{accelerator.Name} allows {accelerator.Info.MaxSharedMemoryPerBlockOptin} bytes of shared memory per block; the kernel needs {SharedBytes}";
        else
            reason = "";
        return reason.Length == 0;
    }

    /// <summary>The heuristic's choice: on, supported, and at least <see cref="MinRows"/> rows in the call.</summary>
    internal static bool ChosenFor(Accelerator accelerator, DType operands, int rows, int experts) =>
        ChosenByHeuristic && rows >= MinRows && Supports(accelerator, operands, out _);

    /// <summary>
    /// Below this many rows the mma.sync decode tile with split-K stays: on an H200 (2026-11-30 sweeps) wgmma won
    /// every call from 128 rows up (Mixtral T=128 gate_up 462 against 713 us, DeepSeek T=16 1488 against 1864 us)
    /// and lost where K-splitting pays or rows are few per expert (Mixtral T=1 down 134 against 73 us, T=16
    /// 443 against 424 us with 32 rows).
    /// </summary>
    internal const int MinRows = 64;

    /// <summary>
    /// The kernel the heuristic runs for a call: "gemvbulk", "gemv", "wgmma" or the mma.sync tile's name (benchmark notes).
    /// Without K it names "gemvbulk" as if K fit (every preset's does: K &lt;= 8192 fused, 16384 plain).
    /// </summary>
    internal static string ChoiceName(Accelerator accelerator, DType operands, int rows, int experts) =>
        accelerator.Kind == AcceleratorKind.Cuda && GroupedGemmGemvBulk.ChosenFor(accelerator, operands, rows, experts, k: 8, fused: false)
            ? GroupedGemmGemvBulk.VariantName
        : accelerator.Kind == AcceleratorKind.Cuda && GroupedGemmGemv.ChosenFor(operands, rows, experts) ? GroupedGemmGemv.VariantName
        : ChosenFor(accelerator, operands, rows, experts) ? VariantName : GroupedGemm.ChooseVariant(operands, rows, experts).Name;

    internal static string EntryName(DType operands, DType output) => $"grouped_gemm_wgmma_{GroupedGemm.Suffix(operands)}_{GroupedGemm.Suffix(output)}";


    /// <summary>
    /// An entry of grouped_gemm_wgmma.cu, compiled with the launcher's options and <paramref name="smallTiles"/> (the debug
    /// entries, which the mode does not touch, take the default).
    /// </summary>
    internal static CudaKernel LoadKernel(CudaAccelerator accelerator, string entry, SmallTileMode smallTiles = SmallTileMode.On) =>
        accelerator.LoadKernel(Source, entry, CompileOptions(smallTiles));

    /// <summary>The launcher's compile options: the overrides' or the environment's, else the defaults.</summary>
    private static List<string> CompileOptions(SmallTileMode smallTiles)
    {
        var options = new List<string>();
        if (TrapOnHang)
            options.Add("-DGW_HANG_TRAP");
        if ((GroupMOverride ?? GroupMFromEnvironment()) is { } groupM)
            options.Add($"-DGW_GROUP_M={groupM}");
        string epilogue = EpilogueOverride ?? EpilogueFromEnvironment() ?? DefaultEpilogue;
        options.Add($"-DGW_EPILOGUE_SMEM={(epilogue == SmemEpilogue ? 1 : 0)}");
        options.Add($"-DGW_SMALL_TILES={(int)smallTiles}");
        if (TileTableOverride ?? TileTableFromEnvironment())
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

    /// <summary>Launches the kernel for a validated plan (<see cref="GroupedGemm"/> checked shapes, dtypes, alignment).</summary>
    internal static void Run(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        if (!Supports(accelerator, plan.X.DType, out string reason))
            throw new ArgumentException($"variant '{VariantName}' cannot run here: {reason}", "options");
        if (plan.K % 8 != 0)
            throw new ArgumentException($"K = {plan.K} must be a multiple of 8: TMA row strides are multiples of 16 bytes", "inFeatures");
        // x [rows, K]: dims {K, rows}; w [E, N, K]: dims {K, N, E}. Boxes of 64 elements (128 bytes, the swizzle span)
        // by 128 rows; out-of-bounds parts (K tail, rows past x's end, W rows past N) load as zeros.
        long rowBytes = (long)plan.K * 2;
        var mapX = CudaTensorMap.EncodeTiled(plan.X, [plan.K, plan.Rows], [rowBytes], [TileK, TileRows], TensorMapSwizzle.Bytes128);
        var mapXRows = CudaTensorMap.EncodeTiled(plan.X, [plan.K, plan.Rows], [rowBytes], [TileK, SmallTileBoxRows], TensorMapSwizzle.Bytes128);
        var mapW = CudaTensorMap.EncodeTiled(plan.W, [plan.K, plan.N, plan.Experts], [rowBytes, rowBytes * plan.N], [TileK, TileCols / 2, 1],
            TensorMapSwizzle.Bytes128);
        // Upper bound on the work: each expert adds at most one partial m-tile.
        long mTiles = (plan.Rows + (long)TileRows - 1) / TileRows + Math.Min(plan.Experts, plan.Rows);
        int colsPerTile = plan.Fused ? TileCols / 2 : TileCols;
        long nTiles = (plan.OutCols + (long)colsPerTile - 1) / colsPerTile;
        if (mTiles * nTiles > int.MaxValue)
            throw new ArgumentException($"{plan.Rows} rows x {plan.OutCols} columns need {mTiles * nTiles} tiles; at most {int.MaxValue} per call (split the call)", "x");
        int grid = (int)Math.Min(accelerator.Info.MultiprocessorCount, mTiles * nTiles);
        var smallTiles = SmallTilesOverride ?? SmallTilesFromEnvironment() ?? DefaultSmallTiles;
        var kernel = LoadKernel(accelerator, EntryName(plan.X.DType, plan.Y.DType), smallTiles);
        var tickets = ScheduleFor(plan.SplitK) == Schedule.Dynamic ? plan.SplitK!.Tickets : null;
        kernel.Launch(stream, new Dim3((uint)grid, 1, 1), new Dim3(Threads, 1, 1), SharedBytesFor(TileTableOverride ?? TileTableFromEnvironment()),
            mapX, mapXRows, mapW, plan.ExpertOffsets, plan.RowScale, plan.Y, tickets, plan.Rows, plan.N, plan.K, plan.Experts, plan.Fused ? 1 : 0);
    }
}
