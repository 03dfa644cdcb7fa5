using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The decode grouped GEMM (<c>grouped_gemm_gemv.cu</c>): matrix-vector products on the CUDA cores, a warp group
/// streaming whole W rows against up to 4 or 8 rows of X (<see cref="TileRowsFor"/>), for calls where experts have a row
/// or a few (T = 1; Mixtral at T = 16). The call's time is reading the active experts' weights once; this kernel reads
/// them in 512-byte runs per row, where the 16-row tensor-core tile read 128-byte pieces of 64 rows at a time and wasted
/// most of its 16 rows. Same function as <see cref="GroupedGemm.Run"/> (row scale and fused SiLU-and-mul included) for
/// bf16/f16 operands.
/// </summary>
public static class GroupedGemmGemv
{
    /// <summary>The name that forces this kernel (<see cref="GroupedGemmOptions"/>' variant override, the sweep's variable); the tile rows follow <see cref="TileRowsFor"/>.</summary>
    public const string VariantName = "gemv";

    /// <summary>Names that force this kernel with a given tile (tests, A/B): 1 (the 1-row entry), 4 or 8 X rows per W pass.</summary>
    public const string Variant1Name = "gemv1", Variant4Name = "gemv4", Variant8Name = "gemv8";

    /// <summary>Whether <paramref name="name"/> forces this kernel.</summary>
    internal static bool IsVariantName(string? name) => name is VariantName or Variant1Name or Variant4Name or Variant8Name;

    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemmGemv).Assembly, "grouped_gemm_gemv.cu");

    // Must match grouped_gemm_gemv.cu: the ROWS of its entries, GV_WARPS, GV_WROWS.
    internal const int TileRows = 4;

    /// <summary>
    /// The 1-row entry's rows a pass: it takes the 4-row entry's blocks, tiles and map, and runs each tile's rows one pass
    /// at a time (<see cref="TileRowsFor"/> picks it where the caller bounds every expert's rows at 1).
    /// </summary>
    internal const int SingleTileRows = 1;
    internal const int WideTileRows = 8;
    internal const int Warps = 8;

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_WROWS=4|8|auto (GV_WROWS, default auto): W rows a warp group streams. 8 halves the blocks of a
    /// call (Qwen3-30B-A3B T=1: down 512 -> 256, gate_up 384 -> 192) at 2 blocks an SM instead of 3; auto picks per
    /// 4-row-tile call (<see cref="WRowsFor"/>), 4 or 8 force it for A/B runs. The dense GEMV and the 8-row tile take 4
    /// under auto. 2 x H200, 2026-11-30, auto against 4: Qwen3-30B-A3B's down at T = 1 11.67 -> 10.50 us alone, the layer
    /// at T = 1 37.95 / 37.96 -> 36.40 / 36.46 us (two runs each); Mixtral-8x7B and DeepSeek-V3 take 4 either way.
    /// </summary>
    internal static int WRowsSetting => WRowsSettingValue.Value;

    private static readonly EnvironmentSetting<int> WRowsSettingValue = new("MOE_GROUPED_GEMM_GEMV_WROWS", ParseWRows);

    /// <summary><see cref="WRowsSetting"/>'s value for auto.</summary>
    internal const int AutoWRows = 0;

    /// <summary>The W rows of launches that do not choose per call (auto counts as 4).</summary>
    internal static int FixedWRows => WRowsSetting == AutoWRows ? 4 : WRowsSetting;

    internal static int ParseWRows(string? value) => value?.Trim() switch
    {
        "4" => 4,
        "8" => 8,
        null or "" or "auto" => AutoWRows,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_WROWS='{value}': expected 4 or 8 W rows a warp group, or auto (chosen per call)"),
    };

    /// <summary>
    /// The W rows of a 4-row-tile call under auto: 8 when the 4-row grid needs more than one wave and the 8-row grid fits
    /// in one (each wave pays the block's start again: the wait, finding the tile, the first W bytes' round trip, about
    /// 3 us at Qwen3-30B-A3B T=1, where down's 512 blocks against 396 places ran two waves, 11.45 us, and 8 rows' 256 in
    /// one, 9.73); else 4 (8 rows' fewer blocks an SM lost wherever both were several waves: DeepSeek-V3 down 65.2 -> 70.2 us).
    /// </summary>
    internal static int WRowsFor(long blocks4, long places4, long blocks8, long places8) =>
        blocks4 > places4 && blocks8 <= places8 ? 8 : 4;

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_TILE_SEARCH=warp|block (default warp): whether every warp searches its block's m-tile or one
    /// warp does and the block reads its answer from shared memory (GV_BLOCK_TILE_SEARCH), for A/B runs.
    /// </summary>
    internal static bool BlockTileSearch => TileSearchSetting.Value;

    private static readonly EnvironmentSetting<bool> TileSearchSetting = new("MOE_GROUPED_GEMM_GEMV_TILE_SEARCH", ParseTileSearch);

    internal static bool ParseTileSearch(string? value) => value?.Trim() switch
    {
        null or "" or "warp" => false,
        "block" => true,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_TILE_SEARCH='{value}': expected warp (every warp searches) or block (one warp)"),
    };

    /// <summary>
    /// Calls under this many rows are the ones <see cref="ChosenFor(DType, int, int, int, Rule)"/> takes by row count alone
    /// (rows no more than experts, or the 8-row tile's 4 rows an expert); 64 or more need the Experts or Wide rule and K
    /// (<see cref="LeavesShortK"/>). The wgmma kernel's row minimum was 64 when these rules were measured; it is lower now
    /// (<see cref="GroupedGemmWgmma.MinRows"/>), and the GEMV is asked first.
    /// </summary>
    internal const int SmallCallRows = 64;

    /// <summary>
    /// Whether the heuristic runs this kernel: bf16/f16 operands, and by <see cref="Rule"/> (default
    /// <see cref="Rule.Experts"/>) any call of no more rows than experts; under <see cref="SmallCallRows"/> (64), also
    /// either no more rows than experts (about one row per active expert: every token's k experts are distinct, so T = 1
    /// always qualifies; 4-row tiles) or, with the 8-row tile allowed (<see cref="MaxRowsFromEnvironment"/>), at most 4
    /// rows per expert on average (Mixtral T = 16: 32 rows over 8 experts). Why 4: with top-k routing an expert's count is
    /// about binomial around the mean, so at a mean of 4 nearly every expert has at most 8 rows and streams its W once;
    /// at a mean of 8 (Mixtral T = 32) many experts would need two passes and the CUDA cores would do 8 FMAs per W
    /// element, near their issue rate, where the 16-row tensor-core tile reads W once with arithmetic to spare.
    /// </summary>
    internal static bool ChosenFor(DType operands, int rows, int experts) =>
        ChosenFor(operands, rows, experts, MaxRowsFromEnvironment(), RuleFromEnvironment());

    internal static bool ChosenFor(DType operands, int rows, int experts, int maxRows, Rule rule) =>
        operands is DType.BF16 or DType.F16
        && ((rows < SmallCallRows && (rows <= experts || (maxRows >= WideTileRows && rows <= 4L * experts)))
            || (rule >= Rule.Experts && rows <= experts)
            || (rule == Rule.Wide && rows <= 4L * experts));

    /// <summary>
    /// <see cref="ChosenFor(DType, int, int)"/> for a call of inner dimension <paramref name="k"/>: a call of 64 rows or more
    /// (one the wgmma kernel could take, added by the Experts or Wide rule) with K under <see cref="ExpertsRuleMinK"/> is left
    /// to the wgmma kernel. Why K: a GEMV block's fixed costs (its tile, the first W bytes' round trip, the reduction and the
    /// write) are paid once per pass over a W row, and a short row (Qwen3-30B-A3B's down, K = 768: 1.5 KB) leaves little
    /// streaming to hide them behind, while the wgmma kernel's persistent blocks pipeline their tiles' loads.
    /// </summary>
    internal static bool ChosenFor(DType operands, int rows, int experts, int k) =>
        ChosenFor(operands, rows, experts) && !LeavesShortK(rows, k, ExpertsRuleMinK);

    /// <summary>
    /// The grouped GEMM's dispatch (<see cref="GroupedGemm"/>.RunCuda): <see cref="ChosenFor(DType, int, int, int)"/>, less
    /// the calls of <paramref name="n"/> columns that the wgmma kernel would run in many waves of tiles
    /// (<see cref="LeavesManyWaves(Accelerator, DType, int, int, int)"/>).
    /// </summary>
    internal static bool ChosenFor(Accelerator accelerator, DType operands, int rows, int experts, int n, int k) =>
        ChosenFor(operands, rows, experts, k) && !LeavesManyWaves(accelerator, operands, rows, experts, n);

    /// <summary>
    /// The waves rule: a call of 64 rows or more whose wgmma grid would be at least <see cref="ExpertsRuleMaxWaves"/> waves
    /// of tiles is left to the wgmma kernel, where it runs (sm_90a, its heuristic on). Why: with about a row per active
    /// expert the GEMV still streams W well where K is long, but its blocks pay their fixed costs once per pass over a W
    /// row, while the wgmma kernel's persistent blocks pipeline their tiles' loads; with many tiles an SM its last wave is a
    /// small share of the call. The counts stay on the device, so the host estimates the grid: the experts a uniform
    /// router hits with these rows (<see cref="ExpectedExpertsHit"/>) times N's 256-column tiles, over the SMs.
    /// One H200, 2026-12-02 (docs/PERFORMANCE.md, thirty-third session), DeepSeek-V3 at T = 16 (128 rows over 256 experts;
    /// 75 hit), each GEMM alone on the layer's routing, us: gate_up (12 waves by the estimate) 1011.5 on wgmma against
    /// 1031.1 on the GEMV, down (21 waves) 501.9 against 546.5; the layer, 4 layers cycled, graph, 1.532 / 1.532 ms against
    /// 1.598 / 1.594. Qwen3-30B-A3B's gate_up at T = 16 (3.7 waves) stays: the layer 0.2180 ms against 0.2196 on wgmma.
    /// </summary>
    internal static bool LeavesManyWaves(Accelerator accelerator, DType operands, int rows, int experts, int n) =>
        accelerator.Kind == AcceleratorKind.Cuda
        && LeavesManyWaves(rows, experts, n, accelerator.Info.MultiprocessorCount, ExpertsRuleMaxWaves)
        && GroupedGemmWgmma.ChosenFor(accelerator, operands, rows, experts);

    /// <summary>The waves rule on the host's numbers (<paramref name="maxWaves"/> 0: never leaves a call).</summary>
    internal static bool LeavesManyWaves(int rows, int experts, int n, int multiprocessors, int maxWaves) =>
        rows >= SmallCallRows && maxWaves > 0 && WgmmaWavesEstimate(rows, experts, n, multiprocessors) >= maxWaves;

    /// <summary>The wgmma kernel's waves of 128 x 256 tiles for a call of about one row per hit expert (the estimate above).</summary>
    internal static double WgmmaWavesEstimate(int rows, int experts, int n, int multiprocessors) =>
        ExpectedExpertsHit(rows, experts) * ((n + GroupedGemmWgmma.TileCols - 1) / GroupedGemmWgmma.TileCols) / Math.Max(1, multiprocessors);

    /// <summary>
    /// The experts that <paramref name="rows"/> rows routed uniformly at random over <paramref name="experts"/> experts hit on
    /// average: E (1 - (1 - 1/E)^rows). Qwen3-30B-A3B at T = 16, 128 over 128: 81 (its random router hit 81); DeepSeek-V3,
    /// 128 over 256: 101 (its random router, whose biases favour some, hit 73-75).
    /// </summary>
    internal static double ExpectedExpertsHit(int rows, int experts) =>
        experts <= 0 ? 0 : experts * (1 - Math.Pow(1 - 1.0 / experts, Math.Max(0, rows)));

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES (default <see cref="DefaultExpertsRuleMaxWaves"/>; 0: no limit): the waves of
    /// wgmma tiles from which a call of 64 rows or more leaves the GEMV (<see cref="LeavesManyWaves(int, int, int, int, int)"/>).
    /// Read once; a bad value is the ArgumentException naming it.
    /// </summary>
    internal static int ExpertsRuleMaxWaves => ExpertsMaxWavesSetting.Value;

    private static readonly EnvironmentSetting<int> ExpertsMaxWavesSetting = new("MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES", ParseExpertsMaxWaves);

    /// <summary>The limit without the variable: between the 3.7 waves that stay (Qwen3-30B-A3B's gate_up at T = 16) and the 12 that left.</summary>
    internal const int DefaultExpertsRuleMaxWaves = 8;

    internal static int ParseExpertsMaxWaves(string? value) => value?.Trim() switch
    {
        null or "" => DefaultExpertsRuleMaxWaves,
        var s when int.TryParse(s, out int waves) && waves >= 0 => waves,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES='{value}': expected a count of waves (0 or more; 0 = no limit; unset = {DefaultExpertsRuleMaxWaves})"),
    };

    /// <summary>Whether the K rule sends a call of these rows and K to the wgmma kernel (<paramref name="minK"/> 0: never).</summary>
    internal static bool LeavesShortK(int rows, int k, int minK) => rows >= SmallCallRows && k < minK;

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K (default <see cref="DefaultExpertsRuleMinK"/>; 0: any K): the least K a call of 64
    /// rows or more must have for the GEMV to take it (<see cref="ChosenFor(DType, int, int, int)"/>). One H200, 2026-11-30,
    /// Qwen3-30B-A3B's down at T=16 (128 rows, K = 768): 77.3 us on the GEMV, 71.6 on wgmma; the layer at T=16, two runs each,
    /// 216.7 / 217.5 -> 214.9 / 215.6 (docs/PERFORMANCE.md). Read once; a bad value is the ArgumentException naming it.
    /// </summary>
    internal static int ExpertsRuleMinK => ExpertsMinKSetting.Value;

    private static readonly EnvironmentSetting<int> ExpertsMinKSetting = new("MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K", ParseExpertsMinK);

    /// <summary>The minimum K without the variable: every preset's K but Qwen3-30B-A3B's down (768) is 2048 or more.</summary>
    internal const int DefaultExpertsRuleMinK = 1024;

    internal static int ParseExpertsMinK(string? value) => value?.Trim() switch
    {
        null or "" => DefaultExpertsRuleMinK,
        var s when int.TryParse(s, out int k) && k >= 0 => k,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K='{value}': expected a K (0 or more; 0 = any K; unset = {DefaultExpertsRuleMinK})"),
    };

    /// <summary>Which calls of 64 rows or more the GEMV takes as well (MOE_GROUPED_GEMM_GEMV_RULE).</summary>
    internal enum Rule
    {
        /// <summary>None: the GEMV takes calls under <see cref="SmallCallRows"/> (64) only.</summary>
        Small,

        /// <summary>
        /// Also any call of no more rows than experts (about one row per active expert: Qwen3-30B-A3B at T = 16, 128 rows
        /// over 128 experts; DeepSeek-V3 at T = 16 and 32), where the wgmma tile carries 128 rows for an expert's one or two
        /// and its 128 x 256 tiles leave the last of ~4 waves partly empty. 2 x H200, 2026-11-30, the layer at T = 16, two
        /// runs each against Small: Qwen3-30B-A3B 232.4 / 231.8 -> 216.9 / 217.2 us, DeepSeek-V3 1757.1 / 1755.4 -> 1654.6
        /// / 1661.3 (docs/PERFORMANCE.md). Since the thirty-third session DeepSeek-V3's calls leave again where the wgmma
        /// kernel runs, by the waves rule (<see cref="LeavesManyWaves(Accelerator, DType, int, int, int)"/>).
        /// </summary>
        Experts,

        /// <summary>For A/B runs: also any call of at most 4 rows an expert on average, on 4-row tiles (Mixtral-8x7B at T = 16: 32 rows over 8 experts; an expert of more rows streams its W once per 4).</summary>
        Wide,
    }

    /// <summary>MOE_GROUPED_GEMM_GEMV_RULE=small|experts|wide (default experts): <see cref="Rule"/>. Read once; a bad value is the ArgumentException naming it.</summary>
    internal static Rule RuleFromEnvironment() => RuleSetting.Value;

    private static readonly EnvironmentSetting<Rule> RuleSetting = new("MOE_GROUPED_GEMM_GEMV_RULE", ParseRule);

    internal static Rule ParseRule(string? value) => value?.Trim() switch
    {
        "small" => Rule.Small,
        null or "" or "experts" => Rule.Experts,
        "wide" => Rule.Wide,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_RULE='{value}': expected small (under 64 rows), experts (also any call of no more rows than experts) or wide (also up to 4 rows an expert)"),
    };

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_ORDER=column|tile (default column), for A/B runs: the 4-row entry's block order. column: block
    /// b = mTile x columnBlocks + columnBlock (an m-tile's column blocks side by side); tile (-DGV_TILE_INNER): b = columnBlock
    /// x mTiles + mTile, so an expert's m-tiles run side by side and its later passes over the same W rows read L2, not DRAM.
    /// </summary>
    internal static bool TileInnerOrder => OrderSetting.Value;

    private static readonly EnvironmentSetting<bool> OrderSetting = new("MOE_GROUPED_GEMM_GEMV_ORDER", ParseOrder);

    internal static bool ParseOrder(string? value) => value?.Trim() switch
    {
        null or "" or "column" => false,
        "tile" => true,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_ORDER='{value}': expected column or tile"),
    };

    /// <summary>
    /// X rows per W pass (m-tile rows) for a call: 4 when rows &lt;= experts (the T = 1 kernel as it was) or when
    /// <paramref name="maxRows"/> is 4, else 8; and 1 instead of 4 where the caller bounds every expert's rows at 1
    /// (<paramref name="maxRowsPerExpert"/>: GroupedGemmOptions.MaxRowsPerExpert) and <see cref="SingleRowEnabled"/>. A forced
    /// <see cref="Variant1Name"/> / <see cref="Variant4Name"/> / <see cref="Variant8Name"/> wins.
    /// </summary>
    internal static int TileRowsFor(int rows, int experts, int maxRows, string? forced = null, int? maxRowsPerExpert = null) => forced switch
    {
        Variant1Name => SingleTileRows,
        Variant4Name => TileRows,
        Variant8Name => WideTileRows,
        _ when rows > experts && maxRows >= WideTileRows => WideTileRows,
        _ => maxRowsPerExpert <= 1 && SingleRowEnabled ? SingleTileRows : TileRows,
    };

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_SINGLE=on|off (default on): whether calls bounded at one row an expert run the 1-row entry
    /// (<see cref="TileRowsFor"/>), for A/B runs against the 4-row entry. One H200, 2026-12-01, T = 1 alone, the 4-row entry
    /// against the 1-row one (a one-wave grid spread, <see cref="SpreadBlocksPerSm"/>), us (`gemv17a.sh`, `gemv17b.sh`):
    /// Qwen3-30B-A3B down 9.92 / 9.59 -> 7.44 / 7.49 (512 blocks: two waves of 3 an SM, one of 4), gate_up 14.78 / 14.74 ->
    /// 14.51 / 14.35; Mixtral-8x7B gate_up 116.6 -> 110.1, down 60.2 -> 56.4; DeepSeek-V3 gate_up 116.8 -> 109.6, down 61.4 ->
    /// 58.1. Read once; a bad value is the ArgumentException naming it.
    /// </summary>
    internal static bool SingleRowEnabled => SingleRowSetting.Value;

    private static readonly EnvironmentSetting<bool> SingleRowSetting = new("MOE_GROUPED_GEMM_GEMV_SINGLE", ParseSingleRow);

    internal static bool ParseSingleRow(string? value) => value?.Trim() switch
    {
        null or "" or "on" => true,
        "off" => false,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_SINGLE='{value}': expected on (the 1-row entry where every expert has at most one row) or off"),
    };

    /// <summary>
    /// The blocks an SM of a 1-row launch of <paramref name="blocks"/> blocks on <paramref name="multiprocessors"/> SMs that
    /// hold <paramref name="occupancy"/> each: a grid of one wave spread evenly (ceil(blocks / SMs)), else the occupancy.
    /// Why: Qwen3-30B-A3B's gate_up at T = 1 (384 blocks) took 16.24 / 16.25 us at 4 blocks an SM, where the scheduler
    /// may fill some SMs and leave others idle, and 14.51 / 14.35 held to 3 (one H200, `gemv17b.sh`; the 4-row entry, 3 an SM
    /// by its registers, 14.78 / 14.74).
    /// </summary>
    internal static int SpreadBlocksPerSm(long blocks, int multiprocessors, int occupancy) =>
        blocks <= (long)multiprocessors * occupancy ? (int)Math.Max(1, (blocks + multiprocessors - 1) / multiprocessors) : occupancy;

    /// <summary>The tiles a launch's blocks take: the 1-row entry takes the 4-row entry's.</summary>
    internal static int GridTileRows(int tileRows) => tileRows == SingleTileRows ? TileRows : tileRows;

    /// <summary>
    /// 4: the 8-row tile is off by default. H200, 2026-11-30: Mixtral-8x7B at T = 16 (32 rows, 6 active experts) ran at
    /// 58% of the copy floor (gate_up 576 us) and 52% (down 325 us) on it, against 77-80% on the mma.sync tile the rule
    /// picks without it.
    /// </summary>
    internal const int DefaultMaxRows = TileRows;

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_MAX_ROWS: the most X rows the GEMV multiplies per W pass, for A/B runs. 4 (default): the
    /// 4-row kernel only, chosen when rows &lt;= experts; 8: the 8-row tile and the wider rule of
    /// <see cref="ChosenFor(DType, int, int)"/>.
    /// </summary>
    internal static int MaxRowsFromEnvironment() => MaxRows.Value;

    private static readonly EnvironmentSetting<int> MaxRows = new("MOE_GROUPED_GEMM_GEMV_MAX_ROWS", ParseMaxRows);

    internal static int ParseMaxRows(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return DefaultMaxRows;
        return int.TryParse(value, out int rows) && rows is TileRows or WideTileRows ? rows
            : throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_MAX_ROWS='{value}': expected {TileRows} (the 4-row GEMV, rows <= experts) or {WideTileRows} (the 8-row tile too)");
    }

    /// <summary>
    /// Warps of a block that split one W row's K (1, 2, 4 or 8): enough that a warp's share stays near
    /// <paramref name="warpK"/> elements (default 2048: 4 KB of a bf16 row), so long rows (Mixtral's down, K = 14336)
    /// still spread over many blocks.
    /// </summary>
    internal static int KSplitFor(int k, int warpK = DefaultWarpK)
    {
        int split = 1;
        while (split < Warps && k / (split * 2) >= warpK)
            split *= 2;
        return split;
    }

    internal const int DefaultWarpK = 2048;

    /// <summary>MOE_GROUPED_GEMM_GEMV_WARP_K: the K share per warp that <see cref="KSplitFor"/> aims at, for A/B runs (256 to 65536).</summary>
    internal static int WarpKFromEnvironment() => WarpK.Value;

    private static readonly EnvironmentSetting<int> WarpK = new("MOE_GROUPED_GEMM_GEMV_WARP_K", ParseWarpK);

    internal static int ParseWarpK(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return DefaultWarpK;
        return int.TryParse(value, out int warpK) && warpK is >= 256 and <= 65536 ? warpK
            : throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_WARP_K='{value}': expected 256 to 65536 elements of K per warp");
    }

    /// <summary>
    /// Blocks of a launch: tile slots (<see cref="TileSlotsFor"/>; 4-row tiles: the bound on m-tiles) times column
    /// blocks; the kernel derives the slot count from the grid.
    /// </summary>
    internal static long BlocksFor(int rows, int experts, int outCols, bool fused, int kSplit, int tileRows = TileRows, int multiprocessors = 0,
                                   int? tileSlots = null, int wRows = 0)
    {
        long columnBlocks = ColumnBlocks(outCols, fused, kSplit, wRows);
        return (tileSlots ?? TileSlotsFor(rows, experts, tileRows, columnBlocks, multiprocessors)) * columnBlocks;
    }

    /// <summary>Column blocks of a launch whose warp groups stream <paramref name="wRows"/> W rows (0: <see cref="FixedWRows"/>).</summary>
    internal static long ColumnBlocks(int outCols, bool fused, int kSplit, int wRows = 0)
    {
        if (wRows == 0)
            wRows = FixedWRows;
        int colsPerBlock = (fused ? wRows / 2 : wRows) * (Warps / kSplit);
        return (outCols + colsPerBlock - 1) / colsPerBlock;
    }

    /// <summary>
    /// Tile slots of a launch (the grid's blocks per column block). 4-row tiles: one per possible m-tile (the bound).
    /// 8-row tiles, where each block loops over m-tiles slot, slot + slots, ...: enough slots for the rows as if every
    /// expert's count were a multiple of 8 (ceil(rows / 8)), raised to about <see cref="WavesOfBlocks"/> waves of 2 blocks
    /// per SM when there are few column blocks, at most the bound. Blocks past the real m-tiles start only to exit, so
    /// the bound (12 for 32 rows over 8 experts, where the sweep's routing has 6 m-tiles) would waste about half the grid.
    /// </summary>
    internal static int TileSlotsFor(int rows, int experts, int tileRows, long columnBlocks, int multiprocessors)
    {
        int bound = GroupedGemmLaunch.MTilesBound(rows, experts, GridTileRows(tileRows));
        if (tileRows != WideTileRows)
            return bound;
        long forWaves = (WavesOfBlocks * 2L * Math.Max(1, multiprocessors) + columnBlocks - 1) / Math.Max(1, columnBlocks);
        long wanted = Math.Max((rows + tileRows - 1) / tileRows, forWaves);
        return (int)Math.Clamp(wanted, 1, Math.Max(1, bound));
    }

    internal const int WavesOfBlocks = 4;

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_UNROLL=1|2|4: 512-byte segments of each W row a warp has in flight (GV_UNROLL; the kernel's
    /// default 1 when unset, 2 before the eighth session), for A/B runs of how many memory round trips a warp's rows take
    /// against how many blocks an SM holds. Read on first use; a bad value is the ArgumentException naming it.
    /// </summary>
    internal static string[]? UnrollOptions => UnrollSetting.Value;

    private static readonly EnvironmentSetting<string[]?> UnrollSetting = new("MOE_GROUPED_GEMM_GEMV_UNROLL", ParseUnroll);

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS=1..4 (GV_MIN_BLOCKS, default 1): blocks of the 4-row entry an SM must hold, a cap on
    /// its registers, for A/B runs of one wave against the spills (NVRTC 11.8, sm_90, with the 2 segments in flight of the
    /// seventh session: unset 103 registers, 2 blocks an SM; 3 -> 80 with 56 bytes spilled; 4 -> 64 with 272 bytes; with
    /// today's 1 segment: unset 80 registers, 3 blocks an SM).
    /// </summary>
    internal static int MinBlocks => MinBlocksSetting.Value;

    private static readonly EnvironmentSetting<int> MinBlocksSetting = new("MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS", ParseMinBlocks);

    internal static int ParseMinBlocks(string? value) =>
        string.IsNullOrWhiteSpace(value) ? 1
        : int.TryParse(value, out int blocks) && blocks is >= 1 and <= 4 ? blocks
        : throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS='{value}': expected 1 to 4 blocks an SM");

    /// <summary>The compile options of the A/B switches (null when all are at their defaults), built once.</summary>
    private static string[]? CompileOptions => s_compileOptions ??= BuildCompileOptions();

    private static string[]? s_compileOptions;

    private static string[] BuildCompileOptions()
    {
        var options = new List<string>([.. UnrollOptions ?? [], .. SingleUnrollOptions ?? []]);
        if (ExpertTilesWalk.IsParallel)
            options.Add(ExpertTilesWalk.ParallelOption);
        if (MinBlocks != 1)
            options.Add($"-DGV_MIN_BLOCKS={MinBlocks}");
        if (BlockTileSearch)
            options.Add("-DGV_BLOCK_TILE_SEARCH");
        if (TileInnerOrder)
            options.Add("-DGV_TILE_INNER");
        return [.. options];
    }

    /// <summary>
    /// The build of a launch: the switches' options, plus -DGV_WROWS=8 for 8 W rows, -DGV_TRACE when traced and
    /// <see cref="TileMapOption"/> when it reads an m-tile map, and the dtype pair's (the source's GV_ONE_PAIR note: a
    /// build holds one pair's entries); each built once.
    /// </summary>
    /// With <paramref name="prefetch"/> (a map's build only) also -DGV_PREFETCH_W=S, S = GemvPrefetchSwitch.Segments.
    internal static string[] BuildOptions(DType operands, DType output, int wRows, bool traced, bool tileMap, bool prefetch = false) =>
        s_builds.GetOrAdd((operands, output, (prefetch && tileMap ? 8 : 0) + (wRows == 8 ? 4 : 0) + (traced ? 2 : 0) + (tileMap ? 1 : 0)), _ =>
            [.. CompileOptions ?? [], .. wRows == 8 ? (string[])["-DGV_WROWS=8"] : [], .. traced ? (string[])["-DGV_TRACE"] : [],
             .. tileMap ? (string[])[TileMapOption] : [], .. prefetch && tileMap ? (string[])[$"-DGV_PREFETCH_W={GemvPrefetchSwitch.Segments}"] : [],
             .. DTypeBuilds.Pair("GV", operands, output)]);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(DType Operands, DType Output, int Build), string[]> s_builds = new();

    internal static string[]? ParseUnroll(string? value) => value?.Trim() switch
    {
        null or "" => null,
        "1" or "2" or "4" => [$"-DGV_UNROLL={value.Trim()}"],
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_UNROLL='{value}': expected 1, 2 or 4 segments in flight"),
    };

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV1_UNROLL=1|2|3|4: the 1-row entry's 512-byte segments of each W row in flight a warp (GV1_UNROLL;
    /// the kernel's default when unset), for A/B runs. Read on first use; a bad value is the ArgumentException naming it.
    /// </summary>
    internal static string[]? SingleUnrollOptions => SingleUnrollSetting.Value;

    private static readonly EnvironmentSetting<string[]?> SingleUnrollSetting = new("MOE_GROUPED_GEMM_GEMV1_UNROLL", ParseSingleUnroll);

    internal static string[]? ParseSingleUnroll(string? value) => value?.Trim() switch
    {
        null or "" => null,
        "1" or "2" or "3" or "4" => [$"-DGV1_UNROLL={value.Trim()}"],
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV1_UNROLL='{value}': expected 1 to 4 segments in flight"),
    };

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV1_BLOCKS=spread|none|1..4 (default spread: <see cref="SpreadBlocksPerSm"/>), for A/B runs: the
    /// 1-row entry's blocks an SM, held there by asking for dynamic shared memory it does not use. Returned as
    /// <see cref="SpreadCap"/>, <see cref="NoCap"/> or the count.
    /// </summary>
    internal static int SingleBlocksCap => SingleBlocksCapSetting.Value;

    internal const int SpreadCap = -1, NoCap = 0;

    private static readonly EnvironmentSetting<int> SingleBlocksCapSetting = new("MOE_GROUPED_GEMM_GEMV1_BLOCKS", ParseSingleBlocksCap);

    internal static int ParseSingleBlocksCap(string? value) => value?.Trim() switch
    {
        null or "" or "spread" => SpreadCap,
        "none" => NoCap,
        var v when int.TryParse(v, out int blocks) && blocks is >= 1 and <= 4 => blocks,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV1_BLOCKS='{value}': expected spread (a one-wave grid over every SM), none or 1 to 4 blocks an SM"),
    };

    /// <summary>
    /// The dynamic shared memory of a launch of <paramref name="blocks"/> blocks: none, or for the 1-row entry the least
    /// that holds it to its blocks an SM (<see cref="SingleBlocksCap"/>) where that is under its occupancy.
    /// </summary>
    private static int DynamicSharedBytes(CudaAccelerator accelerator, CudaKernel kernel, int tileRows, long blocks)
    {
        if (tileRows != SingleTileRows || SingleBlocksCap == NoCap)
            return 0;
        int occupancy = kernel.MaxActiveBlocksPerSm(Warps * 32);
        int cap = SingleBlocksCap == SpreadCap ? SpreadBlocksPerSm(blocks, accelerator.Info.MultiprocessorCount, occupancy) : SingleBlocksCap;
        if (cap >= occupancy)
            return 0;
        return s_capBytes.GetOrAdd((kernel, cap), key =>
        {
            for (int bytes = 1024; bytes <= accelerator.Info.MaxSharedMemoryPerBlockOptin - key.Kernel.StaticSharedBytes; bytes += 1024)
                if (key.Kernel.MaxActiveBlocksPerSm(Warps * 32, bytes) <= key.Cap)
                    return bytes;
            return 0;
        });
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(CudaKernel Kernel, int Cap), int> s_capBytes = new();

    internal static string EntryName(DType operands, DType output, int tileRows = TileRows) =>
        $"grouped_gemm_{tileRows switch { WideTileRows => "gemv8", SingleTileRows => "gemv1", _ => "gemv" }}_{GroupedGemm.Suffix(operands)}_{GroupedGemm.Suffix(output)}";


    /// <summary>Launches the kernel for a validated plan (<see cref="GroupedGemm"/> checked shapes, dtypes, alignment).</summary>
    internal static void Run(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        if (plan.X.DType is not (DType.BF16 or DType.F16))
            throw new ArgumentException($"variant '{plan.VariantOverride ?? VariantName}' takes bf16 or f16 operands, not {DTypes.Name(plan.X.DType)}", "options");
        int kSplit = KSplitFor(plan.K, WarpKFromEnvironment());
        int tileRows = TileRowsFor(plan.Rows, plan.Experts, MaxRowsFromEnvironment(), plan.VariantOverride, plan.MaxRowsPerExpert);
        if (plan.GemvTileSlotsOverride is not null && tileRows != WideTileRows)
            throw new ArgumentException($"a tile slot count is for the 8-row GEMV ('{Variant8Name}'), not the {tileRows}-row one", "options");
        int multiprocessors = accelerator.Info.MultiprocessorCount;
        var tileMap = GridTileRows(tileRows) == TileRows ? plan.TileMap : null;
        int wRowsRule = plan.GemvWRowsOverride ?? WRowsSetting;
        // The 1-row entry keeps 4 W rows under auto: its 64 registers hold 8 rows' loads only by spilling.
        int wRows = wRowsRule != AutoWRows ? wRowsRule
            : tileRows == TileRows ? WRowsUnderAuto(accelerator, plan, kSplit, tileMap is not null)
            : 4;
        long blocks = BlocksFor(plan.Rows, plan.Experts, plan.OutCols, plan.Fused, kSplit, tileRows, multiprocessors, plan.GemvTileSlotsOverride, wRows);
        // The prefetch before the wait only for a grid of one wave: then every block may start during the kernel before and
        // the whole call's W heads come early; with several waves only the first wave's do, and they may be gone from L2 by
        // the time they are read (one H200: DeepSeek-V3's layer at T=16 no faster with it, Qwen3-30B-A3B's at T=1 1.8 us faster).
        if (plan.PrefetchBeforeWait && (tileMap is null || blocks > Places(accelerator, plan, tileRows, wRows, tileMap is not null, blocks)))
            plan = plan with { PrefetchBeforeWait = false };
        t_lastWRows = wRows;
        t_lastTileRows = tileRows;
        t_lastPrefetched = plan.PrefetchBeforeWait;
        Launch(accelerator, plan, stream, tileRows, kSplit, blocks, tileMap, wRows);
    }

    /// <summary>Blocks of the build the device holds at once (its occupancy; the prefetch build's registers are the same).</summary>
    /// A 1-row launch counts its blocks an SM as it will launch (<paramref name="blocks"/>: its grid; <see cref="DynamicSharedBytes"/>).
    private static long Places(CudaAccelerator accelerator, GroupedGemm.Plan plan, int tileRows, int wRows, bool tileMap, long blocks) =>
        PlacesOf(accelerator, Kernel(accelerator, plan with { PrefetchBeforeWait = false }, tileRows, wRows, tileMap), tileRows, blocks);

    private static int PlacesOf(CudaAccelerator accelerator, CudaKernel kernel, int tileRows, long blocks) =>
        kernel.MaxActiveBlocksPerSm(Warps * 32, DynamicSharedBytes(accelerator, kernel, tileRows, blocks)) * accelerator.Info.MultiprocessorCount;

    /// <summary>Tests: whether this thread's last <see cref="Run"/> launched the prefetch build.</summary>
    internal static bool LastRunPrefetched => t_lastPrefetched;

    [ThreadStatic] private static bool t_lastPrefetched;

    /// <summary><see cref="WRowsFor"/> for a 4-row-tile call, with the places of the two builds from their occupancy.</summary>
    private static int WRowsUnderAuto(CudaAccelerator accelerator, GroupedGemm.Plan plan, int kSplit, bool tileMap)
    {
        int multiprocessors = accelerator.Info.MultiprocessorCount;
        long Blocks(int wRows) => BlocksFor(plan.Rows, plan.Experts, plan.OutCols, plan.Fused, kSplit, TileRows, multiprocessors, wRows: wRows);
        long Places(int wRows) => GroupedGemmGemv.Places(accelerator, plan, TileRows, wRows, tileMap, Blocks(wRows));
        long blocks4 = Blocks(4), places4 = Places(4);
        if (blocks4 <= places4)
            return 4; // one wave already; the 8-row build is compiled only for a call it could take
        return WRowsFor(blocks4, places4, Blocks(8), Places(8));
    }

    /// <summary>Tests: the W rows of this thread's last <see cref="Run"/> (0 before any).</summary>
    internal static int LastRunWRows => t_lastWRows;

    [ThreadStatic] private static int t_lastWRows;

    /// <summary>Tests: the X rows a pass of this thread's last <see cref="Run"/> (1, 4 or 8; 0 before any).</summary>
    internal static int LastRunTileRows => t_lastTileRows;

    [ThreadStatic] private static int t_lastTileRows;

    /// <summary>Tests: the dynamic shared memory of this thread's last launch (non-zero: the 1-row entry held to fewer blocks an SM).</summary>
    internal static int LastRunSharedBytes => t_lastSharedBytes;

    [ThreadStatic] private static int t_lastSharedBytes;

    private static CudaKernel Kernel(CudaAccelerator accelerator, GroupedGemm.Plan plan, int tileRows, int wRows, bool tileMap, bool traced = false) =>
        accelerator.LoadKernel(Source, EntryName(plan.X.DType, plan.Y.DType, tileRows),
            BuildOptions(plan.X.DType, plan.Y.DType, wRows, traced, tileMap, plan.PrefetchBeforeWait));

    /// <summary>
    /// The launch itself: <paramref name="blocks"/> = tile slots x column blocks of <paramref name="kSplit"/>; the caller
    /// picked the tile, the split and enough slots for the m-tiles (this rule or <see cref="GroupedGemmDenseGemv"/>).
    /// </summary>
    /// With <paramref name="tileMap"/> (4-row tiles only: the map of plan.ExpertOffsets, checked by GroupedGemm) the
    /// -DGV_TILE_MAP build reads each block's tile from it instead of searching the offsets.
    internal static void Launch(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream, int tileRows, int kSplit, long blocks,
                                MemoryBuffer<int>? tileMap = null, int wRows = 0)
    {
        if (wRows == 0)
            wRows = FixedWRows;
        if (blocks > int.MaxValue)
            throw new ArgumentException($"{plan.Rows} rows x {plan.OutCols} columns need {blocks} blocks; at most {int.MaxValue} per call (split the call)", "x");
        if (tileMap is not null && GridTileRows(tileRows) != TileRows)
            throw new ArgumentException($"the m-tile map is of {TileRows}-row tiles; this launch has {tileRows}", "options.TileMap");
        var trace = TraceRequested ? TraceBufferFor(blocks) : null;
        var kernel = Kernel(accelerator, plan, tileRows, wRows, tileMap is not null, trace is not null);
        // The entries' parameters: the plan's, then the map (GV_TILE_MAP builds), the first wave's blocks (GV_PREFETCH_W
        // builds: only those prefetch), then the trace (GV_TRACE builds).
        Span<KernelArg> args = [plan.X, plan.W, plan.ExpertOffsets, plan.RowScale, plan.Y, plan.Rows, plan.N, plan.K, plan.Experts,
            plan.Fused ? 1 : 0, kSplit, default, default, default];
        int count = 11;
        if (tileMap is not null)
        {
            args[count++] = tileMap;
            if (plan.PrefetchBeforeWait)
                args[count++] = PlacesOf(accelerator, kernel, tileRows, blocks);
        }
        if (trace is not null)
            args[count++] = trace;
        int sharedBytes = DynamicSharedBytes(accelerator, kernel, tileRows, blocks);
        t_lastSharedBytes = sharedBytes;
        kernel.Launch(stream, new Dim3((uint)blocks, 1, 1), new Dim3(Warps * 32, 1, 1), sharedBytes, args[..count]);
        if (trace is not null)
            TracedBlocks = blocks;
    }

    /// <summary>The build that reads the m-tile map (GV_TILE_MAP): the entries take the map after kSplit.</summary>
    internal const string TileMapOption = "-DGV_TILE_MAP";

    /// <summary>
    /// MOE_GROUPED_GEMM_GEMV_TRACE=1: every launch is the -DGV_TRACE build, which writes <see cref="TraceStamps"/>
    /// %globaltimer stamps per block into <see cref="TraceBuffer"/> (a diagnostic: the bench sets the buffer).
    /// </summary>
    internal static bool TraceRequested => TraceSetting.Value;

    private static readonly EnvironmentSetting<bool> TraceSetting = new("MOE_GROUPED_GEMM_GEMV_TRACE", value => value?.Trim() switch
    {
        null or "" or "0" => false,
        "1" => true,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_TRACE='{value}': expected 1 (the traced build) or 0"),
    });

    /// <summary>Stamps per block of the traced build (GV_TRACE_STAMPS): after the wait, tile found, first W loads arrived, loop end, after the write.</summary>
    internal const int TraceStamps = 5;

    /// <summary>Where the traced build writes: [blocks, <see cref="TraceStamps"/>] u64; the last launch's blocks.</summary>
    internal static MemoryBuffer<long>? TraceBuffer { get; set; }

    /// <summary>Blocks of the last traced launch.</summary>
    internal static long TracedBlocks { get; private set; }

    /// <summary>The trace buffer, checked to hold <paramref name="blocks"/> blocks' stamps.</summary>
    private static MemoryBuffer<long> TraceBufferFor(long blocks)
    {
        var trace = TraceBuffer ?? throw new InvalidOperationException("MOE_GROUPED_GEMM_GEMV_TRACE=1 needs GroupedGemmGemv.TraceBuffer (a bench sets it)");
        if (trace.Length < blocks * TraceStamps)
            throw new InvalidOperationException($"the GEMV trace buffer holds {trace.Length / TraceStamps} blocks; this launch has {blocks}");
        return trace;
    }
}
