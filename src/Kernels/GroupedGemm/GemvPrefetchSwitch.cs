namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// MOE_GEMV_PREFETCH=off|on|S (default off until measured): whether the MoE layer's down call asks its decode GEMV to
/// prefetch W into L2 before it waits for the gate_up kernel (GroupedGemmOptions.PrefetchBeforeWait), and how many
/// 512-byte segments of each W row a warp asks for (S, 1..64; on = <see cref="DefaultSegments"/>). Read once, on first
/// use; a bad value is the ArgumentException naming it.
/// </summary>
public static class GemvPrefetchSwitch
{
    public const string VariableName = "MOE_GEMV_PREFETCH";

    /// <summary>Segments a warp prefetches of each W row under "on": 1 KB a row a warp, about 13 MB for Qwen3-30B-A3B's down at T=1.</summary>
    public const int DefaultSegments = 2;

    /// <summary>The most segments a value may ask for (a Mixtral-8x7B down row is 28 segments).</summary>
    public const int MaxSegments = 64;

    /// <summary>Whether the layer's down call prefetches (false when unset).</summary>
    public static bool EnabledByDefault => Setting.Value > 0;

    /// <summary>Segments of each W row a warp prefetches: the variable's count, or <see cref="DefaultSegments"/>.</summary>
    public static int Segments => Setting.Value > 0 ? Setting.Value : DefaultSegments;

    private static readonly EnvironmentSetting<int> Setting = new(VariableName, Parse);

    /// <summary>0 = off, else the segments.</summary>
    internal static int Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "off" => 0,
        "on" => DefaultSegments,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= MaxSegments => n,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected off, on ({DefaultSegments} segments) or a segment count 1..{MaxSegments}"),
    };
}
