using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The Hopper (sm_90a) grouped GEMM: <c>grouped_gemm_wgmma.cu</c>, TMA loads of X and W tiles into 128-byte-swizzled
/// shared memory, a 4-stage mbarrier pipeline, one producer and two consumer warpgroups issuing
/// <c>wgmma.mma_async.m64n256k16</c>, a persistent grid over (expert m-tile, column tile). Same function as
/// <see cref="GroupedGemm.Run"/> (row scale and fused SiLU-and-mul included) for bf16/f16 operands on compute
/// capability 9.0 devices. Selected by <c>VariantOverride = "wgmma"</c> (the sweep's
/// <c>MOE_GROUPED_GEMM_VARIANT=wgmma</c>), or by the heuristic for prefill shapes while <see cref="ChosenByHeuristic"/> is on (the default).
/// </summary>
public static partial class GroupedGemmWgmma
{
    /// <summary>The name that forces this kernel (<see cref="GroupedGemmOptions"/>' variant override, the sweep's variable).</summary>
    public const string VariantName = "wgmma";

    /// <summary>
    /// Whether <see cref="GroupedGemm.Run"/> picks this kernel by itself on compute capability 9.0 devices when the rows
    /// per active expert are many (where the heuristic would otherwise take the 128x256 mma.sync tile). On: on an H200
    /// (2026-11-30) it ran Mixtral's T=8192 gate_up at 745 TFLOP/s against the mma.sync tile's 239 (docs/PERFORMANCE.md).
    /// MOE_GROUPED_GEMM_WGMMA=0 turns it off (A/B runs).
    /// </summary>
    public static bool ChosenByHeuristic { get; set; } = Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_WGMMA") != "0";

    /// <summary>Compile with GW_HANG_TRAP: a barrier wait longer than 4 s traps (a launch error) instead of hanging the device.</summary>
    internal static bool TrapOnHang { get; set; } = true;

    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemmWgmma).Assembly, "grouped_gemm_wgmma.cu");

    // Must match grouped_gemm_wgmma.cu: GW_BM, GW_BN, GW_BK, GW_STAGES, GW_THREADS, GW_EPI_WARP_BYTES, GW_SHARED_BYTES.
    internal const int TileRows = 128;
    internal const int TileCols = 256;
    internal const int TileK = 64;
    internal const int Stages = 4;
    internal const int Threads = 384;
    internal const int EpilogueBytesPerWarp = 16 * (128 + 32);
    internal const int SharedBytes = Stages * (TileRows + TileCols) * TileK * 2 + 8 * EpilogueBytesPerWarp + 1024 + 256;

    /// <summary>Whether the kernel can run on <paramref name="accelerator"/> for <paramref name="operands"/>; otherwise why not.</summary>
    public static bool Supports(Accelerator accelerator, DType operands, out string reason)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (accelerator.Kind != AcceleratorKind.Cuda)
            reason = $"{accelerator.Name} is not a CUDA device";
        else if (accelerator.Info is not { ComputeMajor: 9, ComputeMinor: 0 })
            reason = $"{accelerator.Name} is compute capability {accelerator.Info.ComputeCapability}; wgmma and setmaxnreg need sm_90a (9.0: H100, H200)";
        else if (operands is not (DType.BF16 or DType.F16))
            reason = $"{DTypes.Name(operands)} operands; the wgmma kernel takes bf16 or f16";
        else if (accelerator.Info.MaxSharedMemoryPerBlockOptin < SharedBytes)
            reason = $"{accelerator.Name} allows {accelerator.Info.MaxSharedMemoryPerBlockOptin} bytes of shared memory per block; the kernel needs {SharedBytes}";
        else
            reason = "";
        return reason.Length == 0;
    }

    /// <summary>The heuristic's choice: on, supported, and at least <see cref="HeuristicMinRows"/> rows in the call.</summary>
    internal static bool ChosenFor(Accelerator accelerator, DType operands, int rows, int experts) =>
        ChosenByHeuristic && rows >= HeuristicMinRows && Supports(accelerator, operands, out _);

    /// <summary>
    /// Below this many rows the mma.sync decode tile with split-K stays (calls the GEMV did not take first: more rows than
    /// experts). It was 64 until the twenty-sixth session: on an H200 (2026-11-30) wgmma won every call from 128 rows up
    /// and lost at Mixtral-8x7B T = 16 (443 against 424 us, 32 rows over 8 experts). Small tiles (nineteenth session) load
    /// only an expert's rows of X and leave the second warpgroup idle, and on an H200 (2026-12-01, `mix26d.sh`,
    /// `mix26f.sh`, 4 layers cycled, graph-replayed) the Mixtral-8x7B layer then took, against the decode tile:
    /// T = 16 (32 rows) 0.697 against 0.769 ms, T = 8 (16 rows) 0.678 against 0.746, T = 7 (14) 0.550 against 0.567,
    /// T = 6 (12) 0.614 against 0.650, and T = 5 (10 rows) 0.561 against 0.555, a loss. Isolated at T = 16: gate_up 339.9
    /// against 363.5 us, down 173.4 against 187.3.
    /// </summary>
    internal const int MinRows = 12;

    /// <summary>
    /// The row minimum <see cref="ChosenFor"/> applies: <see cref="MinRows"/>, or MOE_GROUPED_GEMM_WGMMA_MIN_ROWS (1-64)
    /// for A/B runs. The GEMV's rules (<see cref="GroupedGemmGemv.SmallCallRows"/>) and the skinny kernel's
    /// (<see cref="GroupedGemmSkinny.HopperRowsAtLeast"/>) keep their own bounds.
    /// </summary>
    internal static int HeuristicMinRows => MinRowsSetting.Value;

    private static readonly EnvironmentSetting<int> MinRowsSetting = new("MOE_GROUPED_GEMM_WGMMA_MIN_ROWS", ParseMinRows);

    internal static int ParseMinRows(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return MinRows;
        if (!int.TryParse(value, out int rows) || rows < 1 || rows > GroupedGemmGemv.SmallCallRows)
            throw new ArgumentException($"MOE_GROUPED_GEMM_WGMMA_MIN_ROWS='{value}': expected 1 to {GroupedGemmGemv.SmallCallRows} rows (the fewest rows of a call the heuristic gives the wgmma kernel; default {MinRows})");
        return rows;
    }

    /// <summary>
    /// The kernel the heuristic runs for a call: "gemvbulk", "gemv", "wgmma" or the mma.sync tile's name (benchmark notes).
    /// Without K it names "gemvbulk" as if K fit (every preset's does: K &lt;= 8192 fused, 16384 plain).
    /// </summary>
    internal static string ChoiceName(Accelerator accelerator, DType operands, int rows, int experts) =>
        accelerator.Kind == AcceleratorKind.Cuda && GroupedGemmGemvBulk.ChosenFor(accelerator, operands, rows, experts, k: 8, fused: false)
            ? GroupedGemmGemvBulk.VariantName
        : accelerator.Kind == AcceleratorKind.Cuda && GroupedGemmGemv.ChosenFor(operands, rows, experts) ? GroupedGemmGemv.VariantName
        : ChosenFor(accelerator, operands, rows, experts) ? VariantName : GroupedGemm.ChooseVariant(operands, rows, experts).Name;

    internal static string EntryName(DType operands, DType output) => $"grouped_gemm_wgmma_{GroupedGemm.Suffix(operands)}_{GroupedGemm.Suffix(output)}";

    /// <summary>
    /// An entry of grouped_gemm_wgmma.cu, compiled with the launcher's options and <paramref name="smallTiles"/> as
    /// <see cref="Run"/> resolved it; the debug entries, which it does not touch, take the default. A kernel entry comes
    /// from the build of its dtype pair alone (the source's GW_ONE_PAIR note), a debug entry from the whole source.
    /// </summary>
    internal static CudaKernel LoadKernel(CudaAccelerator accelerator, string entry, SmallTileMode smallTiles = SmallTileMode.On,
                                          Schedule? schedule = null, int cluster = 1) =>
        accelerator.LoadKernel(Source, entry, WithPairBuild(CompileOptions(smallTiles, schedule ?? Schedule.Static, cluster), entry));

    private static List<string> WithPairBuild(List<string> options, string entry)
    {
        options.AddRange(PairBuildOf(entry));
        return options;
    }

    /// <summary>The options that build only <paramref name="entry"/>'s dtype pair; none for a debug entry.</summary>
    internal static string[] PairBuildOf(string entry) => s_pairBuildOfEntry.TryGetValue(entry, out var options) ? options : [];

    private static readonly Dictionary<string, string[]> s_pairBuildOfEntry = new[] { DType.BF16, DType.F16 }
        .SelectMany(operands => new[] { DType.BF16, DType.F16, DType.F32 }.Select(output => (operands, output)))
        .ToDictionary(pair => EntryName(pair.operands, pair.output), pair => DTypeBuilds.Pair("GW", pair.operands, pair.output));

    /// <summary>Launches the kernel for a validated plan (<see cref="GroupedGemm"/> checked shapes, dtypes, alignment).</summary>
    internal static void Run(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        if (!Supports(accelerator, plan.X.DType, out string reason))
            throw new ArgumentException($"variant '{VariantName}' cannot run here: {reason}", "options");
        if (plan.K % 8 != 0)
            throw new ArgumentException($"K = {plan.K} must be a multiple of 8: TMA row strides are multiples of 16 bytes", "inFeatures");
        // x [rows, K]: dims {K, rows}; w [E, N, K]: dims {K, N, E}. Boxes of 64 elements (128 bytes, the swizzle span)
        // by 128 rows; out-of-bounds parts (K tail, rows past x's end, W rows past N) load as zeros.
        long rowBytes = (long)plan.K * 2;
        var mapX = CudaTensorMap.EncodeTiled(plan.X, [plan.K, plan.Rows], [rowBytes], [TileK, TileRows], TensorMapSwizzle.Bytes128);
        var mapXRows = CudaTensorMap.EncodeTiled(plan.X, [plan.K, plan.Rows], [rowBytes], [TileK, SmallTileBoxRows], TensorMapSwizzle.Bytes128);
        var mapW = CudaTensorMap.EncodeTiled(plan.W, [plan.K, plan.N, plan.Experts], [rowBytes, rowBytes * plan.N], [TileK, TileCols / 2, 1],
            TensorMapSwizzle.Bytes128);
        // Upper bound on the work: each expert adds at most one partial m-tile.
        long mTiles = (plan.Rows + (long)TileRows - 1) / TileRows + Math.Min(plan.Experts, plan.Rows);
        int colsPerTile = plan.Fused ? TileCols / 2 : TileCols;
        long nTiles = (plan.OutCols + (long)colsPerTile - 1) / colsPerTile;
        if (mTiles * nTiles > int.MaxValue)
            throw new ArgumentException($"{plan.Rows} rows x {plan.OutCols} columns need {mTiles * nTiles} tiles; at most {int.MaxValue} per call (split the call)", "x");
        var smallTiles = SmallTilesOverride ?? SmallTilesFromEnvironment() ?? DefaultSmallTiles;
        int cluster = ClusterSize;
        // Paired blocks walk the static order (grouped_gemm_wgmma.cu, "Clusters").
        var schedule = cluster > 1 ? Schedule.Static : ScheduleFor(plan.SplitK);
        var kernel = LoadKernel(accelerator, EntryName(plan.X.DType, plan.Y.DType), smallTiles, schedule, cluster);
        var tickets = schedule.Kind == ScheduleKind.Static ? null : plan.SplitK!.Tickets;
        int grid = cluster == 1
            ? (int)Math.Min(accelerator.Info.MultiprocessorCount, mTiles * nTiles)
            : cluster * (int)Math.Min(ResidentClusters(kernel, cluster), PairUnitsBound(plan.Rows, plan.Experts, cluster) * nTiles);
        Span<KernelArg> args = [mapX, mapXRows, mapW, plan.ExpertOffsets, plan.RowScale, plan.Y, tickets, plan.Rows, plan.N, plan.K,
            plan.Experts, plan.Fused ? 1 : 0, default];
        int count = args.Length - 1;
        if (TraceRequested)
        {
            var trace = TraceBuffer ?? throw new InvalidOperationException("MOE_GROUPED_GEMM_WGMMA_TRACE=1 needs GroupedGemmWgmma.TraceBuffer (a bench sets it)");
            // Paired, item t's two halves are entries 2t and 2t + 1.
            long entries = cluster == 1 ? mTiles * nTiles : PairUnitsBound(plan.Rows, plan.Experts, cluster) * nTiles * cluster;
            if (trace.Length < entries * TraceValues)
                throw new InvalidOperationException($"the wgmma trace buffer holds {trace.Length / TraceValues} work items; this launch has up to {entries}");
            args[count++] = trace;
            TracedItems = entries;
        }
        kernel.Launch(stream, new Dim3((uint)grid, 1, 1), new Dim3(Threads, 1, 1), SharedBytes, args[..count]);
    }

    /// <summary>Upper bound on the work units of <paramref name="cluster"/> m-tiles: each expert adds at most one partial unit.</summary>
    internal static long PairUnitsBound(int rows, int experts, int cluster)
    {
        long unitRows = (long)TileRows * cluster;
        return (rows + unitRows - 1) / unitRows + Math.Min(experts, rows);
    }

    /// <summary>Clusters of <paramref name="cluster"/> blocks the device runs at once: the persistent grid's size, in clusters.</summary>
    private static int ResidentClusters(CudaKernel kernel, int cluster)
    {
        int resident = kernel.MaxActiveClusters(cluster, Threads, SharedBytes);
        if (resident < 1)
            throw new InvalidOperationException($"{kernel.Name}: no cluster of {cluster} blocks of {Threads} threads and {SharedBytes} bytes of shared memory fits this device; set MOE_GROUPED_GEMM_WGMMA_CLUSTER=1");
        return resident;
    }
}
