namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// MOE_GEMV_TILE_MAP=on|off (default off until measured on a GPU): whether the MoE layer has Permute write the m-tile map
/// of its offsets and hands it to the routed experts' decode GEMVs (GroupedGemmOptions.TileMap), so their blocks read their
/// tile with one load instead of searching the offsets at every block's start (docs/PERFORMANCE.md, "The decode GEMV at
/// T = 1, traced": 0.8-2.5 us). Read once, on first use; a bad value is the ArgumentException naming it.
/// </summary>
public static class GemvTileMapSwitch
{
    public const string VariableName = "MOE_GEMV_TILE_MAP";

    /// <summary>The switch's value (false when unset).</summary>
    public static bool EnabledByDefault => Setting.Value;

    private static readonly EnvironmentSetting<bool> Setting = new(VariableName, Parse);

    internal static bool Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "off" => false,
        "on" => true,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected on (the GEMV reads its m-tile from Permute's map) or off"),
    };
}
