using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests;
using Reduce = MoeRuntime.Kernels.GroupedGemm.GroupedGemmSkinny.Reduce;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Small single-matrix calls on the decode GEMV (<see cref="GroupedGemmDenseGemv"/>: E = 1, 1..16 rows, W up to 8 MiB).
/// CPU: which calls the rule takes and which it leaves, the grid it plans at the router shapes, the launch count the host
/// models use. CUDA (skips without a GPU), the rule forced on with a split-K workspace given (so the skinny kernel would
/// otherwise take rows 2..16): the router shapes at 1..16 rows and awkward ones (N = 33 tails, K = 8 / 24 below one
/// 512-byte segment, rows before and after the call's), bf16 and f16, F32 / bf16 / f16 output, against the F64 reference
/// of the rounded operands with the tolerances of <see cref="GroupedGemmSkinnyTests"/> (Compare.ToleranceFor), outputs and
/// the workspace poisoned (the skinny kernel must not have run), two runs bit-identical; row scale with fused SiLU-and-mul;
/// the switch off (the skinny kernel again); one launch a call; a CUDA graph replayed over other offsets.
/// </summary>
public sealed class GroupedGemmDenseGemvTests
{
    [Theory]
    [InlineData(null, true)]
    [InlineData("", true)]
    [InlineData("on", true)]
    [InlineData(" ON ", true)]
    [InlineData("1", true)]
    [InlineData("off", false)]
    [InlineData("Off", false)]
    [InlineData("0", false)]
    public void EnvironmentValuesParse(string? value, bool on) => Assert.Equal(on, GroupedGemmDenseGemv.Parse(value));

    [Fact]
    public void BadEnvironmentValueIsRejected() =>
        Assert.Contains(GroupedGemmDenseGemv.EnvironmentVariable, Assert.Throws<ArgumentException>(() => GroupedGemmDenseGemv.Parse("yes")).Message);

    [Theory]
    [InlineData(DType.BF16, 1, 1, 128, 2048, true)]     // Qwen3 router, T = 1
    [InlineData(DType.BF16, 16, 1, 128, 2048, true)]    // Qwen3 router, T = 16
    [InlineData(DType.F16, 2, 1, 8, 4096, true)]        // Mixtral router
    [InlineData(DType.BF16, 16, 1, 256, 7168, true)]    // DeepSeek-V3 router (3.7 MB)
    [InlineData(DType.BF16, 16, 1, 1, 2048, true)]      // Qwen2-MoE shared gate (N = 1)
    [InlineData(DType.BF16, 16, 1, 512, 8192, true)]    // W exactly 8 MiB
    [InlineData(DType.BF16, 16, 1, 512, 8200, false)]   // W just over 8 MiB
    [InlineData(DType.BF16, 16, 1, 4096, 7168, false)]  // DeepSeek-V3 shared gate_up (58.7 MB)
    [InlineData(DType.BF16, 16, 1, 7168, 2048, false)]  // DeepSeek-V3 shared down (29.4 MB)
    [InlineData(DType.BF16, 17, 1, 128, 2048, false)]   // more than 16 rows
    [InlineData(DType.BF16, 0, 1, 128, 2048, false)]    // no rows
    [InlineData(DType.BF16, 16, 2, 128, 2048, false)]   // two experts: a grouped call, the grouped rules
    [InlineData(DType.BF16, 1, 8, 128, 2048, false)]
    [InlineData(DType.F32, 16, 1, 128, 2048, false)]    // the F32 reference path
    public void TakesSmallSingleMatrixCalls(DType operands, int rows, int experts, int n, int k, bool takes) =>
        Assert.Equal(takes, GroupedGemmDenseGemv.Takes(operands, rows, experts, n, k, forced: true));

    /// <summary>The heuristic (the environment's switch on): the 4-row tile's rows and W up to 1 MiB, what won in the layer on the H200.</summary>
    [Theory]
    [InlineData(1, 128, 2048, true)]     // Qwen3 router, T = 1
    [InlineData(4, 128, 2048, true)]
    [InlineData(5, 128, 2048, false)]    // past one 4-row m-tile (MOE_DENSE_GEMV_MAX_ROWS unset)
    [InlineData(16, 128, 2048, false)]
    [InlineData(2, 8, 4096, true)]       // Mixtral router
    [InlineData(1, 256, 7168, false)]    // DeepSeek-V3 router (3.7 MB): its layer was slower
    [InlineData(1, 256, 2048, true)]     // W exactly 1 MiB
    [InlineData(1, 256, 2056, false)]    // W just over
    public void TheHeuristicTakesFewRowsAndSmallWeights(int rows, int n, int k, bool takes)
    {
        Assert.SkipUnless(GroupedGemmDenseGemv.Enabled, $"{GroupedGemmDenseGemv.EnvironmentVariable}=off");
        Assert.Equal(takes, GroupedGemmDenseGemv.Takes(DType.BF16, rows, 1, n, k));
    }

    [Theory]
    [InlineData(null, 4)]
    [InlineData(" ", 4)]
    [InlineData("16", 16)]
    [InlineData("1", 1)]
    public void MaxRowsParse(string? value, int rows) => Assert.Equal(rows, GroupedGemmDenseGemv.ParseMaxRows(value));

    [Theory]
    [InlineData("0")]
    [InlineData("17")]
    [InlineData("four")]
    public void BadMaxRowsAreRejected(string value) =>
        Assert.Contains(GroupedGemmDenseGemv.MaxRowsVariable, Assert.Throws<ArgumentException>(() => GroupedGemmDenseGemv.ParseMaxRows(value)).Message);

    [Fact]
    public void SwitchedOffTakesNothing() => Assert.False(GroupedGemmDenseGemv.Takes(DType.BF16, 16, 1, 128, 2048, forced: false));

    /// <summary>
    /// The grids of the routers (see <see cref="GroupedGemmDenseGemv"/>): kSplit 8 from K = 2048, so 4 columns a block;
    /// 4-row tiles, one slot per m-tile of one expert. Short K: no split.
    /// </summary>
    [Theory]
    [InlineData(1, 128, 2048, 4, 8, 1, 32)]
    [InlineData(2, 128, 2048, 4, 8, 1, 32)]
    [InlineData(8, 128, 2048, 4, 8, 2, 64)]
    [InlineData(16, 128, 2048, 4, 8, 4, 128)]
    [InlineData(1, 8, 4096, 4, 8, 1, 2)]
    [InlineData(2, 8, 4096, 4, 8, 1, 2)]
    [InlineData(8, 8, 4096, 4, 8, 2, 4)]
    [InlineData(16, 8, 4096, 4, 8, 4, 8)]
    [InlineData(1, 256, 7168, 4, 8, 1, 64)]
    [InlineData(2, 256, 7168, 4, 8, 1, 64)]
    [InlineData(8, 256, 7168, 4, 8, 2, 128)]
    [InlineData(16, 256, 7168, 4, 8, 4, 256)]
    [InlineData(5, 33, 8, 4, 1, 2, 4)]      // K = 8: one warp a row, 32 columns a block
    [InlineData(9, 33, 24, 4, 1, 3, 6)]
    [InlineData(4, 33, 512, 4, 2, 1, 3)]    // K = 512: 2 warps a row, 16 columns a block
    public void PlanGivesTheRoutersTheirGrids(int rows, int n, int k, int tileRows, int kSplit, int slots, long blocks) =>
        Assert.Equal(new GroupedGemmDenseGemv.Launch(tileRows, kSplit, slots, blocks), GroupedGemmDenseGemv.PlanFor(rows, n, k, fused: false));

    [Fact]
    public void FusedCallsCountTwoColumnsPerWarpGroup() =>
        Assert.Equal(new GroupedGemmDenseGemv.Launch(4, 8, 4, 68), GroupedGemmDenseGemv.PlanFor(13, 33, 2048, fused: true)); // 33 columns, 2 a block: 17 x 4 slots

    /// <summary>
    /// Launches the host models count (<see cref="GroupedGemmSkinny.LaunchesOnHopper"/>): with the reduce kernel, a router
    /// call the rule takes is 1 launch (2 with the rule off: the skinny kernel's two); calls over 8 MiB keep the skinny count.
    /// </summary>
    [Theory]
    [InlineData(16, 128, 2048, false, true, 1)]
    [InlineData(16, 128, 2048, false, false, 2)]
    [InlineData(2, 8, 4096, false, true, 1)]
    [InlineData(2, 8, 4096, false, false, 2)]
    [InlineData(16, 256, 7168, false, true, 1)]
    [InlineData(16, 4096, 7168, true, true, 2)]    // DeepSeek-V3 shared gate_up: W over 8 MiB
    [InlineData(17, 128, 2048, false, true, 2)]    // 17 rows: the skinny kernel
    [InlineData(1, 128, 2048, false, false, 1)]    // one row: the grouped GEMV rule either way
    public void LaunchCountCountsTheRule(int rows, int n, int k, bool fused, bool denseGemv, int launches)
    {
        Assert.SkipUnless(GroupedGemmSkinny.Enabled, $"{GroupedGemmSkinny.EnvironmentVariable}=off");
        Assert.Equal(launches, GroupedGemmSkinny.LaunchesOnHopper(rows, n, k, fused, Reduce.Kernel, denseGemv));
        Assert.Equal(1, GroupedGemmSkinny.LaunchesOnHopper(rows, n, k, fused, Reduce.Fold, denseGemv));
    }

    /// <summary>The rule yields to a forced variant always, and to the other paths forced on unless it is forced itself.</summary>
    [Fact]
    public void OverridesDecideBeforeTheEnvironment()
    {
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate(DType.BF16, 16 * 64);
        using var w = cpu.Allocate(DType.BF16, 32 * 64);
        using var offsets = cpu.Upload<int>(new[] { 0, 16 });
        using var y = cpu.Allocate<float>(16 * 32);
        var plan = new GroupedGemm.Plan(x, w, offsets, y, null, 16, 32, 64, 1, false, null);
        Assert.Equal(GroupedGemmDenseGemv.Enabled, GroupedGemmDenseGemv.TakesPlan(plan with { Rows = 4 }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan));   // 16 rows: past the heuristic's 4
        Assert.True(GroupedGemmDenseGemv.TakesPlan(plan with { DenseGemvOverride = true, SkinnyOverride = true }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan with { DenseGemvOverride = false }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan with { SkinnyOverride = true }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan with { FewTilesOverride = true }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan with { SplitKOverride = 1 }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan with { VariantOverride = "gemv8", DenseGemvOverride = true }));
        Assert.False(GroupedGemmDenseGemv.TakesPlan(plan with { Rows = 17, DenseGemvOverride = true }));
    }

    // ---- CUDA ----

    /// <summary>The router shapes at every row count 1..16 (bf16 -> F32 logits, as the layer calls them), f16 at a few.</summary>
    public static TheoryData<int, int, int, string, string> RouterCases()
    {
        var data = new TheoryData<int, int, int, string, string>();
        foreach (var (n, k) in new[] { (128, 2048), (8, 4096), (256, 7168) })
            for (int rows = 1; rows <= GroupedGemmDenseGemv.MaxRows; rows++)
                data.Add(rows, n, k, "bf16", "f32");
        foreach (int rows in new[] { 1, 4, 5, 16 })
            data.Add(rows, 128, 2048, "f16", "f32");
        return data;
    }

    [Theory, MemberData(nameof(RouterCases))]
    public void RouterShapesMatchTheReference(int rows, int n, int k, string operands, string output) =>
        RunForced(new Case($"{rows} rows, N={n}, K={k}, {operands} -> {output}", 0, rows, 0, n, k, false, DTypes.Parse(operands), DTypes.Parse(output), false));

    /// <summary>Awkward shapes: an N tail (33), K below one 512-byte segment (8, 24) or a split one (2048), rows around the call's, every dtype pair.</summary>
    public static TheoryData<int, int, int, int, int, string, string> AwkwardCases()
    {
        var data = new TheoryData<int, int, int, int, int, string, string>();
        var dtypes = new[] { ("bf16", "bf16"), ("f16", "f16"), ("f16", "f32"), ("bf16", "f16"), ("f16", "bf16"), ("bf16", "f32") };
        int i = 0;
        foreach (int k in new[] { 8, 24, 2048 })
            foreach (int rows in new[] { 1, 3, 4, 5, 8, 9, 13, 16 })
            {
                var (operands, output) = dtypes[i++ % dtypes.Length];
                // Rows before and after the call's while all of x stays within the rule's 16 rows.
                bool room = rows <= GroupedGemmDenseGemv.MaxRows - 3;
                data.Add(room ? i % 3 : 0, rows, room && i % 2 == 0 ? 1 : 0, 33, k, operands, output);
            }
        return data;
    }

    [Theory, MemberData(nameof(AwkwardCases))]
    public void AwkwardShapesMatchTheReference(int leading, int rows, int trailing, int n, int k, string operands, string output) =>
        RunForced(new Case($"{rows} rows after {leading}, N={n}, K={k}, {operands} -> {output}", leading, rows, trailing, n, k, false,
            DTypes.Parse(operands), DTypes.Parse(output), false));

    /// <summary>Row scale with the fused SiLU-and-mul epilogue (N = 2 x 33: an odd I), over both tiles.</summary>
    [Theory]
    [InlineData(3)]
    [InlineData(13)]
    public void RowScaleAndFusedSiluAndMulMatchTheReference(int rows) =>
        RunForced(new Case($"{rows} rows after 1, N=2*33 fused, K=2048, bf16 -> bf16, scaled", 1, rows, 2, 2 * 33, 2048, true, DType.BF16, DType.BF16, true));

    /// <summary>Switched off for the call, a router at 16 rows runs on the skinny kernel as before, with the same answer.</summary>
    [Fact]
    public void SwitchedOffRunsTheSkinnyKernel()
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = new Case("16 rows, N=128, K=2048 -> f32", 0, 16, 0, 128, 2048, false, DType.BF16, DType.F32, false);
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 1L << 20, Counters);
        GroupedGemmDenseGemv.LastRunOnThisThread = null;
        var actual = RunOnce(gpu, inputs, workspace, denseGemv: false);
        Assert.Null(GroupedGemmDenseGemv.LastRunOnThisThread);
        RanSkinny(workspace, shape, $"dense GEMV off seed={inputs.Seed}");
        Check(inputs, actual, $"dense GEMV off seed={inputs.Seed}");
    }

    /// <summary>
    /// Without the override the environment decides (MOE_DENSE_GEMV, default on) within the heuristic's limits: Qwen3's
    /// router at 4 rows on the GEMV; 8 rows, or DeepSeek-V3's 3.7 MB router, on the skinny kernel either way.
    /// </summary>
    [Theory]
    [InlineData(4, 128, 2048, true)]
    [InlineData(8, 128, 2048, false)]
    [InlineData(2, 256, 7168, false)]
    public void TheEnvironmentPicksThePath(int rows, int n, int k, bool takenWhenOn)
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = new Case($"{rows} rows, N={n}, K={k} -> f32", 0, rows, 0, n, k, false, DType.BF16, DType.F32, false);
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 1L << 20, Counters);
        GroupedGemmDenseGemv.LastRunOnThisThread = null;
        var actual = RunOnce(gpu, inputs, workspace, denseGemv: null);
        string what = $"MOE_DENSE_GEMV {(GroupedGemmDenseGemv.Enabled ? "on" : "off")} seed={inputs.Seed}";
        bool gemv = GroupedGemmDenseGemv.Enabled && takenWhenOn;
        Assert.Equal(gemv, GroupedGemmDenseGemv.LastRunOnThisThread is not null);
        if (!gemv && GroupedGemmSkinny.Enabled)
            RanSkinny(workspace, shape, what);
        Check(inputs, actual, what);
    }

    /// <summary>Captured once in a CUDA graph over 16 rows, the call follows the offsets on the device: sub-ranges, all rows, one, none.</summary>
    [Fact]
    public void CapturedInACudaGraphFollowsTheOffsetsOnTheDevice()
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        const int rows = 16, n = 128, k = 2048;
        var xValues = GroupedGemmTests.Rounded(TestData.Uniform(random, rows * k), DType.BF16);
        var wValues = GroupedGemmTests.Rounded(TestData.Uniform(random, n * k), DType.BF16);
        using var x = GroupedGemmTests.Upload(gpu, xValues, DType.BF16);
        using var w = GroupedGemmTests.Upload(gpu, wValues, DType.BF16);
        using var offsets = gpu.Upload<int>(new[] { 0, rows });
        using var y = gpu.Allocate<float>(rows * n);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 1L << 20, Counters);
        using var stream = (CudaStream)gpu.CreateStream();
        var options = new GroupedGemmOptions { ValidateOffsets = false, SplitKWorkspace = workspace, DenseGemvOverride = true };
        GroupedGemmDenseGemv.LastRunOnThisThread = null;
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream); // loads the kernel outside the capture
        Assert.Equal(GroupedGemmDenseGemv.PlanFor(rows, n, k, fused: false), GroupedGemmDenseGemv.LastRunOnThisThread);
        // One launch a call, as GroupedGemm.SingleMatrixLaunches tells the host models.
        long before = CudaKernel.LaunchesOnThisThread;
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        Assert.Equal(1L, CudaKernel.LaunchesOnThisThread - before);
        stream.BeginCapture();
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        using var graph = stream.EndCapture();
        foreach (var layout in new[] { new[] { 3, 12 }, new[] { 0, rows }, new[] { 7, 7 }, new[] { 15, 16 }, new[] { 0, 9 } })
        {
            offsets.CopyFrom(layout, 0, stream);
            TestData.Poison(y);
            gpu.Synchronize();
            graph.Launch(stream);
            stream.Synchronize();
            var expected = GroupedGemmCpu.Reference(xValues, wValues, layout, [], n, k, fusedSiluAndMul: false);
            var actual = GroupedGemmTests.ToDoubles(y);
            string what = $"graph replay with offsets [{layout[0]}, {layout[1]}] seed={seed}";
            int begin = layout[0] * n, end = layout[1] * n;
            Compare.Close(expected.AsSpan(begin, end - begin), actual.AsSpan(begin, end - begin), Compare.Bf16Tolerance, what);
            for (int i = 0; i < actual.Length; i++)
                if (i < begin || i >= end)
                    Assert.True(double.IsNaN(actual[i]), $"{what}: element {i} outside the rows was written");
        }
    }

    /// <summary>
    /// The rule forced on with a workspace (poisoned: the skinny kernel must not run): the planned launch ran, the call's rows
    /// match the reference, rows around it stay poisoned, a second run gives the same bits.
    /// </summary>
    private static void RunForced(Case shape)
    {
        var gpu = TestDevices.Get("cuda:0");
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 1L << 20, Counters);
        var plan = GroupedGemmDenseGemv.PlanFor(shape.AllRows, shape.OutCols, shape.K, shape.Fused);
        string what = $"{shape.Name}: {plan} seed={inputs.Seed}";
        GroupedGemmDenseGemv.LastRunOnThisThread = null;
        var first = RunOnce(gpu, inputs, workspace, denseGemv: true);
        Assert.Equal(plan, GroupedGemmDenseGemv.LastRunOnThisThread);
        Assert.Null(GroupedGemmSkinny.LastRunOnThisThread);
        Assert.False(AnyPartialWritten(workspace, shape), $"{what}: the skinny kernel wrote partials");
        Check(inputs, first, what);
        var second = RunOnce(gpu, inputs, workspace, denseGemv: true);
        for (int i = 0; i < first.Length; i++)
            Assert.True(first[i].Equals(second[i]), $"{what}: element {i} differs between two runs ({first[i]} vs {second[i]})");
    }

    /// <summary>One run into a poisoned output with a poisoned workspace (what the layer passes), the rule as given.</summary>
    private static double[] RunOnce(Accelerator gpu, Inputs inputs, GroupedGemmWorkspace workspace, bool? denseGemv)
    {
        GroupedGemmSkinny.LastRunOnThisThread = null;
        var shape = inputs.Shape;
        using var y = gpu.Allocate(shape.Output, (long)shape.AllRows * shape.OutCols);
        TestData.Poison(y);
        TestData.Poison(workspace.Partials!);
        GroupedGemm.Run(gpu, inputs.X, inputs.W, inputs.Offsets, y, shape.N, shape.K, new GroupedGemmOptions
        {
            FusedSiluAndMul = shape.Fused, RowScale = inputs.Scale, SplitKWorkspace = workspace, DenseGemvOverride = denseGemv,
        });
        return GroupedGemmTests.ToDoubles(y);
    }
}
