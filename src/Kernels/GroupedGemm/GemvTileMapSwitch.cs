namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// MOE_GEMV_TILE_MAP=on|off (default on): whether the MoE layer has Permute write the m-tile map of its offsets and hands
/// it to the routed experts' decode GEMVs (GroupedGemmOptions.TileMap), so their blocks read their tile with one load
/// instead of searching the offsets at every block's start (0.8-2.5 us in the GEMV's trace). 2 x H200, 2026-11-30, the
/// layer at T = 1, two runs each: DeepSeek-V3 221.8 / 221.9 -> 214.2 / 213.7 us, Mixtral-8x7B 188.5 / 188.5 -> 187.5 /
/// 187.1, Qwen3-30B-A3B 38.0 / 38.0 -> 36.8 / 36.6 (docs/PERFORMANCE.md). Read once, on first use; a bad value is the
/// ArgumentException naming it.
/// </summary>
public static class GemvTileMapSwitch
{
    public const string VariableName = "MOE_GEMV_TILE_MAP";

    /// <summary>The switch's value (true when unset).</summary>
    public static bool EnabledByDefault => Setting.Value;

    private static readonly EnvironmentSetting<bool> Setting = new(VariableName, Parse);

    internal static bool Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "off" => false,
        null or "" or "on" => true,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected on (the GEMV reads its m-tile from Permute's map) or off"),
    };
}
