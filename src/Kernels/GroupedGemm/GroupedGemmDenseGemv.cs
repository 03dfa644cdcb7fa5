using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// Small single-matrix calls on the decode GEMV kernel (<see cref="GroupedGemmGemv"/>, <c>grouped_gemm_gemv.cu</c>): the
/// MoE layer's router GEMM ([T, H] x [E_routed, H]^T) at T = 1..16, which the skinny split-K kernel runs as two kernels
/// (H200, 2026-11-30: 6.2 / 7.0 / 9.3 us for Qwen3 / Mixtral / DeepSeek-V3 at T = 16, against weight floors of
/// 0.12 / 0.02 / 0.87 us). The GEMV is one launch and streams W once per m-tile: 4-row tiles up to 4 rows, the 8-row tile
/// above (two passes at 9..16 rows, run side by side so the second reads W from L2). So W must fit L2 comfortably
/// (<see cref="MaxWeightBytes"/>): the three routers do; DeepSeek-V3's shared expert (58.7 / 29.4 MB) keeps its path.
/// Its K share per warp is short (<see cref="WarpK"/>: 8 warps on each W row from K = 2048 on) so the few W rows spread
/// over as many blocks as the kernel allows (4 columns a block at kSplit 8). Grids on an H200 (kSplit 8 for all three):
/// <code>
///   rows:                       1    2    8   16   (tile 4, 4, 8, 8; tile slots 1, 1, 1, 2)
///   Qwen3 router  N=128 K=2048  32   32   32   64 blocks
///   Mixtral       N=8   K=4096   2    2    2    4
///   DeepSeek-V3   N=256 K=7168  64   64   64  128
/// </code>
/// MOE_DENSE_GEMV=on (default) | off (the old paths exactly); <see cref="GroupedGemmOptions"/>' DenseGemvOverride for tests
/// and the sweep. Grouped calls (E &gt; 1) keep <see cref="GroupedGemmGemv.ChosenFor(DType, int, int)"/>.
/// </summary>
internal static class GroupedGemmDenseGemv
{
    public const string EnvironmentVariable = "MOE_DENSE_GEMV";

    /// <summary>Rows the rule takes: 1 to 16 (at most two passes of the 8-row tile).</summary>
    internal const int MaxRows = 16;

    /// <summary>The largest W (N x K x 2 bytes) the rule takes: the second pass and the X rows' re-reads hit L2 (50 MB on an H200).</summary>
    internal const long MaxWeightBytes = 8L << 20;

    /// <summary>The K share per warp <see cref="GroupedGemmGemv.KSplitFor"/> aims at: kSplit 8 (the most) for K &gt;= 2048.</summary>
    internal const int WarpK = 256;

    private static readonly bool FromEnvironment = Parse(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>Whether MOE_DENSE_GEMV leaves the rule on.</summary>
    public static bool Enabled => FromEnvironment;

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
    /// The rule: switched on (<paramref name="forced"/>, else the environment), bf16/f16 operands, one expert, 1..<see cref="MaxRows"/>
    /// rows, N x K x 2 bytes of W at most <see cref="MaxWeightBytes"/>.
    /// </summary>
    internal static bool Takes(DType operands, int rows, int experts, int n, int k, bool? forced = null) =>
        (forced ?? Enabled) && operands is DType.BF16 or DType.F16 && experts == 1 && rows is >= 1 and <= MaxRows
        && (long)n * k * 2 <= MaxWeightBytes;

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
    /// The launch for a call of one matrix: 4-row tiles up to 4 rows, else 8; tile slots = the m-tiles of one expert's
    /// rows, ceil(rows / tile) (1 or 2; the grouped bound adds one per expert for partial tiles, which one expert never needs);
    /// kSplit from <see cref="WarpK"/>.
    /// </summary>
    internal static Launch PlanFor(int rows, int outCols, int k, bool fused)
    {
        int tileRows = rows <= GroupedGemmGemv.TileRows ? GroupedGemmGemv.TileRows : GroupedGemmGemv.WideTileRows;
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
