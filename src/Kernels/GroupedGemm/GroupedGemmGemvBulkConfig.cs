namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// Compile-time knobs of the bulk-copy GEMV (<c>grouped_gemm_gemv_bulk.cu</c>), for the diagnostic matrix of issue 9
/// (why its copy pipeline is slow). <see cref="Default"/> is the kernel as it ships: no NVRTC options, so the default
/// build is unchanged. Each knob is an environment variable, parsed with an error that names it:
/// <list type="bullet">
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_STAGES=2|4|8 (GB_STAGES), MOE_GROUPED_GEMM_GEMV_BULK_STAGE_KB=8|16|32 (GB_STAGE_BYTES):
///   the ring of W stages; a W row (fused: a gate and an up row) must fit a stage, so small stages lower the K limit.</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_BLOCKS_PER_SM=1|2 (grid and GB_MIN_BLOCKS): unset, as many as shared memory allows.</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_MODE=full|copy-only|no-epilogue-sync (GB_MODE): copy-only has the consumers release each
///   stage as soon as it lands (no arithmetic, no output: the pure copy pipeline's rate, wrong results by design);
///   no-epilogue-sync drops the consumer barrier per stage (one warp in turn sums the stage's partials, correct).</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_SPLIT_KB=0|1|2|4|8 (GB_SPLIT_BYTES): cut each stage's copy into pieces of this size, all on
///   the stage's barrier (0: one copy per contiguous range).</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_COPY_LANES=1|2|4|8|16|32 (GB_COPY_LANES): producer lanes that issue the pieces (without a
///   split, the range is cut into this many pieces).</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_L2_HINT=none|evict-first (GB_L2_EVICT_FIRST): the copies' .L2::cache_hint.</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_X_KB=0|16|32|56|64 (GB_X_BYTES): X staged in shared memory, an area of this size per stage
///   that the producer fills with the item's X rows (0: consumers load X from global memory); lowers the K limit to
///   X_KB * 1024 / 8 (4 rows of 2 bytes): 16 takes Qwen3 (K 2048), 56 DeepSeek-V3 (7168).</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_ORDER=strided|contiguous (GB_CONTIGUOUS): block b's items b, b + G, ... or a contiguous
///   range (consecutive items share the m-tile).</item>
/// <item>MOE_GROUPED_GEMM_GEMV_BULK_UNROLL=2|4|8 (GB_UNROLL): the consumer loop's unroll (loads in flight per lane).</item>
/// </list>
/// </summary>
internal sealed record GroupedGemmGemvBulkConfig(int Stages, int StageBytes, int? BlocksPerSm, string Mode, int SplitBytes, int CopyLanes, bool L2EvictFirst,
    int XBytes = 0, bool Contiguous = false, int Unroll = 2)
{
    public const string FullMode = "full";
    public const string CopyOnlyMode = "copy-only";
    public const string NoEpilogueSyncMode = "no-epilogue-sync";

    public static readonly GroupedGemmGemvBulkConfig Default = new(4, 32768, null, FullMode, 0, 1, false);

    private const string Prefix = "MOE_GROUPED_GEMM_GEMV_BULK_";

    /// <summary>The knobs from the environment (unset variables keep the default).</summary>
    public static GroupedGemmGemvBulkConfig FromEnvironment() => Parse(name => Environment.GetEnvironmentVariable(Prefix + name));

    /// <summary>The knobs from <paramref name="variable"/> (the name after MOE_GROUPED_GEMM_GEMV_BULK_ -> its value, or null).</summary>
    public static GroupedGemmGemvBulkConfig Parse(Func<string, string?> variable)
    {
        var d = Default;
        int stages = Choice(variable, "STAGES", d.Stages, [2, 4, 8], "stages of W in flight per block");
        int stageKb = Choice(variable, "STAGE_KB", d.StageBytes / 1024, [8, 16, 32], "KB per stage");
        int? blocks = variable("BLOCKS_PER_SM") is { } b && b.Trim().Length > 0
            ? Choice(variable, "BLOCKS_PER_SM", 0, [1, 2], "blocks per SM (unset: as many as shared memory allows)") : null;
        string mode = (variable("MODE")?.Trim() ?? "") switch
        {
            "" => d.Mode,
            FullMode => FullMode,
            CopyOnlyMode => CopyOnlyMode,
            NoEpilogueSyncMode => NoEpilogueSyncMode,
            var bad => throw new ArgumentException($"{Prefix}MODE='{bad}': expected {FullMode}, {CopyOnlyMode} or {NoEpilogueSyncMode}"),
        };
        int splitKb = Choice(variable, "SPLIT_KB", 0, [0, 1, 2, 4, 8], "KB per bulk copy (0: one copy per contiguous range)");
        int lanes = Choice(variable, "COPY_LANES", d.CopyLanes, [1, 2, 4, 8, 16, 32], "producer lanes issuing the copies");
        bool evictFirst = (variable("L2_HINT")?.Trim() ?? "") switch
        {
            "" or "none" => false,
            "evict-first" => true,
            var bad => throw new ArgumentException($"{Prefix}L2_HINT='{bad}': expected none or evict-first"),
        };
        int xKb = Choice(variable, "X_KB", 0, [0, 16, 32, 56, 64], "KB of X rows per stage in shared memory (0: X from global memory)");
        bool contiguous = (variable("ORDER")?.Trim() ?? "") switch
        {
            "" or "strided" => false,
            "contiguous" => true,
            var bad => throw new ArgumentException($"{Prefix}ORDER='{bad}': expected strided or contiguous"),
        };
        int unroll = Choice(variable, "UNROLL", d.Unroll, [2, 4, 8], "the consumer loop's unroll");
        if (splitKb * 1024 > stageKb * 1024)
            throw new ArgumentException($"{Prefix}SPLIT_KB={splitKb} is more than a stage ({stageKb} KB)");
        return new GroupedGemmGemvBulkConfig(stages, stageKb * 1024, blocks, mode, splitKb * 1024, lanes, evictFirst, xKb * 1024, contiguous, unroll);
    }

    private static int Choice(Func<string, string?> variable, string name, int fallback, int[] allowed, string meaning)
    {
        string? text = variable(name)?.Trim();
        if (string.IsNullOrEmpty(text))
            return fallback;
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int value)
            && allowed.Contains(value))
            return value;
        throw new ArgumentException($"{Prefix}{name}='{text}': expected {string.Join(", ", allowed)} ({meaning})");
    }

    /// <summary>NVRTC options that build this configuration; null for <see cref="Default"/> (the kernel's own defines).</summary>
    public IReadOnlyList<string>? CompileOptions(int blocksPerSm)
    {
        if (this == Default)
            return null;
        int mode = Mode switch { CopyOnlyMode => 1, NoEpilogueSyncMode => 2, _ => 0 };
        return [$"-DGB_STAGES={Stages}", $"-DGB_STAGE_BYTES={StageBytes}", $"-DGB_MIN_BLOCKS={blocksPerSm}", $"-DGB_MODE={mode}",
            $"-DGB_SPLIT_BYTES={SplitBytes}", $"-DGB_COPY_LANES={CopyLanes}", $"-DGB_L2_EVICT_FIRST={(L2EvictFirst ? 1 : 0)}",
            $"-DGB_X_BYTES={XBytes}", $"-DGB_CONTIGUOUS={(Contiguous ? 1 : 0)}", $"-DGB_UNROLL={Unroll}"];
    }

    /// <summary>Dynamic shared memory of a block: the stages (each its W area and, X in shared memory, its X area).</summary>
    public int SharedBytes => Stages * (StageBytes + XBytes);

    /// <summary>The largest K the X area takes (4 rows of 2-byte elements); int.MaxValue where X comes from global memory.</summary>
    public int MaxKForX => XBytes > 0 ? XBytes / 8 : int.MaxValue;

    /// <summary>
    /// Static shared memory of a block (an upper bound): full, empty (and, no-epilogue-sync, ready) barriers, stage headers,
    /// 2 (no-epilogue-sync: one per stage) x 64 x 4 partial sums, the 256-entry m-tile map.
    /// </summary>
    public int StaticSharedBytes => 3 * Stages * 8 + Stages * 16 + (Mode == NoEpilogueSyncMode ? Stages : 2) * 64 * 4 * 4 + 256 * 12;

    /// <summary>A short label for notes and logs, e.g. "4x32KB full".</summary>
    public override string ToString() =>
        $"{Stages}x{StageBytes / 1024}KB{(BlocksPerSm is { } b ? $" {b}/SM" : "")} {Mode}{(SplitBytes > 0 ? $" split {SplitBytes / 1024}KB" : "")}"
        + $"{(CopyLanes > 1 ? $" {CopyLanes} lanes" : "")}{(L2EvictFirst ? " evict-first" : "")}{(XBytes > 0 ? $" X {XBytes / 1024}KB" : "")}"
        + $"{(Contiguous ? " contiguous" : "")}{(Unroll != 2 ? $" unroll {Unroll}" : "")}";
}
