namespace MoeRuntime.Kernels.Decode;

/// <summary>
/// MOE_DECODE_FUSED=off|on|N: the largest token count at which the MoE layer runs its routed experts as the one-launch
/// decode kernel (<see cref="MoeDecode"/>) instead of the six-kernel chain; on or unset = <see cref="DefaultMaxTokens"/>,
/// N = 1..8, off = never. MOE_DECODE_PREFETCH=late|early|off (default late; on = late): when its blocks ask L2 for their down rows,
/// after gate_up or right after the routing (with cache priorities that keep them), or never. MOE_DECODE_UNROLL=1|2|4
/// (default 1): 16-byte chunks of each gate_up W row a lane loads at once. MOE_DECODE_BLOCKS_PER_SM=1..8 (unset: as many as
/// the SM holds) caps the grid, for A/B runs. MOE_DECODE_FUSED_TP=off|on|N: the same limit for a tensor-parallel rank's
/// layer (its slice of every expert), whose partial output an AllReduce sums after the kernel. MOE_DECODE_GATE_UP_SPLIT=auto|chain
/// (default auto): gate_up's split raised where its items would leave most of the grid idle (<see cref="MoeDecode.GateUpSplitFor"/>),
/// or always the chain's. Read once, on first use; a bad
/// value is the ArgumentException naming it.
/// </summary>
public static class MoeDecodeSwitch
{
    public const string VariableName = "MOE_DECODE_FUSED";
    public const string TensorParallelVariableName = "MOE_DECODE_FUSED_TP";
    public const string PrefetchVariableName = "MOE_DECODE_PREFETCH";
    public const string BlocksPerSmVariableName = "MOE_DECODE_BLOCKS_PER_SM";
    public const string UnrollVariableName = "MOE_DECODE_UNROLL";
    public const string GateUpSplitVariableName = "MOE_DECODE_GATE_UP_SPLIT";

    /// <summary>Tokens up to which "on" fuses.</summary>
    public const int DefaultMaxTokens = 1;

    /// <summary>
    /// The default when the variable is unset: one token. One H200, 2026-12-01, forwards cycling through 4 layers of
    /// different weights (docs/PERFORMANCE.md): T = 1 Qwen3-30B-A3B 34.49 -> 30.29 / 30.33 us, Mixtral-8x7B 187.2 -> 180.4 /
    /// 181.1, DeepSeek-V3 213.8 -> 208.0 / 208.1; at T = 2 only Qwen3 gained (57.5 -> 50.0), Mixtral and DeepSeek-V3 lost.
    /// </summary>
    private const int UnsetMaxTokens = DefaultMaxTokens;

    /// <summary>
    /// The default for tensor-parallel ranks when MOE_DECODE_FUSED_TP is unset: one token. 2 x H200, 2026-12-01, T = 1, the
    /// whole TP forward (both ranks and the AllReduce) graph-replayed, 4 layers cycled, two runs each, us, the ranks' chain
    /// against the fused kernel: Qwen3-30B-A3B 35 / 36 -> 29 / 29, Mixtral-8x7B 112 / 112 -> 108 / 107, DeepSeek-V3 132 / 131
    /// -> 127 / 127 (docs/PERFORMANCE.md, sixteenth session).
    /// </summary>
    private const int UnsetTensorParallelMaxTokens = DefaultMaxTokens;

    /// <summary>Tokens up to which the layer fuses (0: never).</summary>
    public static int MaxTokens => Setting.Value;

    /// <summary>Tokens up to which a tensor-parallel rank's layer fuses (0: never).</summary>
    public static int TensorParallelMaxTokens => TensorParallelSetting.Value;

    /// <summary>When the kernel prefetches its down rows (late when unset).</summary>
    public static DecodePrefetch Prefetch => PrefetchSetting.Value;

    /// <summary>Chunks of each gate_up W row a lane loads at once.</summary>
    public static int Unroll => UnrollSetting.Value;

    /// <summary>Whether gate_up may raise its split above the chain's (auto, the default) or keeps it (chain).</summary>
    public static bool RaiseGateUpSplit => GateUpSplitSetting.Value;

    /// <summary>Blocks an SM the grid may hold at most (0: what the occupancy allows).</summary>
    public static int BlocksPerSm => BlocksSetting.Value;

    private static readonly EnvironmentSetting<int> Setting = new(VariableName, Parse);
    private static readonly EnvironmentSetting<int> TensorParallelSetting = new(TensorParallelVariableName, ParseTensorParallel);
    private static readonly EnvironmentSetting<int> BlocksSetting = new(BlocksPerSmVariableName, ParseBlocksPerSm);
    private static readonly EnvironmentSetting<DecodePrefetch> PrefetchSetting = new(PrefetchVariableName, ParsePrefetch);
    private static readonly EnvironmentSetting<int> UnrollSetting = new(UnrollVariableName, ParseUnroll);
    private static readonly EnvironmentSetting<bool> GateUpSplitSetting = new(GateUpSplitVariableName, ParseGateUpSplit);

    internal static int Parse(string? value) => ParseMaxTokens(VariableName, UnsetMaxTokens, value);

    internal static int ParseTensorParallel(string? value) => ParseMaxTokens(TensorParallelVariableName, UnsetTensorParallelMaxTokens, value);

    private static int ParseMaxTokens(string name, int unset, string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => unset,
        "off" => 0,
        "on" => DefaultMaxTokens,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= MoeDecode.MaxTokens => n,
        _ => throw new ArgumentException($"{name}='{value}': expected off, on ({DefaultMaxTokens} token) or a token count 1..{MoeDecode.MaxTokens}"),
    };

    internal static DecodePrefetch ParsePrefetch(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "off" => DecodePrefetch.Off,
        null or "" or "on" or "late" => DecodePrefetch.Late,
        "early" => DecodePrefetch.Early,
        _ => throw new ArgumentException($"{PrefetchVariableName}='{value}': expected late (the down rows asked of L2 after gate_up), early (before it) or off"),
    };

    internal static int ParseUnroll(string? value) => value?.Trim() switch
    {
        null or "" => 1,
        "1" or "2" or "4" => int.Parse(value.Trim()),
        _ => throw new ArgumentException($"{UnrollVariableName}='{value}': expected 1, 2 or 4 chunks of a gate_up W row in flight a lane"),
    };

    internal static bool ParseGateUpSplit(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => true,
        "chain" => false,
        _ => throw new ArgumentException($"{GateUpSplitVariableName}='{value}': expected auto (raised where the grid would idle) or chain (the chain's GEMV split)"),
    };

    internal static int ParseBlocksPerSm(string? value) => value?.Trim() switch
    {
        null or "" => 0,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= 8 => n,
        _ => throw new ArgumentException($"{BlocksPerSmVariableName}='{value}': expected 1..8 blocks an SM, or unset (the occupancy)"),
    };
}

/// <summary>When the fused decode kernel asks L2 for the down rows it will stream.</summary>
public enum DecodePrefetch
{
    /// <summary>Never.</summary>
    Off,

    /// <summary>After the block's gate_up items, before barrier 2.</summary>
    Late,

    /// <summary>Right after the routing, as evict_last, with gate_up's loads evict_first.</summary>
    Early,
}
