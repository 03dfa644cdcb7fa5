using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Split-K of the tensor-core grouped GEMM. On CUDA: every split count 1..8 (forced) and the planner's own choice
/// against the F64 reference (<see cref="GroupedGemmCpu.Reference"/>, operands rounded to their dtype; tolerances as in
/// <see cref="GroupedGemmTests"/>: BF16 operands 1e-2, F16 2e-3), bit-identical results run to run, one workspace
/// reused across calls (its arrival counters are back at zero after each), and graph replays. Without a GPU those
/// skip with the reason; the host-side planner (<see cref="GroupedGemmLaunch"/>) is tested on the CPU.
/// </summary>
public class GroupedGemmSplitKTests
{
    /// <summary>Variants that do not support split-K, with the reason (none today: every tile of grouped_gemm.cu splits).</summary>
    private static readonly Dictionary<string, string> NotSplit = new();

    // ---- the planner, on the CPU ----

    /// <summary>H100 SXM: 132 SMs, 227 KB of shared memory per block: decode64 (60 KB) fits 3 per SM.</summary>
    private const int H100Sms = 132, H100SharedOptin = 227 * 1024;

    private static long H100Slots(GroupedGemm.Variant variant) => H100Sms * (long)GroupedGemmLaunch.BlocksPerSm(variant, H100SharedOptin);

    private static GroupedGemmLaunch PlanH100(int rows, int n, int k, int experts, bool fused = false, int? forced = null, long capacity = long.MaxValue)
    {
        var variant = GroupedGemm.ChooseVariant(DType.BF16, rows, experts);
        return GroupedGemmLaunch.Plan(variant, rows, n, k, experts, fused, H100Slots(variant), forced, capacity, capacity);
    }

    [Fact]
    public void EveryVariantSplitsOrIsExplicitlyExcluded()
    {
        foreach (var variant in GroupedGemm.Variants)
            Assert.True(GroupedGemmLaunch.SupportsSplitK(variant) ^ NotSplit.ContainsKey(variant.Name),
                $"{variant.Name}: either GroupedGemmLaunch supports split-K for it or this test lists it in NotSplit with the reason");
    }

    [Fact]
    public void BlocksPerSmFollowSharedMemory()
    {
        Assert.Equal(3, GroupedGemmLaunch.BlocksPerSm(GroupedGemm.Decode64, H100SharedOptin)); // 61 KB of 228 KB
        Assert.Equal(2, GroupedGemmLaunch.BlocksPerSm(GroupedGemm.Decode64, 163 * 1024));      // A100
        Assert.Equal(1, GroupedGemmLaunch.BlocksPerSm(GroupedGemm.Large, H100SharedOptin));
        Assert.Equal(2, GroupedGemmLaunch.BlocksPerSm(GroupedGemm.Medium64, H100SharedOptin));
    }

    [Theory]
    [InlineData(2, 8, 16, 2)]      // Mixtral T=1: two 1-row experts -> 2 tiles, not ceil(2/16) + 2 = 3
    [InlineData(8, 128, 16, 8)]    // Qwen3 T=1
    [InlineData(1024, 256, 16, 320)] // ceil(1024/16) + 256
    [InlineData(40, 4, 64, 5)]     // ceil(40/64) + 4
    public void RowTilesAreBoundedByRowsAndExperts(int rows, int experts, int tileRows, int expected) =>
        Assert.Equal(expected, GroupedGemmLaunch.MTilesBound(rows, experts, tileRows));

    [Theory]
    [InlineData(32, 8, 16, 8)]     // Mixtral T=16: every expert a tile (the bound says 10)
    [InlineData(2, 8, 16, 2)]      // Mixtral T=1
    [InlineData(128, 1, 64, 2)]    // one expert: exactly ceil(rows / BM)
    [InlineData(128, 256, 16, 128)] // DeepSeek-V3 T=16: at most one tile per row
    [InlineData(1024, 8, 16, 64)]  // rows fill more tiles than there are experts
    public void ExpectedRowTilesAreWhatRoutingMostLikelyFills(int rows, int experts, int tileRows, int expected)
    {
        Assert.Equal(expected, GroupedGemmLaunch.MTilesExpected(rows, experts, tileRows));
        Assert.True(expected <= GroupedGemmLaunch.MTilesBound(rows, experts, tileRows));
    }

    [Theory]
    [InlineData(null, "Expected")]
    [InlineData("expected", "Expected")]
    [InlineData(" Bound ", "Bound")]
    public void SplitTilesSwitchParses(string? value, string expected) =>
        Assert.Equal(expected, GroupedGemmLaunch.ParseSplitTiles(value).ToString());

    [Fact]
    public void SplitTilesSwitchRejectsOtherValuesNamingTheVariable() =>
        Assert.Contains("MOE_GROUPED_GEMM_SPLIT_TILES", Assert.Throws<ArgumentException>(() => GroupedGemmLaunch.ParseSplitTiles("all")).Message);

    /// <summary>The decode shapes of issue 9 split; shapes that already fill the device do not.</summary>
    [Theory]
    [InlineData("mixtral down T=1", 2, 4096, 14336, 8, false, 3)]
    [InlineData("qwen3 gate_up T=1", 8, 1536, 2048, 128, true, 2)]
    [InlineData("deepseek gate_up T=1", 8, 4096, 7168, 256, true, 3)]
    [InlineData("mixtral gate_up T=1024 (large tile)", 2048, 28672, 4096, 8, false, 1)]
    [InlineData("mixtral down T=128 (medium tile)", 256, 4096, 14336, 8, false, 1)]
    [InlineData("mixtral gate_up T=1 (896 tiles: over 2 waves already)", 2, 28672, 4096, 8, true, 1)]
    [InlineData("deepseek down T=128", 1024, 7168, 2048, 256, false, 1)]
    [InlineData("qwen3 down T=1 (K = 768: too short to split)", 8, 2048, 768, 128, false, 1)]
    [InlineData("mixtral down T=16 (8 experts of ~4 rows: 512 tiles, 1.3 waves unsplit)", 32, 4096, 14336, 8, false, 3)]
    [InlineData("mixtral gate_up T=16 (3584 tiles: 9 waves already)", 32, 28672, 4096, 8, false, 1)]
    public void PlannerSplitsTheDecodeShapes(string name, int rows, int n, int k, int experts, bool fused, int expected)
    {
        var launch = PlanH100(rows, n, k, experts, fused);
        Assert.True(expected == launch.Splits, $"{name}: {launch}");
        if (launch.Splits > 1)
            Assert.True((long)launch.KTilesPerSplit * GroupedGemmLaunch.KStepOf(launch.Variant) >= GroupedGemmLaunch.MinKPerSplit, $"{name}: {launch.KTilesPerSplit} k-tiles per split");
    }

    [Fact]
    public void SplitCountsNeverLeaveASplitEmptyAndCoverK()
    {
        foreach (int k in new[] { 8, 64, 72, 520, 1000, 2048, 14336 })
            for (int forced = 1; forced <= GroupedGemmLaunch.MaxSplits; forced++)
            {
                var launch = PlanH100(3, 200, k, 4, forced: forced);
                int kStep = GroupedGemmLaunch.KStepOf(launch.Variant);
                int kTiles = (k + kStep - 1) / kStep;
                Assert.Equal(kTiles, launch.KTiles);
                Assert.True(launch.Splits >= 1 && launch.Splits <= Math.Min(forced, kTiles), $"k={k} forced={forced}: {launch}");
                if (launch.Splits > 1)
                {
                    Assert.True((launch.Splits - 1) * launch.KTilesPerSplit < kTiles, $"k={k} forced={forced}: last split empty ({launch})");
                    Assert.True(launch.Splits * launch.KTilesPerSplit >= kTiles, $"k={k} forced={forced}: K not covered ({launch})");
                }
            }
    }

    [Fact]
    public void NoWorkspaceOrATooSmallOneMeansFewerSplits()
    {
        Assert.Equal(1, PlanH100(2, 4096, 14336, 8, capacity: 0).Splits);
        var full = PlanH100(2, 4096, 14336, 8, forced: 8);
        Assert.Equal(8, full.Splits);
        var smaller = PlanH100(2, 4096, 14336, 8, forced: 8, capacity: full.PartialFloats - 1);
        Assert.Equal(7, smaller.Splits);
        Assert.True(smaller.PartialFloats <= full.PartialFloats - 1);
        Assert.Equal(full.Tiles * 8 * 16 * 64, full.PartialFloats);
        Assert.Equal(full.Tiles, full.Counters);
    }

    [Fact]
    public void TheHeuristicSplitsOnlyDecodeTilesButAForceSplitsAny()
    {
        foreach (var variant in GroupedGemm.Variants)
        {
            var auto = GroupedGemmLaunch.Plan(variant, 2, 256, 8192, 8, false, H100Slots(variant), null, long.MaxValue, long.MaxValue);
            Assert.True(auto.Splits == (variant.TileRows == 16 ? 8 : 1), $"{variant.Name}: {auto}");
            var forced = GroupedGemmLaunch.Plan(variant, 2, 256, 8192, 8, false, H100Slots(variant), 5, long.MaxValue, long.MaxValue);
            Assert.True(forced.Splits == 5, $"{variant.Name} forced: {forced}");
        }
    }

    [Fact]
    public void TheHeuristicKeepsTheGridWithinMaxWaves()
    {
        foreach (long items in new long[] { 1, 50, 132, 200, 396, 500, 1000, 1584, 3000 })
        {
            int s = GroupedGemmLaunch.ChooseSplits(items, kTiles: 224, maxSplitsForK: 8, slots: 396);
            Assert.True(s == 1 || items * s <= GroupedGemmLaunch.MaxWaves * 396, $"items={items}: {s} splits");
        }
    }

    [Fact]
    public void VariantsWithoutSplitKNeverSplit()
    {
        var other = new GroupedGemm.Variant("another-kernel", 64, 128, 128, 64 * 1024);
        Assert.Equal(1, GroupedGemmLaunch.Plan(other, 2, 4096, 14336, 8, false, 400, forcedSplits: 8, long.MaxValue, long.MaxValue).Splits);
    }

    [Fact]
    public void WaveModelPrefersFewSplitsAtEqualEfficiency()
    {
        Assert.Equal(1, GroupedGemmLaunch.ChooseSplits(items: 396 * 4, kTiles: 224, maxSplitsForK: 8, slots: 396)); // full waves
        Assert.Equal(1, GroupedGemmLaunch.ChooseSplits(items: 1, kTiles: 1, maxSplitsForK: 8, slots: 396));        // one k-tile
        Assert.Equal(1, GroupedGemmLaunch.ChooseSplits(items: 10, kTiles: 64, maxSplitsForK: 1, slots: 396));      // K too short
        Assert.Equal(8, GroupedGemmLaunch.ChooseSplits(items: 1, kTiles: 64, maxSplitsForK: 8, slots: 396));       // one tile: all splits
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("1", 1)]
    [InlineData("4", 4)]
    [InlineData("8", 8)]
    public void EnvironmentValuesParse(string? value, int? expected) => Assert.Equal(expected, GroupedGemmLaunch.ParseSplits(value));

    [Theory]
    [InlineData("0")]
    [InlineData("9")]
    [InlineData("yes")]
    public void BadEnvironmentValuesAreRejected(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_SPLITK", Assert.Throws<ArgumentException>(() => GroupedGemmLaunch.ParseSplits(value)).Message);

    [Fact]
    public void WorkspaceOnTheCpuIsEmptyAndTheCpuPathIgnoresIt()
    {
        var cpu = TestDevices.Get("cpu");
        using var workspace = GroupedGemmWorkspace.For(cpu, new GroupedGemmShape(2, 4096, 14336, 8));
        Assert.Equal(0, workspace.Bytes);
        RunCase(cpu, new Case("cpu with workspace", [1, 0, 2], 24, 16), DType.F32, DType.F32, false, false, null, null, workspace);
    }

    [Fact]
    public void OverrideAboveOneNeedsAWorkspace()
    {
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate<float>(2 * 8);
        using var w = cpu.Allocate<float>(8 * 8);
        using var offsets = cpu.Upload<int>(new[] { 0, 2 });
        using var y = cpu.Allocate<float>(2 * 8);
        var error = Assert.Throws<ArgumentException>(() => GroupedGemm.Run(cpu, x, w, offsets, y, 8, 8, new GroupedGemmOptions { SplitKOverride = 3 }));
        Assert.Contains("SplitKWorkspace", error.Message);
    }

    // ---- the kernel, on CUDA ----

    public sealed record Case(string Name, int[] Counts, int N, int K, int LeadingRows = 0)
    {
        public override string ToString() => Name;
    }

    /// <summary>Awkward cases: empty and 1-row experts, K not a multiple of BK (64) nor of BK = 32, N tails, rows outside the experts.</summary>
    private static readonly Case[] Shapes =
    [
        new("1-row experts, K tail", [1, 0, 1, 1], 136, 520),
        new("empty experts, odd N, long K", [0, 3, 0, 0, 17, 1], 200, 1096, LeadingRows: 2),
        new("one expert, K below one tile per split", [2], 64, 40),
        new("two tiles of rows, N tail", [33, 5], 72, 776),
    ];

    private static readonly (DType Operands, DType Output)[] DTypePairs =
        [(DType.BF16, DType.BF16), (DType.BF16, DType.F32), (DType.F16, DType.F16), (DType.F16, DType.F32), (DType.BF16, DType.F16)];

    public static TheoryData<int> SplitCounts() => new(Enumerable.Range(1, GroupedGemmLaunch.MaxSplits));

    [Theory, MemberData(nameof(SplitCounts))]
    public void EverySplitCountMatchesTheReference(int splits)
    {
        var gpu = TestDevices.Get("cuda:0");
        using var workspace = LargeWorkspace(gpu);
        foreach (var shape in Shapes)
            foreach (var (operands, output) in DTypePairs)
                RunCase(gpu, shape, operands, output, fused: false, rowScale: splits % 2 == 0, variant: null, splits, workspace);
        RunCase(gpu, new Case("fused, 1-row experts", [1, 0, 4, 1], 2 * 68, 264), DType.BF16, DType.BF16, fused: true, rowScale: true, null, splits, workspace);
        RunCase(gpu, new Case("fused f16, odd I", [7, 0, 2], 2 * 37, 1032), DType.F16, DType.F32, fused: true, rowScale: false, null, splits, workspace);
        AssertCountersAreZero(workspace);
    }

    [Theory, MemberData(nameof(SplitCounts))]
    public void EveryTileVariantSplits(int splits)
    {
        var gpu = TestDevices.Get("cuda:0");
        using var workspace = LargeWorkspace(gpu);
        foreach (var variant in GroupedGemm.Variants.Where(v => !NotSplit.ContainsKey(v.Name)))
        {
            RunCase(gpu, new Case($"{variant.Name}: tails", [3, 0, 70, 1, 140], 136, 1000, LeadingRows: 1), DType.BF16, DType.BF16, false, true, variant.Name, splits, workspace);
            RunCase(gpu, new Case($"{variant.Name}: fused", [19, 0, 130], 2 * 68, 520), DType.F16, DType.F16, true, false, variant.Name, splits, workspace);
        }
        AssertCountersAreZero(workspace);
    }

    /// <summary>The planner's own choice with a workspace sized by <see cref="GroupedGemmWorkspace.For"/>, on decode-shaped calls.</summary>
    [Fact]
    public void HeuristicSplitWithASizedWorkspaceMatchesTheReference()
    {
        var gpu = TestDevices.Get("cuda:0");
        var cases = new[]
        {
            new Case("2 active of 8, long K", [1, 0, 0, 1, 0, 0, 0, 0], 512, 4096),
            new Case("8 rows over 32 experts", [1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 256, 2048),
            new Case("one row, one expert", [1], 128, 8192),
        };
        foreach (var shape in cases)
        {
            int rows = shape.LeadingRows + shape.Counts.Sum();
            using var workspace = GroupedGemmWorkspace.For(gpu, new GroupedGemmShape(rows, shape.N, shape.K, shape.Counts.Length));
            RunCase(gpu, shape, DType.BF16, DType.BF16, false, true, null, null, workspace);
            RunCase(gpu, shape with { Name = shape.Name + " (fused)" }, DType.BF16, DType.F32, true, false, null, null, workspace);
            AssertCountersAreZero(workspace);
        }
    }

    /// <summary>The reduction sums splits in a fixed order: two runs are bit-identical whichever block arrived last.</summary>
    [Fact]
    public void TwoRunsAreBitIdentical()
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var shape = new Case("determinism", [1, 0, 9, 1, 3], 264, 4104);
        using var workspace = LargeWorkspace(gpu);
        foreach (int splits in new[] { 3, 7, 8 })
            foreach (var output in new[] { DType.F32, DType.BF16 })
            {
                var (first, _) = RunOnce(gpu, shape, DType.BF16, output, false, true, null, splits, workspace, new Random(seed));
                for (int run = 0; run < 3; run++)
                {
                    var (again, _) = RunOnce(gpu, shape, DType.BF16, output, false, true, null, splits, workspace, new Random(seed));
                    for (int i = 0; i < first.Length; i++)
                        if (BitConverter.DoubleToInt64Bits(first[i]) != BitConverter.DoubleToInt64Bits(again[i]))
                            Assert.Fail($"splits={splits} {DTypes.Name(output)} run {run + 2}: element {i} is {again[i]:R}, first run {first[i]:R} (seed={seed})");
                }
            }
        AssertCountersAreZero(workspace);
    }

    /// <summary>
    /// One workspace across many calls of different shapes, split counts and epilogues: every call right, and the
    /// counters back at zero after each (no memset between calls).
    /// </summary>
    [Fact]
    public void OneWorkspaceServesManyCalls()
    {
        var gpu = TestDevices.Get("cuda:0");
        using var workspace = LargeWorkspace(gpu);
        for (int call = 0; call < 12; call++)
        {
            var shape = Shapes[call % Shapes.Length];
            int splits = 1 + (call * 3) % GroupedGemmLaunch.MaxSplits;
            RunCase(gpu, shape, DType.BF16, DType.F32, fused: false, rowScale: call % 3 == 0, null, splits, workspace);
            AssertCountersAreZero(workspace);
        }
    }

    /// <summary>Split-K captured once in a CUDA graph stays right over replays with other offsets (counters reset in-kernel).</summary>
    [Fact]
    public void CapturedSplitKFollowsTheOffsetsOnTheDevice()
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        const int n = 136, k = 1032, experts = 4, rows = 12;
        var xValues = GroupedGemmTests.Rounded(TestData.Uniform(random, rows * k), DType.BF16);
        var wValues = GroupedGemmTests.Rounded(TestData.Uniform(random, experts * n * k), DType.BF16);
        using var x = GroupedGemmTests.Upload(gpu, xValues, DType.BF16);
        using var w = GroupedGemmTests.Upload(gpu, wValues, DType.BF16);
        using var offsets = gpu.Upload<int>(new[] { 0, 1, 1, 5, 12 });
        using var y = gpu.Allocate<float>(rows * n);
        using var workspace = LargeWorkspace(gpu);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)gpu.CreateStream();
        var options = new GroupedGemmOptions { ValidateOffsets = false, SplitKWorkspace = workspace, SplitKOverride = 5 };
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        stream.BeginCapture();
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        using var graph = stream.EndCapture();
        foreach (var layout in new[] { new[] { 0, 1, 1, 5, 12 }, new[] { 0, 0, 1, 1, 2 }, new[] { 0, 12, 12, 12, 12 }, new[] { 0, 3, 6, 9, 12 } })
        {
            offsets.CopyFrom(layout, 0, stream);
            TestData.Poison(y);
            gpu.Synchronize();
            for (int replay = 0; replay < 2; replay++)
                graph.Launch(stream);
            stream.Synchronize();
            var expected = GroupedGemmCpu.Reference(xValues, wValues, layout, [], n, k, fusedSiluAndMul: false);
            int covered = layout[^1] * n;
            Compare.Close(expected.AsSpan(0, covered), GroupedGemmTests.ToDoubles(y).AsSpan(0, covered), Compare.Bf16Tolerance,
                $"split-K graph replay with offsets [{string.Join(", ", layout)}] seed={seed}");
        }
        AssertCountersAreZero(workspace);
    }

    /// <summary>Room for 8 splits of every case here (the largest: 140-row experts on 128x256 tiles).</summary>
    private static GroupedGemmWorkspace LargeWorkspace(Accelerator gpu) => GroupedGemmWorkspace.WithCapacity(gpu, 8L << 20, 1 << 16);

    private static void AssertCountersAreZero(GroupedGemmWorkspace workspace)
    {
        var counters = workspace.Counters!.ToArray();
        int nonZero = Array.FindIndex(counters, c => c != 0);
        Assert.True(nonZero < 0, $"arrival counter {nonZero} is {(nonZero < 0 ? 0 : counters[nonZero])} after the launch; every launch must leave them at 0");
    }

    private static void RunCase(Accelerator accelerator, Case shape, DType operands, DType output, bool fused, bool rowScale, string? variant, int? splits,
                                GroupedGemmWorkspace workspace)
    {
        var random = TestData.NewRandom(out int seed);
        var (actual, expected) = RunOnce(accelerator, shape, operands, output, fused, rowScale, variant, splits, workspace, random);
        int outCols = fused ? shape.N / 2 : shape.N;
        int covered = shape.Counts.Sum();
        string what = $"{shape.Name} {DTypes.Name(operands)}->{DTypes.Name(output)} fused={fused} scaled={rowScale} variant={variant ?? "auto"} splits={splits?.ToString() ?? "auto"} on {accelerator.Name} seed={seed}";
        int begin = shape.LeadingRows * outCols, end = (shape.LeadingRows + covered) * outCols;
        Compare.Close(expected.AsSpan(begin, end - begin), actual.AsSpan(begin, end - begin), Compare.ToleranceFor(operands, output), what);
        for (int i = 0; i < actual.Length; i++)
            if (i < begin || i >= end)
                Assert.True(double.IsNaN(actual[i]), $"{what}: element {i} outside every expert was written ({actual[i]})");
    }

    /// <summary>One call on fresh data drawn from <paramref name="random"/>; returns (actual, F64 reference).</summary>
    private static (double[] Actual, double[] Expected) RunOnce(Accelerator accelerator, Case shape, DType operands, DType output, bool fused, bool rowScale,
                                                              string? variant, int? splits, GroupedGemmWorkspace workspace, Random random)
    {
        int experts = shape.Counts.Length;
        int rows = shape.LeadingRows + shape.Counts.Sum();
        int outCols = fused ? shape.N / 2 : shape.N;
        var offsets = new int[experts + 1];
        offsets[0] = shape.LeadingRows;
        for (int e = 0; e < experts; e++)
            offsets[e + 1] = offsets[e] + shape.Counts[e];
        var xValues = GroupedGemmTests.Rounded(TestData.Uniform(random, rows * shape.K), operands);
        var wValues = GroupedGemmTests.Rounded(TestData.Uniform(random, experts * shape.N * shape.K), operands);
        var scales = rowScale ? TestData.Uniform(random, rows, 0.1f, 1.5f) : [];
        using var x = GroupedGemmTests.Upload(accelerator, xValues, operands);
        using var w = GroupedGemmTests.Upload(accelerator, wValues, operands);
        using var offsetsBuffer = accelerator.Upload<int>(offsets);
        using var scaleBuffer = rowScale ? accelerator.Upload<float>(scales) : null;
        using var y = accelerator.Allocate(output, (long)rows * outCols);
        TestData.Poison(y);
        GroupedGemm.Run(accelerator, x, w, offsetsBuffer, y, shape.N, shape.K, new GroupedGemmOptions
        {
            FusedSiluAndMul = fused, RowScale = scaleBuffer, VariantOverride = variant, SplitKWorkspace = workspace, SplitKOverride = splits,
        });
        var actual = GroupedGemmTests.ToDoubles(y);
        var expected = GroupedGemmCpu.Reference(xValues, wValues, offsets, scales, shape.N, shape.K, fused);
        return (actual, expected);
    }
}
