namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// MOE_EXPERT_TILES_WALK=serial|parallel: how the GEMV (<c>grouped_gemm_gemv.cu</c>) finds an m-tile's expert (<c>expert_tiles.cuh</c>),
/// for A/B runs. parallel (default): every offset a lane needs in one round trip (E &lt;= 512); serial: the walk over 32
/// experts at a time, one dependent round trip each, compiled in with -DEXPERT_TILES_SERIAL_WALK.
/// </summary>
internal static class ExpertTilesWalk
{
    public const string Serial = "serial", Parallel = "parallel";

    private static readonly EnvironmentSetting<bool> SerialSetting = new("MOE_EXPERT_TILES_WALK", ParseSerial);

    /// <summary>Whether the kernels are compiled with the serial walk.</summary>
    public static bool IsSerial => SerialSetting.Value;

    internal static bool ParseSerial(string? value) => value?.Trim() switch
    {
        null or "" or Parallel => false,
        Serial => true,
        _ => throw new ArgumentException($"MOE_EXPERT_TILES_WALK='{value}': expected {Parallel} (one round trip of offsets, the default) or {Serial}"),
    };

    /// <summary><paramref name="options"/> plus the walk's define when the serial walk is asked for.</summary>
    public static IReadOnlyList<string>? With(IReadOnlyList<string>? options) =>
        !IsSerial ? options : [.. options ?? [], "-DEXPERT_TILES_SERIAL_WALK"];
}
