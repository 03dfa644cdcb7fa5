using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The skinny kernel (<see cref="GroupedGemmSkinny"/>: one matrix, 2..128 rows, split-K with a fixed-order reduction).
/// CPU: which calls it takes and how it splits them on an H100/H200 (132 SMs, 227 KB of shared memory per block), and
/// that the host's tile table matches the kernel source. CUDA, with the reduction MOE_SKINNY_REDUCE picks (folded into
/// the GEMM kernel by default; <see cref="GroupedGemmSkinnyFoldTests"/> runs both ways on purpose): calls against the F64
/// reference of the rounded operands (tolerances as in <see cref="GroupedGemmTests"/>: bf16 operands 1e-2, f16 2e-3, bf16
/// output 1e-2), outputs and the workspace poisoned, rows outside [offsets[0], offsets[1]) untouched, two runs
/// bit-identical, a workspace too small for the heuristic's splits (fewer splits) or for any (the old path), and a CUDA
/// graph that follows the offsets.
/// </summary>
public sealed class GroupedGemmSkinnyTests
{
    private const int Sms = 132, SharedOptin = 227 * 1024;

    /// <summary>Arrival counters of the CUDA tests' workspaces: room for the folded reduction's counter per column block.</summary>
    internal const int Counters = 1 << 10;

    [Theory]
    [InlineData(null, "On")]
    [InlineData("", "On")]
    [InlineData("on", "On")]
    [InlineData("ON", "On")]
    [InlineData("1", "On")]
    [InlineData("off", "Off")]
    [InlineData("0", "Off")]
    [InlineData("wide", "Wide")]
    [InlineData("narrow", "Narrow")]
    public void EnvironmentValuesParse(string? value, string expected) => Assert.Equal(expected, GroupedGemmSkinny.Parse(value).ToString());

    [Fact]
    public void BadEnvironmentValueIsRejected() =>
        Assert.Contains(GroupedGemmSkinny.EnvironmentVariable, Assert.Throws<ArgumentException>(() => GroupedGemmSkinny.Parse("maybe")).Message);

    [Theory]
    [InlineData(DType.BF16, 2, 1, true, true)]
    [InlineData(DType.F16, 128, 1, true, true)]
    [InlineData(DType.BF16, 1, 1, true, false)]    // one row: the GEMV's
    [InlineData(DType.BF16, 129, 1, true, false)]  // more than the largest row tile
    [InlineData(DType.BF16, 16, 2, true, false)]   // two experts: a grouped call
    [InlineData(DType.F32, 16, 1, true, false)]    // the F32 reference path
    [InlineData(DType.BF16, 16, 1, false, false)]  // no workspace to split into
    public void TakesSingleMatrixCallsOfFewRowsWithAWorkspace(DType operands, int rows, int experts, bool workspace, bool takes) =>
        Assert.Equal(takes, GroupedGemmSkinny.Takes(operands, rows, experts, workspace, forced: true));

    [Fact]
    public void SwitchedOffTakesNothing() => Assert.False(GroupedGemmSkinny.Takes(DType.BF16, 16, 1, true, forced: false));

    [Theory]
    [InlineData(2, 16)]
    [InlineData(16, 16)]
    [InlineData(17, 32)]
    [InlineData(33, 64)]
    [InlineData(64, 64)]
    [InlineData(65, 128)]
    [InlineData(128, 128)]
    public void RowTileHoldsTheRows(int rows, int tileRows)
    {
        Assert.Equal((tileRows, 1), (GroupedGemmSkinny.TileFor(rows).Rows, GroupedGemmSkinny.TileFor(rows).KSub));
        Assert.Equal((tileRows, 2), (GroupedGemmSkinny.TileFor(rows, wide: true, SharedOptin).Rows, GroupedGemmSkinny.TileFor(rows, wide: true, SharedOptin).KSub));
    }

    /// <summary>The wide 128-row tile (192 KB) does not fit sm_80's 163 KB per block: the narrow one runs there.</summary>
    [Fact]
    public void WideTileFallsBackWhereItsSharedMemoryDoesNotFit()
    {
        const int sm80Optin = 163 * 1024;
        Assert.Equal(1, GroupedGemmSkinny.TileFor(128, wide: true, sm80Optin).KSub);
        Assert.Equal(2, GroupedGemmSkinny.TileFor(64, wide: true, sm80Optin).KSub);
    }

    /// <summary>
    /// The wide tiles count K in stages of 128: DeepSeek-V3's router at T = 16 has 56 k-tiles; the 16-row wide tile (108 KB)
    /// fits 2 blocks per SM, 264 slots over 2 column tiles want 132 splits, at most 64, at least 2 k-tiles each: 28.
    /// </summary>
    [Fact]
    public void WideTilesCountKInStagesOf128()
    {
        var tile = GroupedGemmSkinny.TileFor(16, wide: true, SharedOptin);
        Assert.Equal(2, GroupedGemmSkinny.BlocksPerSm(tile, SharedOptin));
        var launch = GroupedGemmSkinny.Plan(16, 256, 7168, Sms * 2L, long.MaxValue, tileChoice: tile)!.Value;
        Assert.Equal((56, 28, 2), (launch.KTiles, launch.Splits, launch.KTilesPerSplit));
    }

    /// <summary>
    /// Hand-worked on 132 SMs: the 128-row tile (3 stages, 96 KB) fits 2 blocks per SM (264 slots), the 16-row one (4 stages,
    /// 72 KB) 3 (396). DeepSeek-V3 router T=128 (2 column tiles, 112 k-tiles): 64 splits wanted, 2 k-tiles each -> 56.
    /// Shared gate_up T=128 (32 tiles): 264 / 32 = 8 splits of 14. Down (56 tiles, 32 k-tiles): 4 of 8. Gate_up T=16 (396 slots):
    /// 12 of 10. Mixtral router (1 tile, 64 k-tiles): 32 of 2. K = 8 (1 k-tile): 1 split.
    /// </summary>
    [Theory]
    [InlineData(128, 256, 7168, 128, 264, 2, 56, 2)]
    [InlineData(128, 4096, 7168, 128, 264, 32, 8, 14)]
    [InlineData(128, 7168, 2048, 128, 264, 56, 4, 8)]
    [InlineData(16, 4096, 7168, 16, 396, 32, 12, 10)]
    [InlineData(100, 8, 4096, 128, 264, 1, 32, 2)]
    [InlineData(5, 200, 8, 16, 396, 2, 1, 1)]
    public void PlanFillsTheResidentBlocksOnce(int rows, int n, int k, int tileRows, long slots, int nTiles, int splits, int perSplit)
    {
        var tile = GroupedGemmSkinny.TileFor(rows);
        Assert.Equal(tileRows, tile.Rows);
        Assert.Equal(slots, Sms * (long)GroupedGemmSkinny.BlocksPerSm(tile, SharedOptin));
        var launch = GroupedGemmSkinny.Plan(rows, n, k, slots, long.MaxValue);
        Assert.NotNull(launch);
        Assert.Equal((nTiles, splits, perSplit), (launch.Value.NTiles, launch.Value.Splits, launch.Value.KTilesPerSplit));
        Assert.True(launch.Value.Splits * launch.Value.KTilesPerSplit >= launch.Value.KTiles, "the splits cover K");
        Assert.True((launch.Value.Splits - 1) * launch.Value.KTilesPerSplit < launch.Value.KTiles, "no split is empty");
    }

    [Fact]
    public void SmallWorkspaceMeansFewerSplitsThenNone()
    {
        const int rows = 128, n = 256, k = 7168;
        var roomy = GroupedGemmSkinny.Plan(rows, n, k, 264, long.MaxValue)!.Value;
        var tight = GroupedGemmSkinny.Plan(rows, n, k, 264, 3L * rows * n)!.Value;
        Assert.True(roomy.Splits > 3);
        Assert.Equal(3, tight.Splits);
        Assert.Equal(1, GroupedGemmSkinny.Plan(rows, n, k, 264, (long)rows * n)!.Value.Splits);
        Assert.Null(GroupedGemmSkinny.Plan(rows, n, k, 264, (long)rows * n - 1));
    }

    [Theory]
    [InlineData(1, 56)]   // 112 splits of one k-tile would be more than the 64 allowed: the share grows to 2
    [InlineData(3, 38)]
    [InlineData(500, 1)]  // clamped to all of K
    public void ForcedShareSetsTheSplits(int share, int splits) =>
        Assert.Equal(splits, GroupedGemmSkinny.Plan(16, 256, 7168, 396, long.MaxValue, share)!.Value.Splits); // K = 7168: 112 k-tiles

    /// <summary>The host's tiles (rows, stages), column tile, K tile and threads agree with grouped_gemm_skinny.cu.</summary>
    [Fact]
    public void HostTilesMatchTheKernelSource()
    {
        using var stream = typeof(GroupedGemm).Assembly.GetManifestResourceStream("grouped_gemm_skinny.cu")!;
        string source = new StreamReader(stream).ReadToEnd();
        int Define(string name) => int.Parse(System.Text.RegularExpressions.Regex.Match(source, $@"#define {name} (\d+)").Groups[1].Value);
        Assert.Equal((GroupedGemmSkinny.TileCols, GroupedGemmSkinny.TileK, GroupedGemmSkinny.Threads), (Define("SK_BN"), Define("SK_BK"), Define("SK_WARPS") * 32));
        var entries = System.Text.RegularExpressions.Regex.Matches(source, @"SK_PARTIAL\((\d+), (\d+), (\d+), (\d+), (\w+), SUFFIX, TIN\)")
            .Select(m => (Tile: new GroupedGemmSkinny.Tile(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[3].Value), int.Parse(m.Groups[4].Value)), Name: m.Groups[5].Value))
            .ToArray();
        Assert.Equal(GroupedGemmSkinny.Tiles.Concat(GroupedGemmSkinny.WideTiles), entries.Select(e => e.Tile));
        foreach (var (tile, name) in entries)
            Assert.Equal(GroupedGemmSkinny.PartialEntryName(tile, DType.BF16), $"{name}_bf16");
        Assert.Equal(GroupedGemmSkinny.MaxRows, GroupedGemmSkinny.Tiles[^1].Rows);
    }

    // ---- CUDA ----

    /// <summary>A call: rows before, in and after [offsets[0], offsets[1]); N, K; fused; operand and output dtypes; row scale.</summary>
    internal sealed record Case(string Name, int Leading, int Rows, int Trailing, int N, int K, bool Fused, DType Operands, DType Output, bool Scaled)
    {
        public int AllRows => Leading + Rows + Trailing;
        public int OutCols => Fused ? N / 2 : N;
    }

    internal static readonly Case[] Cases =
    [
        new("2 rows, N=1 (shared gate), K=2048 -> f32", 0, 2, 0, 1, 2048, false, DType.BF16, DType.F32, false),
        new("5 rows in [3, 8) of 11, N=8 (router), K=4096 -> f32", 3, 5, 3, 8, 4096, false, DType.BF16, DType.F32, false),
        new("16 rows, N=96 fused, K=72 -> bf16, scaled", 0, 16, 0, 96, 72, true, DType.BF16, DType.BF16, true),
        new("17 rows after 4, N=200, K=8, f16 -> f16", 4, 17, 2, 200, 8, false, DType.F16, DType.F16, false),
        new("64 rows, N=256, K=7168 -> f32 (router)", 0, 64, 0, 256, 7168, false, DType.BF16, DType.F32, false),
        new("127 rows, N=2*101 fused (odd I), K=2048 -> bf16, scaled", 0, 127, 0, 2 * 101, 2048, true, DType.BF16, DType.BF16, true),
        new("16 rows, N=75 (odd), K=136 -> f32", 0, 16, 0, 75, 136, false, DType.BF16, DType.F32, false),
        new("128 rows, N=256, K=7168 -> f32 (router)", 0, 128, 0, 256, 7168, false, DType.BF16, DType.F32, false),
        new("128 rows, N=2*516 fused, K=1032, f16 -> f32, scaled", 0, 128, 0, 2 * 516, 1032, true, DType.F16, DType.F32, true),
        new("100 rows in [10, 110) of 128, N=98, K=72, f16 -> bf16", 10, 100, 18, 98, 72, false, DType.F16, DType.BF16, false),
        new("2 rows, N=2*2048 fused, K=7168 -> bf16 (shared gate_up)", 0, 2, 0, 2 * 2048, 7168, true, DType.BF16, DType.BF16, false),
        new("32 rows, N=7168, K=2048 -> f32 (shared down), scaled", 0, 32, 0, 7168, 2048, false, DType.BF16, DType.F32, true),
        new("16 rows, N=8, K=8 -> bf16", 0, 16, 0, 8, 8, false, DType.BF16, DType.BF16, false),
    ];

    public static TheoryData<string> CaseNames() => new(Cases.Select(c => c.Name));

    internal sealed class Inputs : IDisposable
    {
        public required Case Shape { get; init; }
        public required int Seed { get; init; }
        public required double[] Expected { get; init; }
        public required MemoryBuffer X { get; init; }
        public required MemoryBuffer W { get; init; }
        public required MemoryBuffer<int> Offsets { get; init; }
        public MemoryBuffer<float>? Scale { get; init; }
        public int[] OffsetValues => [Shape.Leading, Shape.Leading + Shape.Rows];

        public void Dispose()
        {
            X.Dispose();
            W.Dispose();
            Offsets.Dispose();
            Scale?.Dispose();
        }
    }

    internal static Inputs Prepare(Accelerator gpu, Case shape)
    {
        var random = TestData.NewRandom(out int seed);
        int[] offsets = [shape.Leading, shape.Leading + shape.Rows];
        var xValues = GroupedGemmTests.Rounded(TestData.Uniform(random, shape.AllRows * shape.K), shape.Operands);
        var wValues = GroupedGemmTests.Rounded(TestData.Uniform(random, shape.N * shape.K), shape.Operands);
        var scales = shape.Scaled ? TestData.Uniform(random, shape.AllRows, 0.1f, 1.5f) : [];
        return new Inputs
        {
            Shape = shape,
            Seed = seed,
            Expected = GroupedGemmCpu.Reference(xValues, wValues, offsets, scales, shape.N, shape.K, shape.Fused),
            X = GroupedGemmTests.Upload(gpu, xValues, shape.Operands),
            W = GroupedGemmTests.Upload(gpu, wValues, shape.Operands),
            Offsets = gpu.Upload<int>(offsets),
            Scale = shape.Scaled ? gpu.Upload<float>(scales) : null,
        };
    }

    /// <summary>
    /// One run into a poisoned output; the workspace's partials poisoned too, so a skipped kernel shows. <paramref name="reduce"/>:
    /// the reduction forced (null: MOE_SKINNY_REDUCE's). <see cref="GroupedGemmSkinny.LastRunOnThisThread"/> says what ran.
    /// </summary>
    internal static double[] Run(Accelerator gpu, Inputs inputs, GroupedGemmWorkspace workspace, bool? skinny = true, int? share = null, bool? wide = false,
                                 GroupedGemmSkinny.Reduce? reduce = null)
    {
        GroupedGemmSkinny.LastRunOnThisThread = null;
        var shape = inputs.Shape;
        using var y = gpu.Allocate(shape.Output, (long)shape.AllRows * shape.OutCols);
        TestData.Poison(y);
        if (workspace.Partials is { } partials)
            TestData.Poison(partials);
        GroupedGemm.Run(gpu, inputs.X, inputs.W, inputs.Offsets, y, shape.N, shape.K, new GroupedGemmOptions
        {
            FusedSiluAndMul = shape.Fused, RowScale = inputs.Scale, SplitKWorkspace = workspace, SkinnyOverride = skinny,
            SkinnyKTilesPerSplitOverride = share, SkinnyWideOverride = wide, SkinnyReduceOverride = reduce,
        });
        return GroupedGemmTests.ToDoubles(y);
    }

    internal static void Check(Inputs inputs, double[] actual, string what)
    {
        var shape = inputs.Shape;
        int begin = shape.Leading * shape.OutCols, end = (shape.Leading + shape.Rows) * shape.OutCols;
        Compare.Close(inputs.Expected.AsSpan(begin, end - begin), actual.AsSpan(begin, end - begin), Compare.ToleranceFor(shape.Operands, shape.Output), what);
        for (int i = 0; i < actual.Length; i++)
            if (i < begin || i >= end)
                Assert.True(double.IsNaN(actual[i]), $"{what}: element {i} outside the call's rows was written ({actual[i]})");
    }

    /// <summary>Whether the skinny kernel wrote split 0's partials (the workspace was poisoned before the run).</summary>
    internal static bool PartialsWritten(GroupedGemmWorkspace workspace, Case shape)
    {
        var values = workspace.Partials!.ToArray();
        return Enumerable.Range(0, shape.Rows * shape.N).All(i => float.IsFinite(values[i]));
    }

    /// <summary>Whether any partial of the call's rows was written (a folded single split writes none).</summary>
    internal static bool AnyPartialWritten(GroupedGemmWorkspace workspace, Case shape)
    {
        var values = workspace.Partials!.ToArray();
        return Enumerable.Range(0, shape.Rows * shape.N).Any(i => !float.IsNaN(values[i]));
    }

    /// <summary>
    /// The skinny kernel ran this thread's last call (<see cref="GroupedGemmSkinny.LastRunOnThisThread"/>), and its partials
    /// show it: written by the two-kernel path and by a folded launch of several splits, untouched by a folded single split.
    /// </summary>
    internal static GroupedGemmSkinny.Launch RanSkinny(GroupedGemmWorkspace workspace, Case shape, string what)
    {
        var last = GroupedGemmSkinny.LastRunOnThisThread;
        Assert.True(last is not null, $"{what}: the skinny kernel did not run");
        var (launch, folded) = last.Value;
        if (folded && launch.Splits == 1)
            Assert.False(AnyPartialWritten(workspace, shape), $"{what}: a folded single split wrote partials");
        else
            Assert.True(PartialsWritten(workspace, shape), $"{what}: the skinny kernel did not write its partials");
        return launch;
    }

    /// <summary>On a Hopper GPU the wgmma kernel keeps calls of 64+ rows with at least 24 of its tiles (DeepSeek-V3's shared down at T=128).</summary>
    [Fact]
    public void HopperKeepsCallsWithEnoughTiles()
    {
        var gpu = TestDevices.Get("cuda:0");
        bool hopper = GroupedGemmWgmma.ChosenFor(gpu, DType.BF16, 128, 1);
        Assert.Equal(hopper, GroupedGemmSkinny.HopperKeeps(gpu, DType.BF16, 128, 7168, fused: false)); // 28 tiles
        Assert.False(GroupedGemmSkinny.HopperKeeps(gpu, DType.BF16, 128, 4096, fused: true));          // 16 tiles
        Assert.False(GroupedGemmSkinny.HopperKeeps(gpu, DType.BF16, 128, 256, fused: false));          // 1 tile
        Assert.False(GroupedGemmSkinny.HopperKeeps(gpu, DType.BF16, 16, 7168, fused: false));          // too few rows for wgmma
    }

    [Theory, MemberData(nameof(CaseNames))]
    public void MatchesTheReference(string name)
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = Cases.Single(c => c.Name == name);
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        foreach (bool wide in new[] { false, true })
        {
            var launch = GroupedGemmSkinny.PlanFor(gpu, shape.AllRows, shape.N, shape.K, workspace.PartialCapacity, wide: wide);
            string what = $"{name}: {launch} seed={inputs.Seed}";
            var first = Run(gpu, inputs, workspace, wide: wide);
            RanSkinny(workspace, shape, what);
            Check(inputs, first, what);
            // A second run on the same inputs gives the same bits: the splits are summed in a fixed order.
            var second = Run(gpu, inputs, workspace, wide: wide);
            for (int i = 0; i < first.Length; i++)
                Assert.True(first[i].Equals(second[i]), $"{what}: element {i} differs between two runs ({first[i]} vs {second[i]})");
        }
    }

    /// <summary>Other K shares than the heuristic's: one k-tile per split (most splits), 3 (a partial last split), all of K in one.</summary>
    [Theory]
    [InlineData(1, false)]
    [InlineData(3, false)]
    [InlineData(1000, false)]
    [InlineData(1, true)]
    [InlineData(3, true)]
    public void AnyKShareMatchesTheReference(int share, bool wide)
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = Cases.Single(c => c.Name.StartsWith("127 rows", StringComparison.Ordinal));
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        Check(inputs, Run(gpu, inputs, workspace, share: share, wide: wide), $"share={share} wide={wide} seed={inputs.Seed}");
    }

    /// <summary>A workspace with room for 3 splits only: fewer splits, same answer; too small for one: the old path, same answer.</summary>
    [Fact]
    public void SmallWorkspaceSplitsLessThenFallsBack()
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = Cases.Single(c => c.Name.StartsWith("64 rows", StringComparison.Ordinal));
        using var inputs = Prepare(gpu, shape);
        long oneSplit = (long)shape.AllRows * shape.N;
        using (var three = GroupedGemmWorkspace.WithCapacity(gpu, 3 * oneSplit, Counters))
        {
            Assert.Equal(3, GroupedGemmSkinny.PlanFor(gpu, shape.AllRows, shape.N, shape.K, three.PartialCapacity, wide: false)!.Value.Splits);
            Check(inputs, Run(gpu, inputs, three), $"3 splits seed={inputs.Seed}");
            Assert.Equal(3, RanSkinny(three, shape, "3 splits").Splits);
        }
        using var tooSmall = GroupedGemmWorkspace.WithCapacity(gpu, oneSplit - 1, 16);
        Assert.Null(GroupedGemmSkinny.PlanFor(gpu, shape.AllRows, shape.N, shape.K, tooSmall.PartialCapacity, wide: false));
        Check(inputs, Run(gpu, inputs, tooSmall), $"no room: the old path seed={inputs.Seed}");
    }

    /// <summary>Switched off, the same call runs on the other kernels and agrees with the reference (and the partials stay poisoned).</summary>
    [Fact]
    public void SwitchedOffRunsTheOldPath()
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = Cases.Single(c => c.Name.StartsWith("128 rows, N=256", StringComparison.Ordinal));
        using var inputs = Prepare(gpu, shape);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        Check(inputs, Run(gpu, inputs, workspace, skinny: false), $"skinny off seed={inputs.Seed}");
        Assert.False(PartialsWritten(workspace, shape), "skinny off: the partials were written");
        Assert.Null(GroupedGemmSkinny.LastRunOnThisThread);
    }

    /// <summary>Captured once in a CUDA graph, the call follows the offsets in device memory: other sub-ranges, all rows, none.</summary>
    [Fact]
    public void CapturedInACudaGraphFollowsTheOffsetsOnTheDevice()
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        const int rows = 64, n = 200, k = 1032;
        var xValues = GroupedGemmTests.Rounded(TestData.Uniform(random, rows * k), DType.BF16);
        var wValues = GroupedGemmTests.Rounded(TestData.Uniform(random, n * k), DType.BF16);
        using var x = GroupedGemmTests.Upload(gpu, xValues, DType.BF16);
        using var w = GroupedGemmTests.Upload(gpu, wValues, DType.BF16);
        using var offsets = gpu.Upload<int>(new[] { 0, rows });
        using var y = gpu.Allocate<float>(rows * n);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 16L << 20, Counters);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)gpu.CreateStream();
        var options = new GroupedGemmOptions { ValidateOffsets = false, SplitKWorkspace = workspace, SkinnyOverride = true };
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream); // loads the kernels outside the capture
        var (launch, folded) = GroupedGemmSkinny.LastRunOnThisThread!.Value;
        Assert.True(launch.Splits > 1, $"{launch}: the graph should hold a split call");
        stream.BeginCapture();
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        using var graph = stream.EndCapture();
        foreach (var layout in new[] { new[] { 5, 30 }, new[] { 0, rows }, new[] { 7, 7 }, new[] { 63, 64 } })
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
            // The folded reduction leaves its counters at zero for the next replay (no memset node in the graph).
            Assert.True(!folded || workspace.Counters!.ToArray().All(c => c == 0), $"{what}: counters not back to zero after the replay");
        }
    }
}
