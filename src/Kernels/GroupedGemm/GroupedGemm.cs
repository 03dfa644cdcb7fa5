using System.Runtime.InteropServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>Epilogue options of <see cref="GroupedGemm.Run"/>.</summary>
public sealed record GroupedGemmOptions
{
    /// <summary>Optional [rows] F32 factors, one per row of X (routing weights): y[r, :] *= rowScale[r].</summary>
    public MemoryBuffer<float>? RowScale { get; init; }

    /// <summary>
    /// Stacked gate_up weights [E, 2I, K] (rows 0..I-1 gate, I..2I-1 up): y[r, j] = silu(x[r] . Wg[j]) * (x[r] . Wu[j]),
    /// and Y is [rows, I].
    /// </summary>
    public bool FusedSiluAndMul { get; init; }

    /// <summary>
    /// Copy the offsets to the host and check them before the launch (monotone, within [0, rows]). CUDA only: it
    /// synchronises the stream, so turn it off inside a CUDA graph capture. The kernel clamps offsets to [0, rows]
    /// either way, so bad offsets cannot make it read or write out of bounds. The CPU always checks.
    /// </summary>
    public bool ValidateOffsets { get; init; } = true;

    /// <summary>Tests and benchmarks: force a tile shape ("decode", "medium", "prefill", ..., "wgmma", "gemv", "gemv1", "gemv4", "gemv8", "gemvbulk") instead of the heuristic.</summary>
    internal string? VariantOverride { get; init; }

    /// <summary>
    /// Scratch for split-K (CUDA, bf16/f16): with it, calls with too few output tiles to fill the device split K
    /// over several blocks and reduce deterministically (see <see cref="GroupedGemmLaunch"/>); without it, no split.
    /// MOE_GROUPED_GEMM_SPLITK=1 turns split-K off, =N forces N splits (as far as the workspace has room).
    /// </summary>
    public GroupedGemmWorkspace? SplitKWorkspace { get; init; }

    /// <summary>Tests: force this many splits (1 = none), over the heuristic and the environment; needs a workspace.</summary>
    internal int? SplitKOverride { get; init; }

    /// <summary>Tests: the few-tile rule (<see cref="GroupedGemmFewTiles"/>) on or off, over MOE_GROUPED_GEMM_FEW_TILES.</summary>
    internal bool? FewTilesOverride { get; init; }

    /// <summary>Tests and the sweep: the skinny kernel (<see cref="GroupedGemmSkinny"/>) on or off, over MOE_GROUPED_GEMM_SKINNY.</summary>
    internal bool? SkinnyOverride { get; init; }

    /// <summary>Tests and the sweep: the skinny kernel's k-tiles (a stage's K: 64, wide 128) per split instead of its heuristic's.</summary>
    internal int? SkinnyKTilesPerSplitOverride { get; init; }

    /// <summary>Tests and the sweep: the skinny kernel's wide tiles (128 of K per stage) or narrow ones (64), over its default rule and MOE_GROUPED_GEMM_SKINNY.</summary>
    internal bool? SkinnyWideOverride { get; init; }

    /// <summary>Tests and the sweep: the skinny kernel's split sums folded into its one kernel or reduced by a second, over MOE_SKINNY_REDUCE.</summary>
    internal GroupedGemmSkinny.Reduce? SkinnyReduceOverride { get; init; }

    /// <summary>Tests and the sweep: small single-matrix calls on the GEMV (<see cref="GroupedGemmDenseGemv"/>) on or off, over MOE_DENSE_GEMV and the other paths' overrides.</summary>
    internal bool? DenseGemvOverride { get; init; }

    /// <summary>Tests: the 8-row GEMV's tile slots (blocks per column block, each looping over m-tiles), 1 or more.</summary>
    internal int? GemvTileSlotsOverride { get; init; }

    /// <summary>Tests and the sweep: the 4-row GEMV's W rows a warp group (4, 8, or 0: chosen per call), over MOE_GROUPED_GEMM_GEMV_WROWS.</summary>
    internal int? GemvWRowsOverride { get; init; }

    /// <summary>
    /// Optional: the m-tile map of ExpertOffsets at 4 rows a tile (Permute writes it: Permute.TileMapElements, at least
    /// 3 x GroupedGemmLaunch.MTilesBound(rows, E, 4) elements). The 4-row decode GEMV then reads each block's tile there
    /// with one load instead of searching the offsets; every other kernel ignores it. It must be the map of these offsets
    /// (within [0, rows]): the GEMV trusts it as it trusts the offsets (clamped, never out of bounds, but wrong tiles give
    /// wrong rows).
    /// </summary>
    public MemoryBuffer<int>? TileMap { get; init; }

    /// <summary>
    /// A hint for the 4-row decode GEMV, which needs <see cref="TileMap"/>: the map was complete before the kernel just
    /// before this call began (the MoE layer's down call: Permute wrote it before gate_up), so each block reads its tile and
    /// asks L2 for the first segments of its W rows before it waits for that kernel (GemvPrefetchSwitch.Segments of them),
    /// when the call's grid is one wave (with more, the GEMV leaves it out). Results are the same either way: the tile is
    /// read again after the wait. Other kernels ignore it.
    /// </summary>
    public bool PrefetchBeforeWait { get; init; }

    /// <summary>
    /// Optional: a bound on any one expert's rows that the caller knows (the MoE layer's token count: a token's k experts
    /// are distinct, so no expert has more rows than there are tokens). At 1 the decode GEMV runs its 1-row entry, which
    /// keeps one row's sums a lane and so more of W in flight; a bound that is wrong costs time, never correctness (an
    /// expert's extra rows are further passes over its W). Other kernels ignore it. At least 1.
    /// </summary>
    public int? MaxRowsPerExpert { get; init; }
}

/// <summary>
/// Grouped GEMM over experts: for every expert e, Y[rows of e] = X[rows of e] * W[e]^T, with the rows of expert e
/// being expertOffsets[e] .. expertOffsets[e+1]-1 (rows sorted by expert, as permute leaves them).
/// <code>
/// x: [rows, K]   w: [E, N, K] (each expert a Linear's [out, in])   expertOffsets: [E + 1] I32   y: [rows, N]
/// example: E = 2, offsets = [0, 2, 3], rows = 4:
///   y[0] = x[0] W[0]^T,  y[1] = x[1] W[0]^T,  y[2] = x[2] W[1]^T,  y[3] untouched (past offsets[E])
/// </code>
/// Operands F32 (reference path), BF16 or F16 (X and W the same dtype; F32 accumulation on tensor cores);
/// output F32, BF16 or F16 (F32 operands give F32 output). The offsets stay on the device: the host needs
/// only the upper bound on rows that the buffer lengths give, so the call can be captured in a CUDA graph.
/// Rows before expertOffsets[0] and from expertOffsets[E] on are not written.
/// </summary>
public static class GroupedGemm
{
    /// <summary>
    /// Whether a grouped call of <paramref name="rows"/> rows over <paramref name="experts"/> experts, W [E, N, K], runs the
    /// decode GEMV (CUDA, bf16/f16) by the grouped rule, as <see cref="Run"/> dispatches it. Single-matrix calls of a few
    /// rows with a small W also run it (<see cref="GroupedGemmDenseGemv"/>); callers of this ask about the routed experts' calls.
    /// </summary>
    public static bool RunsGemv(Accelerator accelerator, DType operands, int rows, int experts, int n, int k) =>
        accelerator.Kind == AcceleratorKind.Cuda && GroupedGemmGemv.ChosenFor(accelerator, operands, rows, experts, n, k);

    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm.cu");

    /// <summary>Runs the grouped GEMM. <paramref name="outFeatures"/> is N (W's rows per expert), <paramref name="inFeatures"/> K.</summary>
    public static void Run(Accelerator accelerator, MemoryBuffer x, MemoryBuffer weights, MemoryBuffer<int> expertOffsets, MemoryBuffer y,
                           int outFeatures, int inFeatures, GroupedGemmOptions? options = null, AcceleratorStream? stream = null)
    {
        var plan = Validate(accelerator, x, weights, expertOffsets, y, outFeatures, inFeatures, options ?? new GroupedGemmOptions(), stream);
        if (plan.Rows == 0)
            return;
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            GroupedGemmCpuFast.Run(plan);
            return;
        }
        RunCuda((CudaAccelerator)accelerator, plan, (CudaStream)(stream ?? accelerator.DefaultStream));
    }

    /// <summary>Everything a backend needs, checked.</summary>
    internal sealed record Plan(MemoryBuffer X, MemoryBuffer W, MemoryBuffer<int> ExpertOffsets, MemoryBuffer Y, MemoryBuffer<float>? RowScale,
                                int Rows, int N, int K, int Experts, bool Fused, string? VariantOverride)
    {
        public GroupedGemmWorkspace? SplitK { get; init; }
        public int? SplitKOverride { get; init; }
        public int? GemvTileSlotsOverride { get; init; }
        public int? GemvWRowsOverride { get; init; }
        public int? MaxRowsPerExpert { get; init; }
        public bool? FewTilesOverride { get; init; }
        public bool? SkinnyOverride { get; init; }
        public int? SkinnyKTilesPerSplitOverride { get; init; }
        public bool? SkinnyWideOverride { get; init; }
        public GroupedGemmSkinny.Reduce? SkinnyReduceOverride { get; init; }
        public bool? DenseGemvOverride { get; init; }
        public MemoryBuffer<int>? TileMap { get; init; }
        public bool PrefetchBeforeWait { get; init; }

        public int OutCols => Fused ? N / 2 : N;
    }

    private static Plan Validate(Accelerator accelerator, MemoryBuffer x, MemoryBuffer weights, MemoryBuffer<int> expertOffsets, MemoryBuffer y,
                                 int outFeatures, int inFeatures, GroupedGemmOptions options, AcceleratorStream? stream)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(expertOffsets);
        ArgumentNullException.ThrowIfNull(y);
        if (accelerator.Kind is not (AcceleratorKind.Cpu or AcceleratorKind.Cuda))
            throw new ArgumentException($"{accelerator.Name}: grouped GEMM runs on CPU and CUDA accelerators", nameof(accelerator));
        foreach (var (buffer, name) in new (MemoryBuffer?, string)[] { (x, nameof(x)), (weights, nameof(weights)), (expertOffsets, nameof(expertOffsets)), (y, nameof(y)), (options.RowScale, "options.RowScale") })
        {
            if (buffer is null)
                continue;
            buffer.ThrowIfDisposed();
            if (!ReferenceEquals(buffer.Accelerator, accelerator))
                throw new ArgumentException($"{name} is {buffer.Describe()}; it must live on {accelerator.Name}", name);
        }
        if (stream is not null && !ReferenceEquals(stream.Accelerator, accelerator))
            throw new ArgumentException($"stream of {stream.Accelerator.Name} given for {accelerator.Name}", nameof(stream));
        if (outFeatures <= 0)
            throw new ArgumentOutOfRangeException(nameof(outFeatures), outFeatures, "N (W's rows per expert) must be positive");
        if (inFeatures <= 0)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), inFeatures, "K (in features) must be positive");
        if (x.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"x is {x.Describe()}; operands must be f32, bf16 or f16", nameof(x));
        if (weights.DType != x.DType)
            throw new ArgumentException($"weights are {DTypes.Name(weights.DType)} but x is {DTypes.Name(x.DType)}; operands must share one dtype", nameof(weights));
        if (y.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"y is {y.Describe()}; output must be f32, bf16 or f16", nameof(y));
        if (x.DType == DType.F32 && y.DType != DType.F32)
            throw new ArgumentException($"y is {DTypes.Name(y.DType)}; f32 operands (the reference path) give f32 output", nameof(y));
        if (x.DType != DType.F32 && inFeatures % 8 != 0)
            throw new ArgumentException($"K = {inFeatures} must be a multiple of 8 for {DTypes.Name(x.DType)} operands (rows are loaded in 16-byte chunks)", nameof(inFeatures));
        if (accelerator.Kind == AcceleratorKind.Cuda && x.DType != DType.F32)
        {
            // The tensor-core kernel loads 16-byte chunks: views must start on a 16-byte boundary.
            if (x.Pointer % 16 != 0)
                throw new ArgumentException($"x ({x.Describe()}) starts at an address that is not 16-byte aligned (a view at an offset that is not a multiple of 8 elements?)", nameof(x));
            if (weights.Pointer % 16 != 0)
                throw new ArgumentException($"weights ({weights.Describe()}) start at an address that is not 16-byte aligned", nameof(weights));
        }
        if (x.Length % inFeatures != 0)
            throw new ArgumentException($"x has {x.Length} elements, not a whole number of rows of K = {inFeatures}", nameof(x));
        long rows = x.Length / inFeatures;
        if (rows > int.MaxValue)
            throw new ArgumentException($"x has {rows} rows; at most {int.MaxValue}", nameof(x));
        if (expertOffsets.Length < 2)
            throw new ArgumentException($"expertOffsets has {expertOffsets.Length} elements; it needs E + 1 >= 2", nameof(expertOffsets));
        long experts = expertOffsets.Length - 1;
        if (experts > 65536)
            throw new ArgumentException($"{experts} experts; at most 65536", nameof(expertOffsets));
        if (weights.Length != experts * outFeatures * inFeatures)
            throw new ArgumentException($"weights have {weights.Length} elements; [E={experts}, N={outFeatures}, K={inFeatures}] needs {experts * outFeatures * (long)inFeatures}", nameof(weights));
        if (options.FusedSiluAndMul && outFeatures % 2 != 0)
            throw new ArgumentException($"fused SiLU-and-mul needs stacked gate_up weights with an even N = 2I; N = {outFeatures}", nameof(outFeatures));
        long outCols = options.FusedSiluAndMul ? outFeatures / 2 : outFeatures;
        if (y.Length != rows * outCols)
            throw new ArgumentException($"y has {y.Length} elements; [rows={rows}, {(options.FusedSiluAndMul ? "I" : "N")}={outCols}] needs {rows * outCols}", nameof(y));
        if (options.RowScale is { } scale && scale.Length != rows)
            throw new ArgumentException($"options.RowScale has {scale.Length} elements; it needs one per row ({rows})", "options.RowScale");
        if (accelerator.Kind == AcceleratorKind.Cpu || options.ValidateOffsets)
        {
            var offsets = accelerator.Kind == AcceleratorKind.Cpu ? expertOffsets.AsSpan() : expertOffsets.ToArray(stream);
            CheckOffsets(offsets, rows);
        }
        if (options.VariantOverride is { } forced && x.DType != DType.F32 && forced != GroupedGemmWgmma.VariantName && !GroupedGemmGemv.IsVariantName(forced)
            && forced != GroupedGemmGemvBulk.VariantName && !Variants.Any(v => v.Name == forced))
            throw new ArgumentException($"unknown variant '{forced}'; known: {string.Join(", ", Variants.Select(v => v.Name))}, {GroupedGemmWgmma.VariantName}, {GroupedGemmGemv.VariantName}, {GroupedGemmGemv.Variant1Name}, {GroupedGemmGemv.Variant4Name}, {GroupedGemmGemv.Variant8Name}, {GroupedGemmGemvBulk.VariantName}", nameof(options));
        CheckSplitK(accelerator, options);
        CheckTileMap(accelerator, options.TileMap, (int)rows, (int)experts);
        return new Plan(x, weights, expertOffsets, y, options.RowScale, (int)rows, outFeatures, inFeatures, (int)experts, options.FusedSiluAndMul, options.VariantOverride)
        {
            SplitK = options.SplitKWorkspace,
            SplitKOverride = options.SplitKOverride,
            FewTilesOverride = options.FewTilesOverride,
            SkinnyOverride = options.SkinnyOverride,
            SkinnyWideOverride = options.SkinnyWideOverride,
            SkinnyReduceOverride = options.SkinnyReduceOverride,
            DenseGemvOverride = options.DenseGemvOverride,
            TileMap = options.TileMap,
            PrefetchBeforeWait = options.PrefetchBeforeWait && options.TileMap is null
                ? throw new ArgumentException("options.PrefetchBeforeWait needs options.TileMap: the GEMV reads its tile there before the wait", nameof(options))
                : options.PrefetchBeforeWait,
            SkinnyKTilesPerSplitOverride = options.SkinnyKTilesPerSplitOverride is { } share and < 1
                ? throw new ArgumentException($"SkinnyKTilesPerSplitOverride = {share}: at least 1", nameof(options)) : options.SkinnyKTilesPerSplitOverride,
            GemvTileSlotsOverride = options.GemvTileSlotsOverride is { } slots and < 1
                ? throw new ArgumentException($"GemvTileSlotsOverride = {slots}: at least 1", nameof(options)) : options.GemvTileSlotsOverride,
            MaxRowsPerExpert = options.MaxRowsPerExpert is { } bound and < 1
                ? throw new ArgumentException($"MaxRowsPerExpert = {bound}: at least 1 (a bound on any expert's rows)", nameof(options)) : options.MaxRowsPerExpert,
            GemvWRowsOverride = options.GemvWRowsOverride is { } wRows and not (GroupedGemmGemv.AutoWRows or 4 or 8)
                ? throw new ArgumentException($"GemvWRowsOverride = {wRows}: 4 or 8 W rows a warp group, or 0 (chosen per call)", nameof(options)) : options.GemvWRowsOverride,
        };
    }

    private static void CheckTileMap(Accelerator accelerator, MemoryBuffer<int>? tileMap, int rows, int experts)
    {
        if (tileMap is null)
            return;
        tileMap.ThrowIfDisposed();
        if (!ReferenceEquals(tileMap.Accelerator, accelerator))
            throw new ArgumentException($"options.TileMap belongs to {tileMap.Accelerator.Name}; it must belong to {accelerator.Name}", "options.TileMap");
        long needed = 3L * GroupedGemmLaunch.MTilesBound(rows, experts, GroupedGemmGemv.TileRows);
        if (tileMap.Length < needed)
            throw new ArgumentException($"options.TileMap ({tileMap.Describe()}) holds {tileMap.Length} elements; the m-tile map of {rows} rows over {experts} experts at {GroupedGemmGemv.TileRows} rows a tile needs {needed} (3 x MTilesBound)", "options.TileMap");
    }

    private static void CheckSplitK(Accelerator accelerator, GroupedGemmOptions options)
    {
        if (options.SplitKWorkspace is { } workspace)
        {
            workspace.ThrowIfDisposed();
            if (!ReferenceEquals(workspace.Accelerator, accelerator))
                throw new ArgumentException($"options.SplitKWorkspace belongs to {workspace.Accelerator.Name}; it must belong to {accelerator.Name}", "options.SplitKWorkspace");
        }
        if (options.SplitKOverride is { } splits && (splits < 1 || splits > GroupedGemmLaunch.MaxSplits || (splits > 1 && options.SplitKWorkspace is null)))
            throw new ArgumentException($"SplitKOverride = {splits}: 1 to {GroupedGemmLaunch.MaxSplits}, and above 1 only with a SplitKWorkspace", nameof(options));
    }

    /// <summary>
    /// Kernel launches of a one-matrix call (E = 1) of <paramref name="rows"/> rows, bf16 [<paramref name="outFeatures"/>,
    /// <paramref name="inFeatures"/>] weights, with a split-K workspace that has room, on a Hopper GPU (host-cost models
    /// count them): 1, or 2 where the skinny split-K kernel takes it (2..128 rows, not left to the wgmma kernel nor to the
    /// GEMV's small-call rule, <see cref="GroupedGemmDenseGemv"/>) with MOE_SKINNY_REDUCE=kernel.
    /// </summary>
    public static int SingleMatrixLaunches(int rows, int outFeatures, int inFeatures, bool fusedSiluAndMul = false) =>
        GroupedGemmSkinny.LaunchesOnHopper(rows, outFeatures, inFeatures, fusedSiluAndMul);

    /// <summary>Blocks of <paramref name="variant"/> the accelerator runs at once (split-K planning).</summary>
    internal static long Slots(Accelerator accelerator, Variant variant) =>
        (long)Math.Max(1, accelerator.Info.MultiprocessorCount) * GroupedGemmLaunch.BlocksPerSm(variant, accelerator.Info.MaxSharedMemoryPerBlockOptin);

    private static void CheckOffsets(ReadOnlySpan<int> offsets, long rows)
    {
        if (offsets[0] < 0)
            throw new ArgumentException($"expertOffsets[0] = {offsets[0]} is negative", "expertOffsets");
        for (int e = 0; e + 1 < offsets.Length; e++)
            if (offsets[e + 1] < offsets[e])
                throw new ArgumentException($"expertOffsets are not monotone: [{e}] = {offsets[e]} > [{e + 1}] = {offsets[e + 1]}", "expertOffsets");
        if (offsets[^1] > rows)
            throw new ArgumentException($"expertOffsets[E] = {offsets[^1]} is past the {rows} rows of x", "expertOffsets");
    }

    /// <summary>A tensor-core kernel shape: rows and columns per block, threads, shared memory.</summary>
    internal readonly record struct Variant(string Name, int TileRows, int TileCols, int Threads, int SharedBytes);

    // Shared bytes = stages * (tile rows + tile cols) * BK * 2 (two bytes per element); BK is 32 or 64.
    internal static readonly Variant Decode = new("decode", 16, 64, 128, 12 * (16 + 64) * 32 * 2);
    internal static readonly Variant Medium = new("medium", 64, 128, 256, 4 * (64 + 128) * 32 * 2);
    internal static readonly Variant Prefill = new("prefill", 128, 128, 256, 4 * (128 + 128) * 32 * 2);
    // BK = 64 (128-byte W row segments per stage, half the barriers per K): decode 6 stages (60 KB, 3 blocks per SM),
    // medium 4 stages (96 KB, 2 per SM), large 128x256 with 64x64 warp tiles, 3 stages (144 KB, 1 per SM).
    internal static readonly Variant Decode64 = new("decode64", 16, 64, 128, 6 * (16 + 64) * 64 * 2);
    internal static readonly Variant Medium64 = new("medium64", 64, 128, 256, 4 * (64 + 128) * 64 * 2);
    internal static readonly Variant Large = new("large", 128, 256, 256, 3 * (128 + 256) * 64 * 2);
    // The 16-row tile with longer W runs per stage (256 / 512 bytes a row): 3 stages, 60 KB (3 per SM) and 120 KB (1 per SM).
    internal static readonly Variant Decode128 = new("decode128", 16, 64, 128, 3 * (16 + 64) * 128 * 2);
    internal static readonly Variant Decode256 = new("decode256", 16, 64, 128, 3 * (16 + 64) * 256 * 2);
    private static readonly Variant Reference = new("f32", 32, 32, 256, 0);
    internal static readonly Variant[] Variants = [Decode, Medium, Prefill, Decode64, Medium64, Large, Decode128, Decode256];

    /// <summary>
    /// The 16-row tile the heuristic takes: decode128 (BK = 128: 256 contiguous bytes of each W row per stage), the
    /// default since it streamed Mixtral's T = 16 experts at 90-93% of the copy floor on an H200 where decode64 reached
    /// 77-80% and decode256 (1 block per SM) 41-42% (same run, 2026-11-30); MOE_GROUPED_GEMM_DECODE_BK=64 / 256 for A/B.
    /// </summary>
    internal static Variant DecodeTile { get; } = ParseDecodeBk(Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_DECODE_BK"));

    internal static Variant ParseDecodeBk(string? value) => value?.Trim() switch
    {
        "64" => Decode64,
        null or "" or "128" => Decode128,
        "256" => Decode256,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_DECODE_BK='{value}': expected 64, 128 (decode128, the default) or 256"),
    };

    /// <summary>Whether a variant is one of the 16-row decode tiles (any BK).</summary>
    internal static bool IsDecodeTile(Variant variant) => variant.TileRows == 16;

    /// <summary>
    /// The tile shape for a call, from what the host knows: rows (an upper bound) over the experts that can be active.
    /// Few rows per expert: the decode tile (16 rows, streams W once; <see cref="DecodeTile"/>); up to 128: 64x128; more: the 128x256 tile.
    /// All BK = 64; the BK = 32 variants stay selectable through VariantOverride for comparison.
    /// </summary>
    internal static Variant ChooseVariant(DType operands, int rows, int experts)
    {
        if (operands == DType.F32)
            return Reference;
        long rowsPerActiveExpert = rows / Math.Max(1, Math.Min(experts, rows));
        return rowsPerActiveExpert <= 16 ? DecodeTile : rowsPerActiveExpert <= 128 ? Medium64 : Large;
    }

    /// <summary>The dtype part of a kernel entry name (every grouped GEMM source uses the same names).</summary>
    internal static string Suffix(DType dtype) => dtype switch
    {
        DType.BF16 => "bf16",
        DType.F16 => "f16",
        DType.F32 => "f32",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>
    /// The build of grouped_gemm.cu that holds one dtype pair's entries (its GG_ONE_PAIR note): a first use compiles
    /// that pair's tiles, or the F32 kernel alone, not every pair's.
    /// </summary>
    internal static IReadOnlyList<string> BuildOptions(DType operands, DType output) => DTypeBuilds.Pair("GG", operands, output);

    internal static string EntryName(Variant variant, DType operands, DType output) =>
        operands == DType.F32 ? "grouped_gemm_f32" : $"grouped_gemm_{variant.Name}_{Suffix(operands)}_{Suffix(output)}";

    private static void RunCuda(CudaAccelerator accelerator, Plan plan, CudaStream stream)
    {
        // One matrix, a few rows, a small W (the routers at T <= 4; GroupedGemmDenseGemv.cs): the decode GEMV with a short K
        // share per warp, unless switched off or another path is forced. Ahead of the bulk GEMV's switch, which is for grouped calls.
        if (plan.X.DType != DType.F32 && GroupedGemmDenseGemv.TakesPlan(plan))
        {
            GroupedGemmDenseGemv.Run(accelerator, plan, stream);
            return;
        }
        // The bulk-copy decode GEMV (GroupedGemmGemvBulk.cs): forced, or, switched on, where the heuristic takes the 4-row GEMV and K fits.
        if (plan.X.DType != DType.F32 && (plan.VariantOverride == GroupedGemmGemvBulk.VariantName ||
                                          (plan.VariantOverride is null && GroupedGemmGemvBulk.ChosenFor(accelerator, plan.X.DType, plan.Rows, plan.Experts, plan.K, plan.Fused))))
        {
            GroupedGemmGemvBulk.Run(accelerator, plan, stream);
            return;
        }
        // The decode GEMV (GroupedGemmGemv.cs): forced, or the heuristic's pick for a row or a few per expert.
        if (plan.X.DType != DType.F32 && (GroupedGemmGemv.IsVariantName(plan.VariantOverride) ||
                                          (plan.VariantOverride is null && GroupedGemmGemv.ChosenFor(accelerator, plan.X.DType, plan.Rows, plan.Experts, plan.N, plan.K))))
        {
            GroupedGemmGemv.Run(accelerator, plan, stream);
            return;
        }
        // One matrix, 2..128 rows, a workspace (GroupedGemmSkinny.cs): the skinny split-K kernel, unless switched off or out of room.
        if (plan.X.DType != DType.F32 && GroupedGemmSkinny.TryRun(accelerator, plan, stream))
            return;
        // A call the Hopper kernel would run on a few SMs (GroupedGemmFewTiles.cs): the split-K mma.sync tile, when switched on.
        bool fewTiles = plan.VariantOverride is null && plan.X.DType != DType.F32
            && GroupedGemmFewTiles.Applies(accelerator, plan.X.DType, plan.Rows, plan.N, plan.Experts, plan.Fused, plan.SplitK is not null, plan.FewTilesOverride);
        // The Hopper kernel (GroupedGemmWgmma.cs): forced, or the heuristic's pick once it is switched on.
        if (plan.X.DType != DType.F32 && !fewTiles && (plan.VariantOverride == GroupedGemmWgmma.VariantName ||
                                          (plan.VariantOverride is null && GroupedGemmWgmma.ChosenFor(accelerator, plan.X.DType, plan.Rows, plan.Experts))))
        {
            GroupedGemmWgmma.Run(accelerator, plan, stream);
            return;
        }
        var variant = plan.VariantOverride is { } forced && plan.X.DType != DType.F32
            ? Variants.Single(v => v.Name == forced)
            : fewTiles ? GroupedGemmFewTiles.VariantFor(plan.Rows, plan.Experts) : ChooseVariant(plan.X.DType, plan.Rows, plan.Experts);
        // Each expert adds at most one partial tile; experts with rows are at most min(E, rows).
        long mTiles = (plan.Rows + (long)variant.TileRows - 1) / variant.TileRows + Math.Min(plan.Experts, plan.Rows);
        int colsPerBlock = plan.Fused ? variant.TileCols / 2 : variant.TileCols;
        long nTiles = (plan.OutCols + (long)colsPerBlock - 1) / colsPerBlock;
        var kernel = accelerator.LoadKernel(Source, EntryName(variant, plan.X.DType, plan.Y.DType), BuildOptions(plan.X.DType, plan.Y.DType));
        if (plan.X.DType == DType.F32)
        {
            // The reference kernel: grid (n tiles, m tiles).
            if (mTiles > 65535)
                throw new ArgumentException($"{plan.Rows} rows need {mTiles} row tiles of {variant.TileRows}; at most 65535 per call (split the call)", "x");
            kernel.Launch(stream, new Dim3((uint)nTiles, (uint)mTiles, 1), new Dim3((uint)variant.Threads, 1, 1), variant.SharedBytes,
                plan.X, plan.W, plan.ExpertOffsets, plan.RowScale, plan.Y, plan.Rows, plan.N, plan.K, plan.Experts, plan.Fused ? 1 : 0);
            return;
        }
        // Tensor-core kernels: a grid of (mTiles x nTiles, splits) blocks (the kernel maps x to tiles in groups).
        var launch = PlanLaunch(accelerator, variant, plan, autoSplit: fewTiles);
        if (launch.Tiles > int.MaxValue)
            throw new ArgumentException($"{plan.Rows} rows x {plan.OutCols} columns need {launch.Tiles} tiles; at most {int.MaxValue} per call (split the call)", "x");
        bool split = launch.Splits > 1;
        kernel.Launch(stream, new Dim3((uint)launch.Tiles, (uint)launch.Splits, 1), new Dim3((uint)variant.Threads, 1, 1), variant.SharedBytes,
            plan.X, plan.W, plan.ExpertOffsets, plan.RowScale, plan.Y, plan.Rows, plan.N, plan.K, plan.Experts, plan.Fused ? 1 : 0, launch.MTiles,
            split ? plan.SplitK!.Partials : null, split ? plan.SplitK!.Counters : null, launch.KTilesPerSplit);
    }

    /// <summary>The split-K plan of a tensor-core call: no split without a workspace; forced by tests or MOE_GROUPED_GEMM_SPLITK.</summary>
    internal static GroupedGemmLaunch PlanLaunch(Accelerator accelerator, Variant variant, Plan plan, bool autoSplit = false)
    {
        var workspace = plan.SplitK;
        int? forced = plan.SplitKOverride ?? (workspace is null ? 1 : GroupedGemmLaunch.SplitsFromEnvironment());
        return GroupedGemmLaunch.Plan(variant, plan.Rows, plan.N, plan.K, plan.Experts, plan.Fused, Slots(accelerator, variant), forced,
            workspace?.PartialCapacity ?? 0, workspace?.CounterCapacity ?? 0, autoSplit);
    }
}
