using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// Calls the Hopper kernel cannot spread over the device: its persistent grid takes one 128 x 256 tile per SM and
/// never splits K, so a call with few tiles runs on a few SMs at one SM's MMA rate. The MoE layer's dense calls at
/// T = 128 are such calls: DeepSeek-V3's router GEMM (128 x 256 x 7168: one tile, ~63 us of one SM's wgmma issue for
/// 3.7 MB of weights, ~1 us at copy bandwidth) and its shared expert (gate_up 16 tiles, down 28). With this rule on
/// (MOE_GROUPED_GEMM_FEW_TILES=mma) such a call, when the caller gave a split-K workspace, runs on the mma.sync tile
/// instead (64 x 128, or 16 x 64 for a few rows per expert) with split-K chosen by the wave model
/// (<see cref="GroupedGemmLaunch.ChooseSplits"/>), so its blocks cover the SMs. Off (unset or =wgmma): as before.
/// </summary>
internal static class GroupedGemmFewTiles
{
    /// <summary>MOE_GROUPED_GEMM_FEW_TILES: "mma" turns the rule on, "wgmma" (or unset) leaves such calls on the Hopper kernel.</summary>
    public const string EnvironmentVariable = "MOE_GROUPED_GEMM_FEW_TILES";

    public static bool Enabled { get; } = Parse(Environment.GetEnvironmentVariable(EnvironmentVariable));

    internal static bool Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return false;
        return value.Trim().ToLowerInvariant() switch
        {
            "mma" or "1" => true,
            "wgmma" or "0" => false,
            _ => throw new ArgumentException($"{EnvironmentVariable}='{value}': expected mma (few-tile calls on the split-K mma.sync tile) or wgmma (as before)"),
        };
    }

    /// <summary>Upper bound on the Hopper kernel's output tiles for a call (what its persistent grid has to share out).</summary>
    internal static long WgmmaTiles(int rows, int n, int experts, bool fused)
    {
        long mTiles = GroupedGemmLaunch.MTilesBound(rows, experts, GroupedGemmWgmma.TileRows);
        int outCols = fused ? n / 2 : n;
        int colsPerTile = fused ? GroupedGemmWgmma.TileCols / 2 : GroupedGemmWgmma.TileCols;
        return mTiles * ((outCols + colsPerTile - 1) / colsPerTile);
    }

    /// <summary>Whether a call the Hopper kernel would take has too few tiles for it: fewer than half the SMs.</summary>
    internal static bool TooFewTiles(int multiprocessors, int rows, int n, int experts, bool fused) =>
        2 * WgmmaTiles(rows, n, experts, fused) < multiprocessors;

    /// <summary>
    /// Whether <see cref="GroupedGemm.Run"/> takes the mma.sync tile with split-K for a call the heuristic would give the
    /// Hopper kernel: the rule on (<paramref name="forced"/>, else the environment), a workspace to split into, too few tiles.
    /// </summary>
    internal static bool Applies(Accelerator accelerator, DType operands, int rows, int n, int experts, bool fused, bool hasWorkspace, bool? forced = null) =>
        (forced ?? Enabled) && hasWorkspace && GroupedGemmWgmma.ChosenFor(accelerator, operands, rows, experts)
        && TooFewTiles(accelerator.Info.MultiprocessorCount, rows, n, experts, fused);

    /// <summary>The mma.sync tile for such a call: 16 x 64 for at most 16 rows per active expert, else 64 x 128 (never the 128 x 256 one, 1 block per SM).</summary>
    internal static GroupedGemm.Variant VariantFor(int rows, int experts) =>
        GroupedGemm.IsDecodeTile(GroupedGemm.ChooseVariant(DType.BF16, rows, experts)) ? GroupedGemm.Decode64 : GroupedGemm.Medium64;
}
