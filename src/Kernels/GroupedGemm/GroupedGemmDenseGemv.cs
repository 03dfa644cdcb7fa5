using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// Small single-matrix calls on the decode GEMV kernel (<see cref="GroupedGemmGemv"/>, <c>grouped_gemm_gemv.cu</c>): the
/// MoE layer's router GEMM ([T, H] x [E_routed, H]^T) at T = 1..16, which the skinny split-K kernel runs as two kernels
/// (H200, 2026-11-30: 6.2 / 7.0 / 9.3 us for Qwen3 / Mixtral / DeepSeek-V3 at T = 16, against weight floors of
/// 0.12 / 0.02 / 0.87 us). The GEMV is one launch and streams W once per 4-row m-tile; at 5..16 rows its 2-4 m-tiles run
/// side by side, so all but the first read W from L2. So W must fit L2 comfortably (<see cref="MaxWeightBytes"/>): the
/// three routers do; DeepSeek-V3's shared expert (58.7 / 29.4 MB) keeps its path.
/// Its K share per warp is short (<see cref="WarpK"/>: 8 warps on each W row from K = 2048 on) so the few W rows spread
/// over as many blocks as the kernel allows (4 columns a block at kSplit 8). Grids on an H200 (kSplit 8 for all three):
/// <code>
///   rows:                       1    2    8   16   (tile slots 1, 1, 2, 4)
///   Qwen3 router  N=128 K=2048  32   32   64  128 blocks
///   Mixtral       N=8   K=4096   2    2    4    8
///   DeepSeek-V3   N=256 K=7168  64   64  128  256
/// </code>
/// MOE_DENSE_GEMV=on (default) | off (the old paths exactly); <see cref="GroupedGemmOptions"/>' DenseGemvOverride for tests
/// and the sweep. Grouped calls (E &gt; 1) keep <see cref="GroupedGemmGemv.ChosenFor(DType, int, int)"/>.
/// What the heuristic takes is narrower than what the kernel can do (<see cref="HeuristicMaxRows"/>,
/// <see cref="HeuristicMaxWeightBytes"/>), from the H200 run that measured both (`densegemv-check.sh`, 2026-11-30, us,
/// dense_gemm GEMV / the old path; layer on / off, two rounds):
/// <code>
///   router             T=1          T=2          T=8           T=16          layer T=1            layer T=16
///   Qwen3 (0.5 MB)     3.19 / 5.03  3.70 / 5.65  7.32 / 5.81   7.46 / 5.99   41.1 / 43.4          237.4 / 234.0
///   Mixtral (64 KB)    3.41 / 5.07  4.04 / 5.61  9.07 / 5.68   9.14 / 6.15   191.9 / 193.5        845.3 / 841.3
///   DeepSeek (3.7 MB)  4.20 / 7.30  5.41 / 7.06  12.86 / 7.16  12.75 / 7.32  228.4 / 224.0        1796 / 1794
/// </code>
/// (T = 8 and 16 there ran the 8-row tile, since replaced by 4-row m-tiles side by side: `densegemv4-check.sh`, Qwen3's
/// router at T = 16 4.79 us against the skinny kernel's 5.95, but the layer at T = 16 with MOE_DENSE_GEMV_MAX_ROWS=16 slower,
/// Qwen3 237.7 against 232.5 / 232.9 us, Mixtral 835.4 against 833.0 / 833.9.) So the heuristic stops at one 4-row m-tile;
/// DeepSeek-V3's router is faster alone but its layer at T = 1 was 4 us slower with it (its 64-block grid
/// beside the shared expert's kernels on the second stream, presumably; not measured apart), so the heuristic keeps W
/// to 1 MiB.
/// </summary>
internal static class GroupedGemmDenseGemv
{
    public const string EnvironmentVariable = "MOE_DENSE_GEMV";

    /// <summary>Rows the path takes when forced: 1 to 16 (at most four 4-row m-tiles, side by side).</summary>
    internal const int MaxRows = 16;

    /// <summary>The largest W (N x K x 2 bytes) the path takes when forced: the second pass and the X rows' re-reads hit L2 (50 MB on an H200).</summary>
    internal const long MaxWeightBytes = 8L << 20;

    /// <summary>
    /// Rows the heuristic gives it: one 4-row m-tile by default (<see cref="DefaultHeuristicMaxRows"/>);
    /// MOE_DENSE_GEMV_MAX_ROWS=1..16 for A/B runs.
    /// </summary>
    internal static int HeuristicMaxRows => MaxRowsSetting.Value;

    private static readonly EnvironmentSetting<int> MaxRowsSetting = new(MaxRowsVariable, ParseMaxRows);

    /// <summary>One 4-row m-tile: what won in the layer (the class comment); more rows are an A/B switch.</summary>
    internal const int DefaultHeuristicMaxRows = GroupedGemmGemv.TileRows;

    public const string MaxRowsVariable = "MOE_DENSE_GEMV_MAX_ROWS";

    internal static int ParseMaxRows(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return DefaultHeuristicMaxRows;
        return int.TryParse(value.Trim(), out int rows) && rows is >= 1 and <= MaxRows ? rows
            : throw new ArgumentException($"{MaxRowsVariable}='{value}': expected 1 to {MaxRows} rows (the most a single-matrix call may have to run on the GEMV by default; {DefaultHeuristicMaxRows} when unset)");
    }

    /// <summary>The largest W the heuristic gives it: 1 MiB (Qwen3's and Mixtral's routers; not DeepSeek-V3's 3.7 MB, see the class comment).</summary>
    internal const long HeuristicMaxWeightBytes = 1L << 20;

    /// <summary>The K share per warp <see cref="GroupedGemmGemv.KSplitFor"/> aims at: kSplit 8 (the most) for K &gt;= 2048.</summary>
    internal const int WarpK = 256;

    // Read on first use, not in the type's initializer: a bad value is then the ArgumentException that names it, not a TypeInitializationException.
    private static readonly EnvironmentSetting<bool> Switch = new(EnvironmentVariable, Parse);

    /// <summary>Whether MOE_DENSE_GEMV leaves the rule on.</summary>
    public static bool Enabled => Switch.Value;

    internal static bool Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return true;
        return value.Trim().ToLowerInvariant() switch
        {
            "on" or "1" => true,
            "off" or "0" => false,
            _ => throw new ArgumentException($"{EnvironmentVariable}='{value}': expected on (single-matrix calls of 1..{MaxRows} rows with W up to {MaxWeightBytes >> 20} MiB on the decode GEMV, the default) or off (the skinny split-K kernel and the others, as before)"),
        };
    }

    /// <summary>
    /// The rule: bf16/f16 operands and one expert; forced on (<paramref name="forced"/> true), 1..<see cref="MaxRows"/> rows
    /// and W (N x K x 2 bytes) up to <see cref="MaxWeightBytes"/>; by the heuristic (null: the environment's switch),
    /// 1..<see cref="HeuristicMaxRows"/> rows and W up to <see cref="HeuristicMaxWeightBytes"/>.
    /// </summary>
    internal static bool Takes(DType operands, int rows, int experts, int n, int k, bool? forced = null)
    {
        if (!(forced ?? Enabled) || operands is not (DType.BF16 or DType.F16) || experts != 1)
            return false;
        bool heuristic = forced is null;
        return rows >= 1 && rows <= (heuristic ? HeuristicMaxRows : MaxRows)
            && (long)n * k * 2 <= (heuristic ? HeuristicMaxWeightBytes : MaxWeightBytes);
    }

    /// <summary>
    /// Whether <see cref="GroupedGemm.Run"/> runs a validated plan here: the override when given, else the rule with the
    /// environment, unless another path was chosen explicitly (a forced variant always wins; without this override, the
    /// skinny kernel forced on, a forced split count or the few-tile rule forced on).
    /// </summary>
    internal static bool TakesPlan(GroupedGemm.Plan plan)
    {
        if (plan.VariantOverride is not null)
            return false;
        if (plan.DenseGemvOverride is { } forced)
            return Takes(plan.X.DType, plan.Rows, plan.Experts, plan.N, plan.K, forced);
        if (plan.SkinnyOverride == true || plan.SplitKOverride is not null || plan.FewTilesOverride == true)
            return false;
        return Takes(plan.X.DType, plan.Rows, plan.Experts, plan.N, plan.K);
    }

    /// <summary>The grid of a call: X rows per W pass, warps per W row, tile slots and blocks.</summary>
    internal readonly record struct Launch(int TileRows, int KSplit, int TileSlots, long Blocks)
    {
        public override string ToString() => $"gemv x{TileRows}, kSplit {KSplit}, {Blocks} blocks";
    }

    /// <summary>
    /// The launch for a call of one matrix: 4-row tiles (the 8-row tile re-reads its 8 X rows for every W segment and lost
    /// to the skinny kernel at 8 and 16 rows: the class comment), one block per m-tile and column block, tile slots = the
    /// m-tiles of one expert's rows, ceil(rows / 4) (1 to 4; the grouped bound adds one per expert for partial tiles, which
    /// one expert never needs), so the passes over W run side by side and all but the first read it from L2; kSplit from
    /// <see cref="WarpK"/>.
    /// </summary>
    internal static Launch PlanFor(int rows, int outCols, int k, bool fused)
    {
        int tileRows = GroupedGemmGemv.TileRows;
        int kSplit = GroupedGemmGemv.KSplitFor(k, WarpK);
        int slots = Math.Max(1, (rows + tileRows - 1) / tileRows);
        return new Launch(tileRows, kSplit, slots, slots * GroupedGemmGemv.ColumnBlocks(outCols, fused, kSplit));
    }

    /// <summary>Runs a plan that <see cref="TakesPlan"/> accepted.</summary>
    internal static void Run(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        var launch = PlanFor(plan.Rows, plan.OutCols, plan.K, plan.Fused);
        t_lastRun = launch;
        GroupedGemmGemv.Launch(accelerator, plan, stream, launch.TileRows, launch.KSplit, launch.Blocks);
    }

    [ThreadStatic] private static Launch? t_lastRun;

    /// <summary>Tests: the launch this thread's last call on this rule made (null before any; tests reset it).</summary>
    internal static Launch? LastRunOnThisThread
    {
        get => t_lastRun;
        set => t_lastRun = value;
    }
}
