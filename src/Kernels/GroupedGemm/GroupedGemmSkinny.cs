using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// Single-matrix calls with few rows (<c>grouped_gemm_skinny.cu</c>): the MoE layer's dense GEMMs (router, shared expert
/// gate_up with SiLU-and-mul, down, the Qwen2-MoE shared gate) at T = 2..128. One expert, so every block holds all the
/// call's rows (padded to 16, 32, 64 or 128) and 128 columns of W over a short K range: a grid of (N / 128) x splits
/// blocks sized to the device's resident blocks. The splits are summed in fixed order (deterministic) with the epilogue
/// by the last block of each column block to arrive (one kernel, a counter per column block in the workspace), or with
/// MOE_SKINNY_REDUCE=kernel by a second kernel (A/B; bit-identical); one split writes y directly. Taken by
/// <see cref="GroupedGemm.Run"/> for bf16/f16 calls with E = 1 and 2..128 rows when the caller gives a split-K workspace
/// with room for the partials (the layer always does); otherwise the call runs as before. A workspace without room for
/// the counters (<see cref="Launch.Counters"/>) gets the two kernels. MOE_GROUPED_GEMM_SKINNY=off turns it off;
/// =wide / =narrow run every row tile with 128 / 64 of K per pipeline stage instead of the default
/// (<see cref="DefaultWideMaxRows"/>) (A/B runs).
/// </summary>
internal static class GroupedGemmSkinny
{
    /// <summary>MOE_GROUPED_GEMM_SKINNY: on (default), off, wide or narrow (on, every row tile with 128 / 64 of K per stage).</summary>
    public const string EnvironmentVariable = "MOE_GROUPED_GEMM_SKINNY";

    internal enum Mode { Off, On, Wide, Narrow }

    private static readonly Mode FromEnvironment = Parse(Environment.GetEnvironmentVariable(EnvironmentVariable));

    public static bool Enabled => FromEnvironment != Mode.Off;

    /// <summary>MOE_SKINNY_REDUCE: kernel (default: a second kernel sums the splits) or fold (the last block of each column block does).</summary>
    public const string ReduceEnvironmentVariable = "MOE_SKINNY_REDUCE";

    /// <summary>Where the split sums and the epilogue run: in the GEMM kernel's last-arriving block, or in a kernel of their own.</summary>
    internal enum Reduce { Fold, Kernel }

    /// <summary>
    /// The reduction MOE_SKINNY_REDUCE asks for. Default <see cref="Reduce.Kernel"/>: on an H200 (2026-11-30, sixth session,
    /// `skinnyfold-check.sh`) the folded reduction, one block summing every split of its 128 columns, cost more than the
    /// second graph node it saves: DeepSeek-V3's router at T=128 (56 splits) 12.4 -> 47.8 us, at T=16 7.3 -> 9.7 us, Qwen3's
    /// at T=128 9.5 -> 22.1 us; Mixtral's router gained 0.2-0.4 us and no layer row moved beyond its spread.
    /// </summary>
    internal static Reduce ReduceFromEnvironment { get; } = ParseReduce(Environment.GetEnvironmentVariable(ReduceEnvironmentVariable));

    internal static Reduce ParseReduce(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return Reduce.Kernel;
        return value.Trim().ToLowerInvariant() switch
        {
            "fold" => Reduce.Fold,
            "kernel" => Reduce.Kernel,
            _ => throw new ArgumentException($"{ReduceEnvironmentVariable}='{value}': expected kernel (a second kernel sums the K splits: two launches a call, the default) or fold (the skinny kernel's last block of each column block sums them: one launch)"),
        };
    }

    /// <summary>Whether the environment asks for the wide tiles (<see cref="WideTiles"/>) or the narrow ones; null: the default rule.</summary>
    public static bool? WideFromEnvironment => FromEnvironment switch { Mode.Wide => true, Mode.Narrow => false, _ => null };

    /// <summary>
    /// The default rule: the wide tile for calls of at most this many rows (the 16-row tile, where the call streams W and
    /// is memory-bound), the narrow ones above. Why: the grouped GEMM's 16-row decode tile with the same loads streamed
    /// Mixtral's T = 16 experts at 90-93% of the copy floor with 256 bytes of each W row per stage against 77-80% with 128
    /// (H200, 2026-11-30, GroupedGemm.DecodeTile). Measured for this kernel (H200, same day, dense_gemm, wide / narrow us):
    /// at 16 rows DeepSeek-V3's router 9.3 / 12.8, shared gate_up 21.1 / 23.9, shared down 11.3 / 11.9; at 128 rows
    /// router 14.1 / 17.3, gate_up 45.7 / 43.7, down 29.1 / 28.8 (mixed, so the narrow tiles stay above 16 rows).
    /// </summary>
    internal const int DefaultWideMaxRows = 16;

    internal static Mode Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return Mode.On;
        return value.Trim().ToLowerInvariant() switch
        {
            "on" or "1" => Mode.On,
            "off" or "0" => Mode.Off,
            "wide" => Mode.Wide,
            "narrow" => Mode.Narrow,
            _ => throw new ArgumentException($"{EnvironmentVariable}='{value}': expected on (single-matrix calls of 2..128 rows on the skinny split-K kernel), wide / narrow (the same with 128 / 64 of K per stage for every row tile) or off (as before)"),
        };
    }

    /// <summary>Rows the kernel takes: from 2 (one row stays on the GEMV) to 128 (the largest row tile).</summary>
    internal const int MinRows = 2, MaxRows = 128;

    // Must match grouped_gemm_skinny.cu: SK_BN, SK_BK, SK_WARPS, and the (MT, stages) of its SK_PARTIAL entries.
    internal const int TileCols = 128;
    internal const int TileK = 64;
    internal const int Threads = 256;

    /// <summary>A row tile of the partial kernel: rows per block, pipeline stages, 64-wide K sub-tiles per stage.</summary>
    internal readonly record struct Tile(int Rows, int Stages, int KSub = 1)
    {
        public int SharedBytes => Stages * (Rows + TileCols) * TileK * KSub * 2;

        /// <summary>K per stage: the unit of the split's K share.</summary>
        public int KPerStage => TileK * KSub;
    }

    internal static readonly Tile[] Tiles = [new(16, 4), new(32, 4), new(64, 4), new(128, 3)];

    /// <summary>The wide tiles: 256 bytes of each row per stage, 3 stages (the 128-row one needs sm_90's 227 KB per block).</summary>
    internal static readonly Tile[] WideTiles = [new(16, 3, 2), new(32, 3, 2), new(64, 3, 2), new(128, 3, 2)];

    /// <summary>
    /// The smallest row tile that holds <paramref name="rows"/> (at most <see cref="MaxRows"/>); the wide one when asked
    /// for and its shared memory fits <paramref name="maxSharedPerBlockOptin"/>.
    /// </summary>
    internal static Tile TileFor(int rows, bool wide = false, int maxSharedPerBlockOptin = int.MaxValue)
    {
        var narrow = Tiles.First(t => rows <= t.Rows);
        var wideTile = WideTiles.First(t => rows <= t.Rows);
        return wide && wideTile.SharedBytes <= maxSharedPerBlockOptin ? wideTile : narrow;
    }

    /// <summary>A split covers at least this many k-tiles (stages' worth of K): shorter ones would be mostly pipeline fill.</summary>
    internal const int MinKTilesPerSplit = 2;

    /// <summary>Most splits (the partials grow with them: splits x rows x N floats).</summary>
    internal const int MaxSplits = 64;

    /// <summary>The grid of one call: column tiles x splits of KTilesPerSplit k-tiles each.</summary>
    internal readonly record struct Launch(Tile Tile, int NTiles, int KTiles, int Splits, int KTilesPerSplit)
    {
        public long Blocks => (long)NTiles * Splits;
        public static long PartialFloatsFor(int splits, int rows, int n) => (long)splits * rows * n;

        /// <summary>Arrival counters the folded reduction needs: one per column block with several splits, none with one.</summary>
        public int Counters => Splits > 1 ? NTiles : 0;
    }

    /// <summary>
    /// Whether a launch folds its reduction into the GEMM kernel: asked for (<paramref name="mode"/>) and, with several
    /// splits, the workspace holds a counter per column block; else the second kernel reduces (same bits).
    /// </summary>
    internal static bool Folds(Reduce mode, Launch launch, long counterCapacity) => mode == Reduce.Fold && counterCapacity >= launch.Counters;

    /// <summary>
    /// Whether <see cref="GroupedGemm.Run"/> considers this kernel for a call: switched on (<paramref name="forced"/>, else
    /// the environment), bf16/f16 operands, one expert, <see cref="MinRows"/>..<see cref="MaxRows"/> rows, a workspace.
    /// </summary>
    internal static bool Takes(DType operands, int rows, int experts, bool hasWorkspace, bool? forced = null) =>
        (forced ?? Enabled) && operands is DType.BF16 or DType.F16 && experts == 1 && rows is >= MinRows and <= MaxRows && hasWorkspace;

    /// <summary>
    /// The launch for a call: splits so the grid fills the device's resident blocks once (<paramref name="slots"/>, SMs
    /// times blocks per SM), each split at least <see cref="MinKTilesPerSplit"/> k-tiles, at most <see cref="MaxSplits"/>;
    /// then as few splits as keep the K share per split (no empty split). <paramref name="kTilesPerSplit"/> forces the
    /// share (tests, the sweep's tuning rows). Fewer splits when the workspace (<paramref name="partialCapacity"/> floats)
    /// cannot hold the partials; null when not even one split fits (the caller falls back to the other kernels).
    /// </summary>
    internal static Launch? Plan(int rows, int n, int k, long slots, long partialCapacity, int? kTilesPerSplit = null, Tile? tileChoice = null)
    {
        var tile = tileChoice ?? TileFor(rows);
        int nTiles = (int)((n + (long)TileCols - 1) / TileCols);
        int kTiles = (k + tile.KPerStage - 1) / tile.KPerStage;
        int perSplit;
        if (kTilesPerSplit is { } forced)
            perSplit = Math.Clamp(forced, 1, kTiles);
        else
        {
            long wantedSplits = Math.Clamp(slots / Math.Max(1, nTiles), 1, MaxSplits);
            perSplit = Math.Max(Math.Min(MinKTilesPerSplit, kTiles), (int)((kTiles + wantedSplits - 1) / wantedSplits));
        }
        for (; perSplit <= kTiles; perSplit++)
        {
            int splits = (kTiles + perSplit - 1) / perSplit;
            if (splits <= MaxSplits && Launch.PartialFloatsFor(splits, rows, n) <= partialCapacity)
                return new Launch(tile, nTiles, kTiles, splits, perSplit);
        }
        return null;
    }

    /// <summary>Blocks of a row tile an SM holds: shared memory (with the driver's 1 KB per block) and 2048 threads.</summary>
    internal static int BlocksPerSm(Tile tile, int maxSharedPerBlockOptin)
    {
        const int reserved = 1024;
        long perSm = Math.Max(maxSharedPerBlockOptin, 48 * 1024) + reserved;
        return (int)Math.Clamp(Math.Min(perSm / (tile.SharedBytes + reserved), 2048 / Threads), 1, 8);
    }

    internal static long Slots(Accelerator accelerator, Tile tile) =>
        (long)Math.Max(1, accelerator.Info.MultiprocessorCount) * BlocksPerSm(tile, accelerator.Info.MaxSharedMemoryPerBlockOptin);

    /// <summary>
    /// The launch <see cref="GroupedGemm.Run"/> makes for a call on <paramref name="accelerator"/> (unbounded workspace by
    /// default: workspace sizing, the sweep's note). <paramref name="wide"/>: the wide tiles or the narrow ones (null: the
    /// environment's choice, else the default rule, <see cref="DefaultWideMaxRows"/>).
    /// </summary>
    internal static Launch? PlanFor(Accelerator accelerator, int rows, int n, int k, long partialCapacity = long.MaxValue, int? kTilesPerSplit = null,
                                    bool? wide = null)
    {
        var tile = TileFor(Math.Clamp(rows, 1, MaxRows), wide ?? WideFromEnvironment ?? rows <= DefaultWideMaxRows, accelerator.Info.MaxSharedMemoryPerBlockOptin);
        return Plan(rows, n, k, Slots(accelerator, tile), partialCapacity, kTilesPerSplit, tile);
    }

    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemmSkinny).Assembly, "grouped_gemm_skinny.cu");

    internal static string PartialEntryName(Tile tile, DType operands) =>
        $"grouped_gemm_skinny{tile.Rows}{(tile.KSub == 2 ? "w" : "")}_{GroupedGemm.Suffix(operands)}";

    internal static string ReduceEntryName(DType output) => $"grouped_gemm_skinny_reduce_{GroupedGemm.Suffix(output)}";

    /// <summary>
    /// The build of grouped_gemm_skinny.cu that holds one entry (its SK_ONE_DTYPE and SK_ONE_GROUP note): the partial tile
    /// <paramref name="tile"/> of <paramref name="operands"/>, so a first use compiles that entry alone.
    /// </summary>
    internal static IReadOnlyList<string> PartialBuildOptions(Tile tile, DType operands) =>
        DTypeBuilds.Group("SK", operands, $"{tile.Rows}{(tile.KSub == 2 ? "w" : "")}");

    /// <summary>The build of grouped_gemm_skinny.cu that holds the reduce to <paramref name="output"/> alone.</summary>
    internal static IReadOnlyList<string> ReduceBuildOptions(DType output) => DTypeBuilds.Group("SK", output, "reduce");

    /// <summary>
    /// Hopper tiles from which the wgmma kernel keeps a call of 64 rows or more: its time is one tile's K loop (~0.55 us per
    /// 64 of K on one SM) when it has at most an SM per tile, this kernel's grows with the weight bytes and the rows. H200,
    /// 2026-11-30, 128 rows (wgmma tiles: wgmma / skinny us): DeepSeek-V3 router (1) 68.5 / 17.3, shared gate_up+SiLU (16)
    /// 71.8 / 43.4, shared down (28) 23.6 / 28.7.
    /// </summary>
    internal const int HopperTilesAtLeast = 24;

    /// <summary>Whether the wgmma kernel keeps this call although the skinny kernel could take it (<see cref="HopperTilesAtLeast"/>).</summary>
    internal static bool HopperKeeps(Accelerator accelerator, DType operands, int rows, int n, bool fused) =>
        GroupedGemmWgmma.ChosenFor(accelerator, operands, rows, 1) && HopperKeepsTiles(rows, n, fused);

    /// <summary>
    /// One-matrix calls under this many rows stay on the skinny kernel whatever their tiles: 64, the wgmma kernel's row
    /// minimum when <see cref="HopperTilesAtLeast"/> was measured (grouped calls give it fewer rows now).
    /// </summary>
    internal const int HopperRowsAtLeast = 64;

    /// <summary>The tile part of <see cref="HopperKeeps"/>: <see cref="HopperRowsAtLeast"/> rows or more and at least <see cref="HopperTilesAtLeast"/> of its tiles (one matrix: ceil(rows / 128) row tiles exactly).</summary>
    internal static bool HopperKeepsTiles(int rows, int n, bool fused)
    {
        if (rows < HopperRowsAtLeast)
            return false;
        long rowTiles = (rows + (long)GroupedGemmWgmma.TileRows - 1) / GroupedGemmWgmma.TileRows;
        int outCols = fused ? n / 2 : n;
        int colsPerTile = fused ? GroupedGemmWgmma.TileCols / 2 : GroupedGemmWgmma.TileCols;
        return rowTiles * ((outCols + colsPerTile - 1) / colsPerTile) >= HopperTilesAtLeast;
    }

    /// <summary>
    /// Kernel launches of a single-matrix call of <paramref name="rows"/> rows, bf16 [<paramref name="n"/>, <paramref name="k"/>]
    /// weights, given a split-K workspace with room (partials and counters, <see cref="GroupedGemmWorkspace.For"/>), on a
    /// Hopper GPU with the switches from the environment (or <paramref name="reduce"/>, <paramref name="denseGemv"/>): 2 on
    /// this kernel with MOE_SKINNY_REDUCE=kernel (partials, then the reduction), else 1 (the GEMV's small-call rule,
    /// <see cref="GroupedGemmDenseGemv"/>, takes the call first: one launch).
    /// </summary>
    internal static int LaunchesOnHopper(int rows, int n, int k, bool fused, Reduce? reduce = null, bool? denseGemv = null) =>
        (reduce ?? ReduceFromEnvironment) == Reduce.Kernel && Takes(DType.BF16, rows, 1, hasWorkspace: true) && !HopperKeepsTiles(rows, n, fused)
        && !GroupedGemmDenseGemv.Takes(DType.BF16, rows, 1, n, k, denseGemv) ? 2 : 1;

    /// <summary>
    /// Runs a validated plan on this kernel when it takes the call and the workspace has room; false (nothing launched)
    /// otherwise. Explicit choices of the other paths win: a forced variant, a forced split count, the few-tile rule forced on;
    /// without the switch forced on, so does the wgmma kernel where it has enough tiles (<see cref="HopperKeeps"/>).
    /// </summary>
    internal static bool TryRun(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        if (plan.VariantOverride is not null || plan.SplitKOverride is not null || plan.FewTilesOverride == true)
            return false;
        var workspace = plan.SplitK;
        if (!Takes(plan.X.DType, plan.Rows, plan.Experts, workspace?.Partials is not null, plan.SkinnyOverride))
            return false;
        if (plan.SkinnyOverride != true && HopperKeeps(accelerator, plan.X.DType, plan.Rows, plan.N, plan.Fused))
            return false;
        if (PlanFor(accelerator, plan.Rows, plan.N, plan.K, workspace!.PartialCapacity, plan.SkinnyKTilesPerSplitOverride, plan.SkinnyWideOverride) is not { } launch)
            return false;
        var partial = accelerator.LoadKernel(Source, PartialEntryName(launch.Tile, plan.X.DType), PartialBuildOptions(launch.Tile, plan.X.DType));
        bool fold = Folds(plan.SkinnyReduceOverride ?? ReduceFromEnvironment, launch, workspace.CounterCapacity);
        t_lastRun = (launch, fold);
        partial.Launch(stream, new Dim3((uint)launch.NTiles, (uint)launch.Splits, 1), new Dim3(Threads, 1, 1), launch.Tile.SharedBytes,
            plan.X, plan.W, plan.ExpertOffsets, workspace.Partials, fold && launch.Splits > 1 ? workspace.Counters : null, plan.RowScale, plan.Y,
            OutType(plan.Y.DType), plan.Rows, plan.N, plan.K, launch.KTilesPerSplit, plan.Fused ? 1 : 0, fold ? 1 : 0);
        if (fold)
            return true;
        // The reduction: a thread per 4 output columns (per column where they are not a multiple of 4), at most 8 blocks of
        // 256 per SM (a grid-stride loop covers the rest).
        var reduce = accelerator.LoadKernel(Source, ReduceEntryName(plan.Y.DType), ReduceBuildOptions(plan.Y.DType));
        long work = (long)plan.Rows * (plan.OutCols % 4 == 0 ? plan.OutCols / 4 : plan.OutCols);
        long blocks = Math.Clamp((work + ReduceThreads - 1) / ReduceThreads, 1, 8L * Math.Max(1, accelerator.Info.MultiprocessorCount));
        reduce.Launch(stream, new Dim3((uint)blocks, 1, 1), new Dim3(ReduceThreads, 1, 1), 0,
            workspace.Partials, plan.ExpertOffsets, plan.RowScale, plan.Y, plan.Rows, plan.N, plan.Fused ? 1 : 0, launch.Splits);
        return true;
    }

    /// <summary>The partial kernel's outType: y's dtype (0 f32, 1 bf16, 2 f16), for the folded epilogue.</summary>
    internal static int OutType(DType output) => output switch
    {
        DType.F32 => 0,
        DType.BF16 => 1,
        DType.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(output)),
    };

    [ThreadStatic] private static (Launch Launch, bool Folded)? t_lastRun;

    /// <summary>Tests: the launch this thread's last skinny call made and whether it folded its reduction (null before any).</summary>
    internal static (Launch Launch, bool Folded)? LastRunOnThisThread
    {
        get => t_lastRun;
        set => t_lastRun = value;
    }

    private const int ReduceThreads = 256;
}
