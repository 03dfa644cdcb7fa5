using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests;
using Reduce = MoeRuntime.Kernels.GroupedGemm.GroupedGemmSkinny.Reduce;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The skinny kernel's reduction folded into its GEMM kernel (the last block of each column block to arrive sums the
/// splits; one split writes y directly) against the two-kernel path (MOE_SKINNY_REDUCE=kernel). CPU: the switch, when a
/// launch folds, the launch count the host-cost models use. CUDA: both paths on the same inputs give the same bits (the
/// same split order and epilogue), for 1 split and many, rows 2..128, N tails (8: Mixtral's router; 200; odd fused I),
/// fused SiLU and row scales, f32 / bf16 / f16 output; back-to-back folded runs agree and leave the counters at zero;
/// a workspace without counters falls back to the two kernels.
/// </summary>
public sealed class GroupedGemmSkinnyFoldTests
{
    [Theory]
    [InlineData(null, "Kernel")]
    [InlineData("", "Kernel")]
    [InlineData(" fold ", "Fold")]
    [InlineData("FOLD", "Fold")]
    [InlineData("kernel", "Kernel")]
    [InlineData("Kernel", "Kernel")]
    public void ReduceSwitchParses(string? value, string expected) => Assert.Equal(expected, GroupedGemmSkinny.ParseReduce(value).ToString());

    [Theory]
    [InlineData("two")]
    [InlineData("on")]
    [InlineData("1")]
    public void BadReduceSwitchIsRejectedByName(string value)
    {
        var error = Assert.Throws<ArgumentException>(() => GroupedGemmSkinny.ParseReduce(value));
        Assert.Contains(GroupedGemmSkinny.ReduceEnvironmentVariable, error.Message);
        Assert.Contains($"'{value}'", error.Message);
    }

    /// <summary>Several splits fold only with a counter per column block; one split needs none; kernel never folds.</summary>
    [Fact]
    public void FoldingNeedsACounterPerColumnBlockWhenSplit()
    {
        var split = new GroupedGemmSkinny.Launch(GroupedGemmSkinny.Tiles[0], NTiles: 2, KTiles: 56, Splits: 28, KTilesPerSplit: 2);
        var single = split with { Splits = 1, KTilesPerSplit = 56 };
        Assert.Equal((2, 0), (split.Counters, single.Counters));
        Assert.True(GroupedGemmSkinny.Folds(Reduce.Fold, split, 2));
        Assert.False(GroupedGemmSkinny.Folds(Reduce.Fold, split, 1));
        Assert.True(GroupedGemmSkinny.Folds(Reduce.Fold, single, 0));
        Assert.False(GroupedGemmSkinny.Folds(Reduce.Kernel, split, 1 << 10));
        Assert.False(GroupedGemmSkinny.Folds(Reduce.Kernel, single, 1 << 10));
    }

    /// <summary>
    /// A call the skinny kernel takes is one launch folded, two with the reduce kernel; calls it does not take, one. The
    /// GEMV's small-call rule (<see cref="GroupedGemmDenseGemv"/>) off here: with it on the routers at 16 rows are its (one launch).
    /// </summary>
    [Theory]
    [InlineData(16, 256, 7168, false, 1, 2)]     // DeepSeek-V3 router, T = 16
    [InlineData(16, 8, 4096, false, 1, 2)]       // Mixtral router
    [InlineData(128, 4096, 7168, true, 1, 2)]    // DeepSeek-V3 shared gate_up: 16 wgmma tiles, the skinny kernel's
    [InlineData(128, 7168, 2048, false, 1, 1)]   // DeepSeek-V3 shared down at T = 128: 28 wgmma tiles, left to wgmma on Hopper
    [InlineData(1, 256, 7168, false, 1, 1)]      // one row: the GEMV
    public void LaunchCountFollowsTheReduction(int rows, int n, int k, bool fused, int folded, int twoKernels)
    {
        Assert.SkipUnless(GroupedGemmSkinny.Enabled, $"{GroupedGemmSkinny.EnvironmentVariable}=off");
        Assert.Equal(folded, GroupedGemmSkinny.LaunchesOnHopper(rows, n, k, fused, Reduce.Fold, denseGemv: false));
        Assert.Equal(twoKernels, GroupedGemmSkinny.LaunchesOnHopper(rows, n, k, fused, Reduce.Kernel, denseGemv: false));
    }

    /// <summary>The workspace a layer sizes holds the folded reduction's counters.</summary>
    [Fact]
    public void LayerWorkspaceHoldsTheCounters()
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = new GroupedGemmShape(16, 256, 7168, 1);
        var launch = GroupedGemmSkinny.PlanFor(gpu, shape.Rows, shape.N, shape.K)!.Value;
        Assert.True(launch.Splits > 1, $"{launch}");
        Assert.True(GroupedGemmWorkspace.Required(gpu, shape).Counters >= launch.NTiles);
    }

    // ---- CUDA ----

    /// <summary>Calls for the bit comparison: rows before, in and after the call; N; K; fused; operands; output; row scale.</summary>
    private static readonly Case[] BitCases =
    [
        new("2 rows, N=8 (Mixtral router), K=4096 -> f32", 0, 2, 0, 8, 4096, false, DType.BF16, DType.F32, false),
        new("16 rows in [5, 21) of 24, N=8, K=4096 -> bf16, scaled", 5, 16, 3, 8, 4096, false, DType.BF16, DType.BF16, true),
        new("16 rows, N=200, K=1032, f16 -> f16", 0, 16, 0, 200, 1032, false, DType.F16, DType.F16, false),
        new("16 rows, N=2*2048 fused, K=7168 -> bf16 (shared gate_up)", 0, 16, 0, 2 * 2048, 7168, true, DType.BF16, DType.BF16, false),
        new("64 rows after 3, N=200 fused (I=100), K=2048 -> bf16, scaled", 3, 64, 1, 200, 2048, true, DType.BF16, DType.BF16, true),
        new("64 rows, N=200, K=2048 -> f32, scaled", 0, 64, 0, 200, 2048, false, DType.BF16, DType.F32, true),
        new("128 rows, N=256, K=7168 -> f32 (router)", 0, 128, 0, 256, 7168, false, DType.BF16, DType.F32, false),
        new("128 rows, N=2*516 fused, K=1032, f16 -> f32, scaled", 0, 128, 0, 2 * 516, 1032, true, DType.F16, DType.F32, true),
        new("2 rows, N=2*101 fused (odd I), K=136 -> f16, scaled", 0, 2, 0, 2 * 101, 136, true, DType.F16, DType.F16, true),
        new("100 rows, N=75 (odd), K=520, f16 -> bf16", 0, 100, 0, 75, 520, false, DType.F16, DType.BF16, false),
    ];

    /// <summary>Each case with the heuristic's splits (null), one k-tile a split (many) and all of K in one split.</summary>
    public static TheoryData<string, int> BitCaseShares()
    {
        var data = new TheoryData<string, int>();
        foreach (var shape in BitCases)
            foreach (int share in new[] { 0, 1, 1000 })
                data.Add(shape.Name, share);
        return data;
    }

    private static long[] Bits(double[] values) => values.Select(BitConverter.DoubleToInt64Bits).ToArray();

    private static void SameBits(double[] expected, double[] actual, string what)
    {
        var (e, a) = (Bits(expected), Bits(actual));
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
            Assert.True(e[i] == a[i], $"{what}: element {i} differs ({expected[i]:R} vs {actual[i]:R})");
    }

    /// <summary>
    /// Kernel, fold, fold again: the fold agrees with the reference and with the two-kernel path bit for bit, and the second
    /// folded run (counters left by the first) gives the same bits and leaves every counter at zero.
    /// </summary>
    [Theory, MemberData(nameof(BitCaseShares))]
    public void FoldGivesTheTwoKernelBits(string name, int share)
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = BitCases.Single(c => c.Name == name);
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        int? forced = share == 0 ? null : share;
        string what = $"{name}, share {share}, seed={inputs.Seed}";

        var twoKernels = Run(gpu, inputs, workspace, share: forced, wide: null, reduce: Reduce.Kernel);
        Assert.False(GroupedGemmSkinny.LastRunOnThisThread!.Value.Folded, $"{what}: the two-kernel path folded");
        RanSkinny(workspace, shape, what);
        Check(inputs, twoKernels, $"{what}, kernel");

        var folded = Run(gpu, inputs, workspace, share: forced, wide: null, reduce: Reduce.Fold);
        var launch = RanSkinny(workspace, shape, what);
        Assert.True(GroupedGemmSkinny.LastRunOnThisThread!.Value.Folded, $"{what}: the fold did not run");
        if (share == 1000)
            Assert.Equal(1, launch.Splits);
        if (share == 1)
            Assert.True(launch.Splits > 1 || launch.KTiles == 1, $"{what}: {launch}");
        what += $" ({launch})";
        Check(inputs, folded, $"{what}, fold");
        SameBits(twoKernels, folded, $"{what}: fold vs kernel");

        var again = Run(gpu, inputs, workspace, share: forced, wide: null, reduce: Reduce.Fold);
        SameBits(folded, again, $"{what}: second folded run vs first");
        Assert.True(workspace.Counters!.ToArray().All(c => c == 0), $"{what}: counters not back to zero");
    }

    /// <summary>Both K-stage widths (the wide tiles, 128 of K a stage; the narrow ones, 64) fold to the two-kernel bits.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BothTileWidthsFoldToTheSameBits(bool wide)
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = BitCases.Single(c => c.Name.StartsWith("64 rows after 3", StringComparison.Ordinal));
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        string what = $"wide={wide} seed={inputs.Seed}";
        var twoKernels = Run(gpu, inputs, workspace, wide: wide, reduce: Reduce.Kernel);
        var folded = Run(gpu, inputs, workspace, wide: wide, reduce: Reduce.Fold);
        Assert.Equal(wide ? 2 : 1, RanSkinny(workspace, shape, what).Tile.KSub);
        Check(inputs, folded, what);
        SameBits(twoKernels, folded, what);
    }

    /// <summary>Several splits and no counters in the workspace: the call takes the two kernels, with the same answer.</summary>
    [Fact]
    public void WorkspaceWithoutCountersFallsBackToTheReduceKernel()
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = BitCases.Single(c => c.Name.StartsWith("128 rows, N=256", StringComparison.Ordinal));
        using var inputs = Prepare(gpu, shape);
        using var counted = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        using var uncounted = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, 0);
        var folded = Run(gpu, inputs, counted, reduce: Reduce.Fold);
        Assert.True(GroupedGemmSkinny.LastRunOnThisThread!.Value.Folded);
        var fallback = Run(gpu, inputs, uncounted, reduce: Reduce.Fold);
        var (launch, didFold) = GroupedGemmSkinny.LastRunOnThisThread!.Value;
        Assert.True(launch.Splits > 1 && !didFold, $"{launch}: folded={didFold}");
        Check(inputs, fallback, $"fallback seed={inputs.Seed}");
        SameBits(folded, fallback, $"fallback vs fold seed={inputs.Seed}");
    }

    /// <summary>The folded call is one kernel launch; the two-kernel path two.</summary>
    [Fact]
    public void FoldLaunchesOneKernel()
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = BitCases.Single(c => c.Name.StartsWith("16 rows, N=2*2048", StringComparison.Ordinal));
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        foreach (var (reduce, launches) in new[] { (Reduce.Fold, 1L), (Reduce.Kernel, 2L) })
        {
            Run(gpu, inputs, workspace, wide: null, reduce: reduce); // loads the kernels
            long before = MoeRuntime.Accelerators.Cuda.CudaKernel.LaunchesOnThisThread;
            Run(gpu, inputs, workspace, wide: null, reduce: reduce);
            Assert.Equal(launches, MoeRuntime.Accelerators.Cuda.CudaKernel.LaunchesOnThisThread - before);
        }
    }
}
