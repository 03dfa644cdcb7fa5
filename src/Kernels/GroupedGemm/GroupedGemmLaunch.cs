namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The launch shape of a tensor-core grouped GEMM: a grid of (MTiles x NTiles, Splits) blocks, each split covering
/// KTilesPerSplit k-tiles of the tile's K (split-K, see grouped_gemm.cu). Built by <see cref="Plan"/> from what the
/// host knows: the row count (an upper bound on the rows the offsets delimit) and the expert count; the offsets
/// themselves stay on the device.
/// </summary>
internal readonly record struct GroupedGemmLaunch(GroupedGemm.Variant Variant, int MTiles, int NTiles, int KTiles, int Splits, int KTilesPerSplit)
{
    /// <summary>Output tiles of the grid's x dimension (blocks past the real tiles exit at once).</summary>
    public long Tiles => (long)MTiles * NTiles;

    /// <summary>F32 partials the launch needs in the workspace: splits x tiles x (BM x BN); 0 without split.</summary>
    public long PartialFloats => Splits > 1 ? Splits * Tiles * Variant.TileRows * Variant.TileCols : 0;

    /// <summary>Arrival counters the launch needs in the workspace: one per tile; 0 without split.</summary>
    public long Counters => Splits > 1 ? Tiles : 0;

    /// <summary>Most splits the planner chooses or a force may ask for.</summary>
    public const int MaxSplits = 8;

    /// <summary>A split must cover at least this much of K (several pipeline stages), or the pipeline fill dominates.</summary>
    public const int MinKPerSplit = 512;

    /// <summary>The heuristic keeps the grid within this many waves of resident blocks (and the workspace small).</summary>
    public const int MaxWaves = 4;

    /// <summary>
    /// The tile variants that support split-K: their K step (BK), and whether the heuristic splits them (the decode
    /// tiles, where few active experts leave SMs idle; the others split only when forced, by tests or
    /// MOE_GROUPED_GEMM_SPLITK). A variant not listed here (a kernel of another file, e.g. a wgmma one) never splits.
    /// </summary>
    private static readonly Dictionary<string, (int Bk, bool Auto)> SplitKVariants = new()
    {
        ["decode"] = (32, true), ["medium"] = (32, false), ["prefill"] = (32, false),
        ["decode64"] = (64, true), ["medium64"] = (64, false), ["large"] = (64, false),
        ["decode128"] = (128, true), ["decode256"] = (256, true),
    };

    public static bool SupportsSplitK(GroupedGemm.Variant variant) => SplitKVariants.ContainsKey(variant.Name);

    /// <summary>The K step (BK) of a split-K variant: one k-tile covers this much of K.</summary>
    internal static int KStepOf(GroupedGemm.Variant variant) => SplitKVariants[variant.Name].Bk;

    /// <summary>
    /// Row tiles an upper bound covers: expert e owns ceil(count_e / BM) tiles, so there are at most
    /// ceil(rows / BM) + (experts with rows) of them, and never more than rows (every tile has a row).
    /// </summary>
    public static int MTilesBound(int rows, int experts, int tileRows) =>
        (int)Math.Min(rows, (rows + (long)tileRows - 1) / tileRows + Math.Min(experts, rows));

    /// <summary>
    /// Row tiles the routing most likely fills, for the wave model (the grid keeps <see cref="MTilesBound"/>): every
    /// expert that can have a row has one tile, or the rows fill ceil(rows / BM), whichever is more. Exact for one expert,
    /// and for experts of at most BM rows each when all are active (Mixtral T=16: 32 rows over 8 experts, 8 tiles, where the
    /// bound says 10). The bound's extra tiles are blocks that exit at once; counted as work they hid a thin last wave.
    /// Never above the bound: each term is at most rows and at most the bound's sum.
    /// </summary>
    public static int MTilesExpected(int rows, int experts, int tileRows) =>
        (int)Math.Max((rows + (long)tileRows - 1) / tileRows, Math.Min(experts, rows));

    public static int NTilesFor(GroupedGemm.Variant variant, int n, bool fused)
    {
        int outCols = fused ? n / 2 : n;
        int colsPerTile = fused ? variant.TileCols / 2 : variant.TileCols;
        return (outCols + colsPerTile - 1) / colsPerTile;
    }

    /// <summary>
    /// The launch for one call. <paramref name="slots"/>: blocks of this variant the device runs at once (SMs x
    /// blocks per SM). <paramref name="forcedSplits"/>: 1 = no split, N = N splits (clamped to K's k-tiles); null = the
    /// heuristic. Without room in the workspace (<paramref name="partialCapacity"/> floats, <paramref name="counterCapacity"/>
    /// counters; both 0 when there is none) the split count drops until it fits, down to no split.
    /// </summary>
    /// <paramref name="autoSplit"/>: let the heuristic split this variant even where it does not by default (few-tile calls,
    /// <see cref="GroupedGemmFewTiles"/>).
    public static GroupedGemmLaunch Plan(GroupedGemm.Variant variant, int rows, int n, int k, int experts, bool fused,
                                         long slots, int? forcedSplits, long partialCapacity, long counterCapacity, bool autoSplit = false)
    {
        int mTiles = MTilesBound(rows, experts, variant.TileRows);
        int nTiles = NTilesFor(variant, n, fused);
        if (!SplitKVariants.TryGetValue(variant.Name, out var splitK))
            return new GroupedGemmLaunch(variant, mTiles, nTiles, 0, 1, 0);
        int kTiles = (k + splitK.Bk - 1) / splitK.Bk;
        long items = (long)(SplitTilesSetting.Value == SplitTiles.Expected ? MTilesExpected(rows, experts, variant.TileRows) : mTiles) * nTiles;
        int wanted = forcedSplits is { } forced ? Math.Clamp(forced, 1, MaxSplits)
            : splitK.Auto || autoSplit ? ChooseSplits(items, kTiles, k / MinKPerSplit, slots) : 1;
        for (int splits = Math.Min(wanted, kTiles); splits > 1; splits--)
        {
            var launch = WithSplits(variant, mTiles, nTiles, kTiles, splits);
            if (launch.PartialFloats <= partialCapacity && launch.Counters <= counterCapacity && items * launch.Splits <= int.MaxValue)
                return launch;
        }
        return new GroupedGemmLaunch(variant, mTiles, nTiles, kTiles, 1, kTiles);
    }

    /// <summary>Splits of kTiles into ceil(kTiles / splits) per split, dropping splits that would be empty.</summary>
    private static GroupedGemmLaunch WithSplits(GroupedGemm.Variant variant, int mTiles, int nTiles, int kTiles, int splits)
    {
        int perSplit = (kTiles + splits - 1) / splits;
        return new GroupedGemmLaunch(variant, mTiles, nTiles, kTiles, (kTiles + perSplit - 1) / perSplit, perSplit);
    }

    /// <summary>
    /// The heuristic: a wave model. With B = items x s blocks over <paramref name="slots"/> resident blocks, the
    /// device runs ceil(B / slots) waves of ceil(kTiles / s) k-tiles each; useful work is items x kTiles. The efficiency
    /// items x kTiles / (slots x waves x ceil(kTiles / s)) is low when a few tiles leave SMs idle (decode: few active
    /// experts, tiles only along N) and when the last wave is thin. Take a larger s only when it gains at least 5%
    /// (every split adds partial traffic and a reduction), at most <paramref name="maxSplitsForK"/> (K / MinKPerSplit)
    /// splits, and only while the grid stays within MaxWaves waves: past that the thin last wave costs little
    /// (and a memory-bound kernel's last blocks get the bandwidth the others left), and the workspace stays small.
    /// </summary>
    internal static int ChooseSplits(long items, int kTiles, int maxSplitsForK, long slots)
    {
        if (items <= 0 || kTiles <= 1 || slots <= 0)
            return 1;
        int limit = Math.Min(MaxSplits, Math.Min(kTiles, Math.Max(1, maxSplitsForK)));
        int best = 1;
        double bestEfficiency = Efficiency(items, kTiles, 1, slots);
        for (int s = 2; s <= limit && items * s <= MaxWaves * slots; s++)
        {
            double efficiency = Efficiency(items, kTiles, s, slots);
            if (efficiency > bestEfficiency * 1.05)
            {
                best = s;
                bestEfficiency = efficiency;
            }
        }
        return best;
    }

    internal static double Efficiency(long items, int kTiles, int splits, long slots)
    {
        long blocks = items * splits;
        long waves = (blocks + slots - 1) / slots;
        long perSplit = (kTiles + splits - 1) / splits;
        return (double)items * kTiles / ((double)slots * waves * perSplit);
    }

    /// <summary>
    /// Blocks of a variant one SM holds: shared memory (the per-block opt-in limit plus the 1 KB the driver reserves
    /// per block is what an SM has on sm_80 and sm_90) and 2048 threads, at most 32.
    /// </summary>
    public static int BlocksPerSm(GroupedGemm.Variant variant, int maxSharedPerBlockOptin)
    {
        const int reserved = 1024;
        long perSm = Math.Max(maxSharedPerBlockOptin, 48 * 1024) + reserved;
        long bySharedMemory = perSm / (variant.SharedBytes + reserved);
        long byThreads = 2048 / Math.Max(32, variant.Threads);
        return (int)Math.Clamp(Math.Min(bySharedMemory, byThreads), 1, 32);
    }

    /// <summary>The row tiles the split-K wave model counts: the expected ones (default) or the grid's bound (the model before, for A/B).</summary>
    internal enum SplitTiles { Expected, Bound }

    /// <summary>
    /// MOE_GROUPED_GEMM_SPLIT_TILES=expected|bound (default expected): what <see cref="ChooseSplits"/> counts as the call's
    /// row tiles. Bound is the model of the sessions before (it kept Mixtral T=16's down at one split: 640 counted items,
    /// 512 real ones, 1.3 waves of 396 places).
    /// </summary>
    private static readonly EnvironmentSetting<SplitTiles> SplitTilesSetting = new("MOE_GROUPED_GEMM_SPLIT_TILES", ParseSplitTiles);

    internal static SplitTiles ParseSplitTiles(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "expected" => SplitTiles.Expected,
        "bound" => SplitTiles.Bound,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_SPLIT_TILES='{value}': expected 'expected' (the row tiles routing most likely fills) or 'bound'"),
    };

    /// <summary>MOE_GROUPED_GEMM_SPLITK: unset or empty = heuristic; 1 = never split; N (2..8) = always N splits.</summary>
    public static int? SplitsFromEnvironment() => SplitsSetting.Value;

    private static readonly EnvironmentSetting<int?> SplitsSetting = new("MOE_GROUPED_GEMM_SPLITK", ParseSplits);

    internal static int? ParseSplits(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return null;
        if (!int.TryParse(value, out int splits) || splits < 1 || splits > MaxSplits)
            throw new ArgumentException($"MOE_GROUPED_GEMM_SPLITK='{value}': expected 1 (no split-K) to {MaxSplits} (force that many splits)");
        return splits;
    }
}
