namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// MOE_EXPERT_TILES_WALK=serial|parallel: how the GEMV (<c>grouped_gemm_gemv.cu</c>) finds an m-tile's expert
/// (<c>expert_tiles.cuh</c>), for A/B runs. serial (default): the walk over 32 experts at a time, one dependent round trip
/// each; parallel: every offset a lane needs in one round trip (E &lt;= 512), compiled in with -DEXPERT_TILES_PARALLEL_WALK.
/// The parallel walk was slower on the H200 (eighth session; numbers in expert_tiles.cuh and docs/PERFORMANCE.md).
/// </summary>
internal static class ExpertTilesWalk
{
    public const string Serial = "serial", Parallel = "parallel";

    /// <summary>The compile option of the parallel walk.</summary>
    public const string ParallelOption = "-DEXPERT_TILES_PARALLEL_WALK";

    private static readonly EnvironmentSetting<bool> ParallelSetting = new("MOE_EXPERT_TILES_WALK", ParseParallel);

    /// <summary>Whether the GEMV is compiled with the parallel walk.</summary>
    public static bool IsParallel => ParallelSetting.Value;

    internal static bool ParseParallel(string? value) => value?.Trim() switch
    {
        null or "" or Serial => false,
        Parallel => true,
        _ => throw new ArgumentException($"MOE_EXPERT_TILES_WALK='{value}': expected {Serial} (32 experts a round trip, the default) or {Parallel}"),
    };
}
