using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Decode;

/// <summary>
/// MOE_DECODE_FUSED=off|on|N: the largest token count at which the MoE layer runs its routed experts as the one-launch
/// decode kernel (<see cref="MoeDecode"/>) instead of the six-kernel chain; on = <see cref="DefaultMaxTokens"/>, N = 1..8,
/// off = never; unset, <see cref="DefaultMaxTokens"/> for a layer whose routed experts for one token weigh at most
/// <see cref="AutoMaxActiveBytes"/>, else never (<see cref="MaxTokensFor"/>). MOE_DECODE_PREFETCH=late|early|off (default
/// late; on = late): when its blocks ask L2 for their down rows, after gate_up or right after the routing (with cache
/// priorities that keep them), or never. MOE_DECODE_UNROLL=1|2|4
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
    /// Unset, the layer fuses one token where its routed experts' weights for that token (k experts' gate, up and down) are at
    /// most this many bytes. One H200, 2026-12-01, T = 1, 4 layers cycled, fused against the chain (whose GEMVs take the
    /// 1-row entry since then), two runs each, us (docs/PERFORMANCE.md, seventeenth session): Qwen3-30B-A3B (75.5 MB) 29.58 /
    /// 29.44 against 34.02 / 33.79; Mixtral-8x7B (705 MB) 180.08 / 180.31 against 178.00 / 178.32; DeepSeek-V3 (705 MB of
    /// routed experts) 207.95 / 207.40 against 203.26 / 202.40. A line through the gaps crosses near 500 MB. A
    /// tensor-parallel rank counts its slice: Qwen3 38 MB, Mixtral and DeepSeek-V3 352 MB on 2 GPUs, where the fused kernel
    /// won in the sixteenth session (2 x H200, against the chain of the time, before the 1-row entry: Mixtral 112 -> 108 us,
    /// DeepSeek-V3 132 -> 127).
    /// </summary>
    public const long AutoMaxActiveBytes = 512L << 20;

    /// <summary>
    /// Tokens up to which a layer (or, with <paramref name="tensorParallelRank"/>, a rank's slice) whose routed experts for one
    /// token weigh <paramref name="activeBytes"/> fuses (0: never): MOE_DECODE_FUSED's (or MOE_DECODE_FUSED_TP's) value when
    /// set, else the size rule (<see cref="AutoMaxActiveBytes"/>).
    /// </summary>
    public static int MaxTokensFor(long activeBytes, bool tensorParallelRank = false) =>
        MaxTokensFor(activeBytes, tensorParallelRank ? TensorParallelSetting.Value : Setting.Value);

    /// <summary>The rule with the variable's value given (null: unset).</summary>
    internal static int MaxTokensFor(long activeBytes, int? setting) =>
        setting ?? (activeBytes <= AutoMaxActiveBytes ? DefaultMaxTokens : 0);

    /// <summary>The bytes of one token's routed experts: k experts' gate and up [2I, H] and down [H, I] rows.</summary>
    public static long ActiveBytes(int topK, int hiddenSize, int intermediate, DType dtype)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(intermediate, 1);
        return (long)topK * 3 * hiddenSize * intermediate * DTypes.SizeOf(dtype);
    }

    /// <summary>When the kernel prefetches its down rows (late when unset).</summary>
    public static DecodePrefetch Prefetch => PrefetchSetting.Value;

    /// <summary>Chunks of each gate_up W row a lane loads at once.</summary>
    public static int Unroll => UnrollSetting.Value;

    /// <summary>Whether gate_up may raise its split above the chain's (auto, the default) or keeps it (chain).</summary>
    public static bool RaiseGateUpSplit => GateUpSplitSetting.Value;

    /// <summary>Blocks an SM the grid may hold at most (0: what the occupancy allows).</summary>
    public static int BlocksPerSm => BlocksSetting.Value;

    private static readonly EnvironmentSetting<int?> Setting = new(VariableName, Parse);
    private static readonly EnvironmentSetting<int?> TensorParallelSetting = new(TensorParallelVariableName, ParseTensorParallel);
    private static readonly EnvironmentSetting<int> BlocksSetting = new(BlocksPerSmVariableName, ParseBlocksPerSm);
    private static readonly EnvironmentSetting<DecodePrefetch> PrefetchSetting = new(PrefetchVariableName, ParsePrefetch);
    private static readonly EnvironmentSetting<int> UnrollSetting = new(UnrollVariableName, ParseUnroll);
    private static readonly EnvironmentSetting<bool> GateUpSplitSetting = new(GateUpSplitVariableName, ParseGateUpSplit);

    /// <summary>The variable's limit, or null when unset (then <see cref="MaxTokensFor"/> applies the size rule).</summary>
    internal static int? Parse(string? value) => ParseMaxTokens(VariableName, value);

    internal static int? ParseTensorParallel(string? value) => ParseMaxTokens(TensorParallelVariableName, value);

    private static int? ParseMaxTokens(string name, string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
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
