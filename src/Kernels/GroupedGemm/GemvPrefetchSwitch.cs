namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// MOE_GEMV_PREFETCH=off|on|S (default on): whether the MoE layer's down call asks its decode GEMV to prefetch W into L2
/// before it waits for the gate_up kernel (GroupedGemmOptions.PrefetchBeforeWait; the GEMV does it for a grid of one wave),
/// and how many 512-byte segments of each W row a warp asks for (S, 1..64; on = <see cref="DefaultSegments"/>). One H200,
/// 2026-11-30, the layer at T=1, two runs each: Qwen3-30B-A3B (its down is one wave) 36.26 / 36.40 -> 34.62 / 34.53 us with
/// 2 segments (34.58 / 34.52 with 4); the presets' other downs are several waves and do not prefetch (docs/PERFORMANCE.md).
/// Read once, on first use; a bad value is the ArgumentException naming it.
/// </summary>
public static class GemvPrefetchSwitch
{
    public const string VariableName = "MOE_GEMV_PREFETCH";

    /// <summary>Segments a warp prefetches of each W row under "on": 1 KB a row a warp, about 13 MB for Qwen3-30B-A3B's down at T=1.</summary>
    public const int DefaultSegments = 2;

    /// <summary>The most segments a value may ask for (a Mixtral-8x7B down row is 28 segments).</summary>
    public const int MaxSegments = 64;

    /// <summary>Whether the layer's down call prefetches (true when unset).</summary>
    public static bool EnabledByDefault => Setting.Value > 0;

    /// <summary>Segments of each W row a warp prefetches: the variable's count, or <see cref="DefaultSegments"/>.</summary>
    public static int Segments => Setting.Value > 0 ? Setting.Value : DefaultSegments;

    private static readonly EnvironmentSetting<int> Setting = new(VariableName, Parse);

    /// <summary>0 = off, else the segments.</summary>
    internal static int Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "off" => 0,
        null or "" or "on" => DefaultSegments,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= MaxSegments => n,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected off, on ({DefaultSegments} segments) or a segment count 1..{MaxSegments}"),
    };
}
