namespace MoeRuntime.Kernels.Decode;

/// <summary>
/// MOE_DECODE_FUSED=off|on|N: the largest token count at which the MoE layer runs its routed experts as the one-launch
/// decode kernel (<see cref="MoeDecode"/>) instead of the six-kernel chain; on = <see cref="DefaultMaxTokens"/>, N = 1..8,
/// off = never. MOE_DECODE_PREFETCH=on|off (default on): whether its blocks ask L2 for their down rows before the down
/// phase. MOE_DECODE_BLOCKS_PER_SM=1..8 (unset: as many as the SM holds) caps the grid, for A/B runs. Read once, on first
/// use; a bad value is the ArgumentException naming it.
/// </summary>
public static class MoeDecodeSwitch
{
    public const string VariableName = "MOE_DECODE_FUSED";
    public const string PrefetchVariableName = "MOE_DECODE_PREFETCH";
    public const string BlocksPerSmVariableName = "MOE_DECODE_BLOCKS_PER_SM";

    /// <summary>Tokens up to which "on" fuses.</summary>
    public const int DefaultMaxTokens = 1;

    /// <summary>The default when the variable is unset: off until the GPU run decides.</summary>
    private const int UnsetMaxTokens = 0;

    /// <summary>Tokens up to which the layer fuses (0: never).</summary>
    public static int MaxTokens => Setting.Value;

    /// <summary>Whether the kernel prefetches its down rows (true when unset).</summary>
    public static bool Prefetch => PrefetchSetting.Value;

    /// <summary>Blocks an SM the grid may hold at most (0: what the occupancy allows).</summary>
    public static int BlocksPerSm => BlocksSetting.Value;

    private static readonly EnvironmentSetting<int> Setting = new(VariableName, Parse);
    private static readonly EnvironmentSetting<int> BlocksSetting = new(BlocksPerSmVariableName, ParseBlocksPerSm);
    private static readonly EnvironmentSetting<bool> PrefetchSetting = new(PrefetchVariableName, ParsePrefetch);

    internal static int Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => UnsetMaxTokens,
        "off" => 0,
        "on" => DefaultMaxTokens,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= MoeDecode.MaxTokens => n,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected off, on ({DefaultMaxTokens} token) or a token count 1..{MoeDecode.MaxTokens}"),
    };

    internal static bool ParsePrefetch(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "off" => false,
        null or "" or "on" => true,
        _ => throw new ArgumentException($"{PrefetchVariableName}='{value}': expected on (blocks prefetch their down rows into L2) or off"),
    };

    internal static int ParseBlocksPerSm(string? value) => value?.Trim() switch
    {
        null or "" => 0,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= 8 => n,
        _ => throw new ArgumentException($"{BlocksPerSmVariableName}='{value}': expected 1..8 blocks an SM, or unset (the occupancy)"),
    };
}
