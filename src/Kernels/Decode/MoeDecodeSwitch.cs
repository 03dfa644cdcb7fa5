namespace MoeRuntime.Kernels.Decode;

/// <summary>
/// MOE_DECODE_FUSED=off|on|N: the largest token count at which the MoE layer runs its routed experts as the one-launch
/// decode kernel (<see cref="MoeDecode"/>) instead of the six-kernel chain; on or unset = <see cref="DefaultMaxTokens"/>,
/// N = 1..8, off = never. MOE_DECODE_PREFETCH=late|early|off (default late; on = late): when its blocks ask L2 for their down rows,
/// after gate_up or right after the routing (with cache priorities that keep them), or never. MOE_DECODE_UNROLL=1|2|4
/// (default 1): 16-byte chunks of each gate_up W row a lane loads at once. MOE_DECODE_BLOCKS_PER_SM=1..8 (unset: as many as
/// the SM holds) caps the grid, for A/B runs. MOE_DECODE_STAGE=off|early|late (default off): whether and when a block copies
/// the W rows of its down item into shared memory, where they fit (<see cref="DecodeStage"/>); off leaves them to the
/// L2 prefetch. MOE_DECODE_UNITS=blocked|spread|interleaved (default blocked): which block takes which of gate_up's units (<see cref="DecodeUnits"/>).
/// MOE_DECODE_BARRIER=counter|release (default counter): the grid barrier's blocks poll the arrival counter, or a release
/// word the last arrival sets; MOE_DECODE_POLL_NS=0..2000 (default 0): a pause between polls. MOE_DECODE_WRITTEN=l2|l1
/// (default l2): the launch's own logits and activation read back from L2, or through L1. MOE_DECODE_ROWWISE=0|1|2
/// (default 0): lanes stream W a row at a time (4 x unroll chunks of it) in gate_up (1), and in down (2). Read once, on first use; a bad value is the ArgumentException naming it.
/// </summary>
public static class MoeDecodeSwitch
{
    public const string VariableName = "MOE_DECODE_FUSED";
    public const string PrefetchVariableName = "MOE_DECODE_PREFETCH";
    public const string BlocksPerSmVariableName = "MOE_DECODE_BLOCKS_PER_SM";
    public const string UnrollVariableName = "MOE_DECODE_UNROLL";
    public const string StageVariableName = "MOE_DECODE_STAGE";
    public const string UnitsVariableName = "MOE_DECODE_UNITS";
    public const string BarrierVariableName = "MOE_DECODE_BARRIER";
    public const string PollVariableName = "MOE_DECODE_POLL_NS";
    public const string WrittenVariableName = "MOE_DECODE_WRITTEN";
    public const string RowWiseVariableName = "MOE_DECODE_ROWWISE";

    /// <summary>Tokens up to which "on" fuses.</summary>
    public const int DefaultMaxTokens = 1;

    /// <summary>
    /// The default when the variable is unset: one token. One H200, 2026-12-01, forwards cycling through 4 layers of
    /// different weights (docs/PERFORMANCE.md): T = 1 Qwen3-30B-A3B 34.49 -> 30.29 / 30.33 us, Mixtral-8x7B 187.2 -> 180.4 /
    /// 181.1, DeepSeek-V3 213.8 -> 208.0 / 208.1; at T = 2 only Qwen3 gained (57.5 -> 50.0), Mixtral and DeepSeek-V3 lost.
    /// </summary>
    private const int UnsetMaxTokens = DefaultMaxTokens;

    /// <summary>Tokens up to which the layer fuses (0: never).</summary>
    public static int MaxTokens => Setting.Value;

    /// <summary>When the kernel prefetches its down rows (late when unset).</summary>
    public static DecodePrefetch Prefetch => PrefetchSetting.Value;

    /// <summary>Chunks of each gate_up W row a lane loads at once.</summary>
    public static int Unroll => UnrollSetting.Value;

    /// <summary>Whether and when a block copies its down item's W rows into shared memory (off when unset).</summary>
    public static DecodeStage Stage => StageSetting.Value;

    /// <summary>Which block takes which of gate_up's units.</summary>
    public static DecodeUnits Units => UnitsSetting.Value;

    /// <summary>The grid barrier's waiters poll a release word the last arrival sets, not the arrival counter.</summary>
    public static bool ReleaseWord => BarrierSetting.Value;

    /// <summary>Nanoseconds between a waiter's polls (0: none).</summary>
    public static int PollNs => PollSetting.Value;

    /// <summary>The launch's own logits and activation are read back through L1 (one L2 request a line an SM), not from L2.</summary>
    public static bool WrittenThroughL1 => WrittenSetting.Value;

    /// <summary>Phases whose lanes stream W a row at a time: 0 none, 1 gate_up, 2 gate_up and down.</summary>
    public static int RowWise => RowWiseSetting.Value;

    /// <summary>Blocks an SM the grid may hold at most (0: what the occupancy allows).</summary>
    public static int BlocksPerSm => BlocksSetting.Value;

    private static readonly EnvironmentSetting<int> Setting = new(VariableName, Parse);
    private static readonly EnvironmentSetting<int> BlocksSetting = new(BlocksPerSmVariableName, ParseBlocksPerSm);
    private static readonly EnvironmentSetting<DecodePrefetch> PrefetchSetting = new(PrefetchVariableName, ParsePrefetch);
    private static readonly EnvironmentSetting<int> UnrollSetting = new(UnrollVariableName, ParseUnroll);
    private static readonly EnvironmentSetting<DecodeStage> StageSetting = new(StageVariableName, ParseStage);
    private static readonly EnvironmentSetting<DecodeUnits> UnitsSetting = new(UnitsVariableName, ParseUnits);
    private static readonly EnvironmentSetting<bool> BarrierSetting = new(BarrierVariableName, ParseReleaseWord);
    private static readonly EnvironmentSetting<int> PollSetting = new(PollVariableName, ParsePollNs);
    private static readonly EnvironmentSetting<bool> WrittenSetting = new(WrittenVariableName, ParseWrittenThroughL1);
    private static readonly EnvironmentSetting<int> RowWiseSetting = new(RowWiseVariableName, ParseRowWise);

    internal static int ParseRowWise(string? value) => value?.Trim() switch
    {
        null or "" => 0,
        "0" or "1" or "2" => int.Parse(value.Trim()),
        _ => throw new ArgumentException($"{RowWiseVariableName}='{value}': expected 0, 1 (gate_up streams W a row at a time) or 2 (down too)"),
    };

    internal static bool ParseWrittenThroughL1(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "l2" => false,
        "l1" => true,
        _ => throw new ArgumentException($"{WrittenVariableName}='{value}': expected l2 (the launch's own logits and activation read from L2) or l1 (through L1)"),
    };

    internal static bool ParseReleaseWord(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "counter" => false,
        "release" => true,
        _ => throw new ArgumentException($"{BarrierVariableName}='{value}': expected counter (the waiters poll the arrival counter) or release (a word the last arrival sets)"),
    };

    internal static int ParsePollNs(string? value) => value?.Trim() switch
    {
        null or "" => 0,
        var s when int.TryParse(s, out int n) && n is >= 0 and <= 2000 => n,
        _ => throw new ArgumentException($"{PollVariableName}='{value}': expected 0..2000 nanoseconds between a grid barrier's polls"),
    };

    internal static DecodeStage ParseStage(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "off" => DecodeStage.Off,
        "on" or "early" => DecodeStage.Early,
        "late" => DecodeStage.Late,
        _ => throw new ArgumentException($"{StageVariableName}='{value}': expected early (the down rows copied on chip right after the routing), late (after gate_up) or off"),
    };

    internal static DecodeUnits ParseUnits(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "blocked" => DecodeUnits.Blocked,
        "spread" => DecodeUnits.Spread,
        "interleaved" => DecodeUnits.Interleaved,
        _ => throw new ArgumentException($"{UnitsVariableName}='{value}': expected blocked, spread or interleaved (which block takes which of gate_up's units)"),
    };

    internal static int Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => UnsetMaxTokens,
        "off" => 0,
        "on" => DefaultMaxTokens,
        var s when int.TryParse(s, out int n) && n is >= 1 and <= MoeDecode.MaxTokens => n,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected off, on ({DefaultMaxTokens} token) or a token count 1..{MoeDecode.MaxTokens}"),
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

/// <summary>When the fused decode kernel copies the W rows of a block's down item into shared memory (where they fit).</summary>
public enum DecodeStage
{
    /// <summary>Never: phase 4 reads them from global memory (after the L2 prefetch).</summary>
    Off,

    /// <summary>Right after the routing: they stream beside gate_up's rows.</summary>
    Early,

    /// <summary>After the block's gate_up units, before barrier 2.</summary>
    Late,
}

/// <summary>Which block of the fused decode kernel takes which of gate_up's units (4 W rows a warp group), MD_UNITS.</summary>
public enum DecodeUnits
{
    /// <summary>Block b units b x G .. b x G + G - 1 (G warp groups a block), then the same a grid further.</summary>
    Blocked = 0,

    /// <summary>Block b the contiguous range [b x units / grid, (b + 1) x units / grid): the same count a block, within one.</summary>
    Spread = 1,

    /// <summary>Unit u to block u mod grid: balanced, but a block's warps read rows of many experts at once.</summary>
    Interleaved = 2,
}
