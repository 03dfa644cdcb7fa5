using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The decode grouped GEMM (<c>grouped_gemm_gemv.cu</c>): matrix-vector products on the CUDA cores, a warp group
/// streaming whole W rows against up to <see cref="TileRows"/> rows of X, for calls where experts have a row or a few
/// (T = 1). The call's time is reading the active experts' weights once; this kernel reads them in 512-byte runs per
/// row, where the 16-row tensor-core tile read 128-byte pieces of 64 rows at a time and wasted 15 of its 16 rows.
/// Same function as <see cref="GroupedGemm.Run"/> (row scale and fused SiLU-and-mul included) for bf16/f16 operands.
/// </summary>
public static class GroupedGemmGemv
{
    /// <summary>The name that forces this kernel (<see cref="GroupedGemmOptions"/>' variant override, the sweep's variable).</summary>
    public const string VariantName = "gemv";

    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GroupedGemmGemv).Assembly, "grouped_gemm_gemv.cu");

    // Must match grouped_gemm_gemv.cu: GV_ROWS, GV_WARPS, GV_WROWS.
    internal const int TileRows = 4;
    internal const int Warps = 8;
    internal const int WRowsPerGroup = 4;

    /// <summary>
    /// Whether the heuristic runs this kernel: bf16/f16 operands and no more rows than experts (at most about one row per
    /// active expert: every token's k experts are distinct, so T = 1 always qualifies), below the wgmma kernel's rows.
    /// </summary>
    internal static bool ChosenFor(DType operands, int rows, int experts) =>
        operands is DType.BF16 or DType.F16 && rows <= experts && rows < GroupedGemmWgmma.MinRows;

    /// <summary>
    /// Warps of a block that split one W row's K (1, 2, 4 or 8): enough that a warp's share stays near
    /// <paramref name="warpK"/> elements (default 2048: 4 KB of a bf16 row), so long rows (Mixtral's down, K = 14336)
    /// still spread over many blocks.
    /// </summary>
    internal static int KSplitFor(int k, int warpK = DefaultWarpK)
    {
        int split = 1;
        while (split < Warps && k / (split * 2) >= warpK)
            split *= 2;
        return split;
    }

    internal const int DefaultWarpK = 2048;

    /// <summary>MOE_GROUPED_GEMM_GEMV_WARP_K: the K share per warp that <see cref="KSplitFor"/> aims at, for A/B runs (256 to 65536).</summary>
    internal static int WarpKFromEnvironment()
    {
        string? value = Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_GEMV_WARP_K");
        if (string.IsNullOrWhiteSpace(value))
            return DefaultWarpK;
        return int.TryParse(value, out int warpK) && warpK is >= 256 and <= 65536 ? warpK
            : throw new ArgumentException($"MOE_GROUPED_GEMM_GEMV_WARP_K='{value}': expected 256 to 65536 elements of K per warp");
    }

    /// <summary>Blocks of a launch: m-tiles (upper bound) times column blocks.</summary>
    internal static long BlocksFor(int rows, int experts, int outCols, bool fused, int kSplit)
    {
        long mTiles = GroupedGemmLaunch.MTilesBound(rows, experts, TileRows);
        int colsPerBlock = (fused ? WRowsPerGroup / 2 : WRowsPerGroup) * (Warps / kSplit);
        return mTiles * ((outCols + colsPerBlock - 1) / colsPerBlock);
    }

    internal static string EntryName(DType operands, DType output) => $"grouped_gemm_gemv_{GroupedGemm.Suffix(operands)}_{GroupedGemm.Suffix(output)}";


    /// <summary>Launches the kernel for a validated plan (<see cref="GroupedGemm"/> checked shapes, dtypes, alignment).</summary>
    internal static void Run(CudaAccelerator accelerator, GroupedGemm.Plan plan, CudaStream stream)
    {
        if (plan.X.DType is not (DType.BF16 or DType.F16))
            throw new ArgumentException($"variant '{VariantName}' takes bf16 or f16 operands, not {DTypes.Name(plan.X.DType)}", "options");
        int kSplit = KSplitFor(plan.K, WarpKFromEnvironment());
        long blocks = BlocksFor(plan.Rows, plan.Experts, plan.OutCols, plan.Fused, kSplit);
        if (blocks > int.MaxValue)
            throw new ArgumentException($"{plan.Rows} rows x {plan.OutCols} columns need {blocks} blocks; at most {int.MaxValue} per call (split the call)", "x");
        var kernel = accelerator.LoadKernel(Source, EntryName(plan.X.DType, plan.Y.DType));
        kernel.Launch(stream, new Dim3((uint)blocks, 1, 1), new Dim3(Warps * 32, 1, 1), 0,
            plan.X, plan.W, plan.ExpertOffsets, plan.RowScale, plan.Y, plan.Rows, plan.N, plan.K, plan.Experts, plan.Fused ? 1 : 0, kSplit);
    }
}
