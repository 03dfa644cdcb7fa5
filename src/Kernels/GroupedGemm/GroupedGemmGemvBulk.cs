using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The decode GEMV built for bandwidth (<c>grouped_gemm_gemv_bulk.cu</c>, sm_90+): the 4-row GEMV's function and
/// arguments, but a persistent grid of one wave whose blocks loop over (m-tile, chunk of W rows) items and stream each
/// chunk into shared memory with 1D bulk copies, <see cref="Stages"/> stages of <see cref="StageBytes"/> in flight per
/// block. The 4-row kernel gives each block a fixed 4 W rows and two dependent DRAM round trips, so small calls (Qwen3
/// at T = 1: 12 and 6 us of weights) are latency bound at 51-66% of the copy floor. Off by default
/// (<see cref="SwitchFromEnvironment"/>); forceable as <see cref="VariantName"/>. Its ring, grid and diagnostic modes
/// are compile-time knobs (<see cref="GroupedGemmGemvBulkConfig"/>, MOE_GROUPED_GEMM_GEMV_BULK_*), default as shipped.
/// </summary>
public static class GroupedGemmGemvBulk
{
    /// <summary>The name that forces this kernel (<see cref="GroupedGemmOptions"/>' variant override).</summary>
    public const string VariantName = "gemvbulk";

    internal static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemmGemvBulk).Assembly, "grouped_gemm_gemv_bulk.cu");

    // Must match grouped_gemm_gemv_bulk.cu: GB_MAX_STAGE_ROWS, GB_THREADS (GB_STAGES and GB_STAGE_BYTES: the configuration's).
    internal const int MaxStageRows = 64;
    internal const int ConsumerWarps = 8;
    internal const int Threads = (ConsumerWarps + 1) * 32;

    /// <summary>The kernel's compile-time knobs: the environment's (MOE_GROUPED_GEMM_GEMV_BULK_*), read once, or a test's override.</summary>
    internal static GroupedGemmGemvBulkConfig Config => ConfigOverride ?? EnvironmentConfig.Value;

    private static readonly Lazy<GroupedGemmGemvBulkConfig> EnvironmentConfig = new(GroupedGemmGemvBulkConfig.FromEnvironment);

    /// <summary>Tests: build and launch with these knobs instead of the environment's (reset to null afterwards).</summary>
    internal static GroupedGemmGemvBulkConfig? ConfigOverride { get; set; }

    /// <summary>Stages per block and bytes per stage (4 x 32 KB by default).</summary>
    internal static int Stages => Config.Stages;

    internal static int StageBytes => Config.StageBytes;

    /// <summary>Dynamic shared memory of a block (the stages; barriers, stage headers, partial sums and the m-tile map are static, about 5 KB).</summary>
    internal static int SharedBytes => Config.SharedBytes;

    /// <summary>Static shared memory of a block (an upper bound, <see cref="GroupedGemmGemvBulkConfig.StaticSharedBytes"/>).</summary>
    internal static int StaticSharedBytes => Config.StaticSharedBytes;

    /// <summary>
    /// The largest K (2-byte elements) the kernel takes: a W row must fit a stage, and fused calls put a gate and an up
    /// row in one: 16384 plain, 8192 fused; X in shared memory (MOE_GROUPED_GEMM_GEMV_BULK_X_KB) lowers it to its area's.
    /// Larger K keeps the 4-row GEMV.
    /// </summary>
    internal static int MaxK(bool fused) => Math.Min(fused ? StageBytes / 4 : StageBytes / 2, Config.MaxKForX);

    internal static bool FitsK(int k, bool fused) => k <= MaxK(fused);

    /// <summary>W rows per stage, as the kernel computes them: whole rows up to the stage (fused: gate/up pairs), at most <see cref="MaxStageRows"/>.</summary>
    internal static int StageRows(int k, bool fused)
    {
        int rowBytes = 2 * k;
        return fused ? 2 * Math.Min(StageBytes / (2 * rowBytes), MaxStageRows / 2) : Math.Min(StageBytes / rowBytes, MaxStageRows);
    }

    /// <summary>Output columns per work item (per stage).</summary>
    internal static int ColumnsPerChunk(int k, bool fused) => fused ? StageRows(k, fused) / 2 : StageRows(k, fused);

    /// <summary>Whether the kernel can run on <paramref name="accelerator"/> for <paramref name="operands"/>; otherwise why not.</summary>
    public static bool Supports(Accelerator accelerator, DType operands, out string reason)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        return Supports(accelerator.Name, accelerator.Kind, accelerator.Info, operands,
            accelerator.Kind == AcceleratorKind.Cuda ? NvrtcCompiler.Version.Major : 0, out reason);
    }

    /// <param name="nvrtcMajor">NVRTC's major version: 12 or later assembles bulk copies (PTX ISA 8.0); the kernel built by 11 traps.</param>
    internal static bool Supports(string name, AcceleratorKind kind, DeviceInfo info, DType operands, int nvrtcMajor, out string reason)
    {
        if (kind != AcceleratorKind.Cuda)
            reason = $"{name} is not a CUDA device";
        else if (info.ComputeMajor < 9)
            reason = $"{name} is compute capability {info.ComputeCapability}; bulk copies (cp.async.bulk) need 9.0 or later";
        else if (nvrtcMajor < 12)
            reason = $"NVRTC {nvrtcMajor} cannot assemble bulk copies (PTX ISA 8.0); it needs NVRTC 12 or later";
        else if (operands is not (DType.BF16 or DType.F16))
            reason = $"{DTypes.Name(operands)} operands; the GEMV takes bf16 or f16";
        else if (info.MaxSharedMemoryPerBlockOptin < SharedBytes + StaticSharedBytes)
            reason = $"{name} allows {info.MaxSharedMemoryPerBlockOptin} bytes of shared memory per block; the kernel needs {SharedBytes + StaticSharedBytes}";
        else
            reason = "";
        return reason.Length == 0;
    }

    /// <summary>The message of a forced run that <see cref="Supports(Accelerator, DType, out string)"/> refuses.</summary>
    internal static string CannotRunMessage(string reason) => $"variant '{VariantName}' cannot run here: {reason}";

    /// <summary>
    /// Whether the heuristic runs this kernel instead of the 4-row GEMV: the switch on, the 4-row GEMV the pick
    /// (<see cref="GroupedGemmGemv.ChosenFor(DType, int, int)"/> with 4-row tiles), K within <see cref="MaxK"/>, and a device that supports it.
    /// </summary>
    internal static bool ChosenFor(Accelerator accelerator, DType operands, int rows, int experts, int k, bool fused) =>
        ChosenFor(accelerator, operands, rows, experts, k, fused, SwitchFromEnvironment(), GroupedGemmGemv.MaxRowsFromEnvironment());

    internal static bool ChosenFor(Accelerator accelerator, DType operands, int rows, int experts, int k, bool fused, bool switchOn, int maxRows) =>
        ChosenFor(Supports(accelerator, operands, out _), operands, rows, experts, k, fused, switchOn, maxRows);

    /// <summary>The rule itself, for a device that does or does not <paramref name="supported"/> the kernel.</summary>
    internal static bool ChosenFor(bool supported, DType operands, int rows, int experts, int k, bool fused, bool switchOn, int maxRows) =>
        // Rule.Small: this kernel was built and measured for calls under 64 rows only.
        supported && switchOn && GroupedGemmGemv.ChosenFor(operands, rows, experts, maxRows, GroupedGemmGemv.Rule.Small)
        && GroupedGemmGemv.TileRowsFor(rows, experts, maxRows) == GroupedGemmGemv.TileRows && FitsK(k, fused);

    /// <summary>The heuristic's default: off until an H200 measurement shows the kernel ahead of the 4-row GEMV.</summary>
    internal const bool DefaultOn = false;

    /// <summary>MOE_GROUPED_GEMM_GEMV_BULK=0|1: whether the heuristic takes this kernel where it would take the 4-row GEMV (and K fits).</summary>
    internal static bool SwitchFromEnvironment() => Switch.Value;

    private static readonly EnvironmentSetting<bool> Switch = new("MOE_GROUPED_GEMM_GEMV_BULK", ParseSwitch);

    internal static bool ParseSwitch(string? value) => value?.Trim() switch
    {
        null or "" => DefaultOn,
        "0" => false,
        "1" => true,
        _ => throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_BULK='{value}': expected 0 (the 4-row GEMV) or 1 (the bulk-copy GEMV where K fits)"),
    };

    /// <summary>
    /// Blocks of a launch: one wave (SMs x blocks per SM by shared memory), fewer when the items are fewer. Items:
    /// the bound on 4-row m-tiles times the chunks of output columns (the kernel counts the real m-tiles itself).
    /// </summary>
    internal static int BlocksFor(int rows, int experts, int outCols, int k, bool fused, int multiprocessors, int maxSharedPerBlockOptin)
    {
        long items = (long)GroupedGemmLaunch.MTilesBound(rows, experts, GroupedGemmGemv.TileRows)
                     * ((outCols + ColumnsPerChunk(k, fused) - 1) / ColumnsPerChunk(k, fused));
        return (int)Math.Clamp(items, 1, (long)Math.Max(1, multiprocessors) * BlocksPerSmFor(Config, maxSharedPerBlockOptin));
    }

    /// <summary>Blocks one SM holds by shared memory (the per-block opt-in limit plus the 1 KB the driver reserves per block).</summary>
    internal static int BlocksPerSm(int maxSharedPerBlockOptin) => BlocksPerSmByShared(maxSharedPerBlockOptin, Config);

    internal static int BlocksPerSmByShared(int maxSharedPerBlockOptin, GroupedGemmGemvBulkConfig config)
    {
        const int reserved = 1024;
        long perSm = Math.Max(maxSharedPerBlockOptin, 48 * 1024) + reserved;
        return (int)Math.Clamp(perSm / (config.SharedBytes + config.StaticSharedBytes + reserved), 1, 2048 / Threads);
    }

    /// <summary>
    /// Blocks per SM of a launch: the configuration's request where shared memory holds that many (an error naming the
    /// variable where it does not), else as many as shared memory allows.
    /// </summary>
    internal static int BlocksPerSmFor(GroupedGemmGemvBulkConfig config, int maxSharedPerBlockOptin)
    {
        int fits = BlocksPerSmByShared(maxSharedPerBlockOptin, config);
        if (config.BlocksPerSm is not { } wanted)
            return fits;
        if (wanted > fits)
            throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_BULK_BLOCKS_PER_SM={wanted}: blocks of {config.SharedBytes + config.StaticSharedBytes} bytes of shared memory "
                + $"({config}) fit {fits} per SM here ({maxSharedPerBlockOptin} bytes per block at most); use fewer or smaller stages");
        return wanted;
    }

    internal static string EntryName(DType operands, DType output) =>
        $"grouped_gemm_gemv_bulk_{GroupedGemm.Suffix(operands)}_{GroupedGemm.Suffix(output)}";

    /// <summary>Launches the kernel for a validated plan (<see cref="GroupedGemm"/> checked shapes, dtypes, alignment).</summary>
    internal static void Run(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        if (!Supports(accelerator, plan.X.DType, out string reason))
            throw new ArgumentException(CannotRunMessage(reason), "options");
        if (!FitsK(plan.K, plan.Fused))
            throw new ArgumentException($"variant '{VariantName}' takes K <= {MaxK(plan.Fused)}{(plan.Fused ? " fused (a gate and an up row per stage)" : "")}; K = {plan.K}", "inFeatures");
        if (plan.GemvTileSlotsOverride is not null)
            throw new ArgumentException($"a tile slot count is for the 8-row GEMV ('{GroupedGemmGemv.Variant8Name}'), not '{VariantName}'", "options");
        int blocks = BlocksFor(plan.Rows, plan.Experts, plan.OutCols, plan.K, plan.Fused, accelerator.Info.MultiprocessorCount,
            accelerator.Info.MaxSharedMemoryPerBlockOptin);
        var config = Config;
        var kernel = accelerator.LoadKernel(Source, EntryName(plan.X.DType, plan.Y.DType),
            config.CompileOptions(BlocksPerSmFor(config, accelerator.Info.MaxSharedMemoryPerBlockOptin)));
        kernel.Launch(stream, new Dim3((uint)blocks, 1, 1), new Dim3(Threads, 1, 1), SharedBytes,
            plan.X, plan.W, plan.ExpertOffsets, plan.RowScale, plan.Y, plan.Rows, plan.N, plan.K, plan.Experts, plan.Fused ? 1 : 0, ConsumerWarps);
        // A diagnostic grid of several blocks per SM is one wave only if they are resident together (registers too).
        if (config.BlocksPerSm is > 1 and var wanted && kernel.MaxActiveBlocksPerSm(Threads, config.SharedBytes) < wanted)
            throw new InvalidOperationException($"MOE_GROUPED_GEMM_GEMV_BULK_BLOCKS_PER_SM={wanted}: {kernel.Name} ({config}) fits "
                + $"{kernel.MaxActiveBlocksPerSm(Threads, config.SharedBytes)} blocks per SM ({kernel.Registers} registers per thread)");
    }
}
