using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The decode GEMV kernel (<see cref="GroupedGemmGemv"/>) forced on awkward shapes against the F64 reference, with the
/// bounds and poisoned outputs of <see cref="GroupedGemmTests"/>, with each of its tiles: m-tiles of 4 rows (gemv4), of 8
/// (gemv8, whose m-tiles of one expert are neighbours in the launch order) and the 1-row entry (gemv1: the 4-row tiles,
/// a pass a row, so every shape of more than one row an expert is its several passes). Its warp groups take 4 W rows (2 fused
/// columns), and long K splits over 2, 4 or 8 warps: the cases sit on and around those sizes, and experts with 5..8
/// rows (one 8-row pass), more than 8 (several passes), all rows in one expert, and empty experts between.
/// The CUDA cases skip without a GPU; the host-side planning checks run everywhere.
/// </summary>
public class GroupedGemmGemvTests
{
    private static readonly Case[] Shapes =
    [
        new("one expert, one row", [1], 8, 8),
        new("one row per expert, N tail, K below one segment", [1, 1, 0, 1], 37, 24),
        new("several m-tiles per expert (9 rows), empty experts", [9, 0, 4, 5, 0], 20, 40),
        new("rows outside the experts", [2, 3], 33, 16, LeadingRows: 3, TrailingRows: 4),
        new("K over several segments with a tail", [1, 2], 64, 264 * 8 + 8),
        new("K split over 2 warps", [1, 1], 40, 4096 + 8),
        new("K split over 4 warps", [2, 1], 24, 8192 + 64),
        new("K split over 8 warps", [1], 12, 16384 + 8),
        new("5, 6, 7 and 8 rows per expert, N tail", [5, 6, 7, 8], 37, 72),
        new("more than 8 rows: 9, 16 and 17, an empty expert", [9, 16, 0, 17], 20, 40),
        new("all 32 rows in one of 8 experts", [0, 0, 32, 0, 0, 0, 0, 0], 36, 136),
        new("empty experts around 8- and 3-row experts, rows outside", [0, 8, 0, 0, 3, 0], 33, 24, LeadingRows: 2, TrailingRows: 5),
        new("Mixtral T=16-like counts, K split over 2 warps", [4, 7, 2, 5, 3, 6, 1, 4], 40, 4096 + 8),
        new("8 and 10 rows, K split over 8 warps with a tail", [8, 10], 12, 16384 + 264 * 8 + 8),
    ];

    private static readonly string[] Tiles = [GroupedGemmGemv.Variant1Name, GroupedGemmGemv.Variant4Name, GroupedGemmGemv.Variant8Name];

    public static TheoryData<int, string, string, string> Cases()
    {
        var data = new TheoryData<int, string, string, string>();
        for (int shape = 0; shape < Shapes.Length; shape++)
            foreach (var (operands, output) in new[] { ("bf16", "bf16"), ("bf16", "f32"), ("f16", "f16"), ("f16", "f32"), ("bf16", "f16"), ("f16", "bf16") })
                foreach (string tile in Tiles)
                    data.Add(shape, operands, output, tile);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void GemvMatchesTheReference(int shape, string operands, string output, string tile) =>
        RunCase(Gpu(), Shapes[shape], DTypes.Parse(operands), DTypes.Parse(output), fused: false, rowScale: false, tile);

    [Theory]
    [InlineData("gemv")]
    [InlineData("gemv1")]
    [InlineData("gemv4")]
    [InlineData("gemv8")]
    public void GemvRowScaleAndFusedSiluAndMul(string variant)
    {
        var gpu = Gpu();
        RunCase(gpu, new Case("scaled", [1, 0, 6, 1], 72, 136, TrailingRows: 2), DType.BF16, DType.BF16, fused: false, rowScale: true, variant);
        RunCase(gpu, new Case("fused, odd I", [1, 5, 0, 1], 2 * 37, 48), DType.BF16, DType.BF16, fused: true, rowScale: false, variant);
        RunCase(gpu, new Case("fused and scaled, K split", [1, 2], 2 * 20, 4096 + 16, LeadingRows: 1), DType.F16, DType.F32, fused: true, rowScale: true, variant);
        RunCase(gpu, new Case("fused and scaled, 8 and 11 rows, K split", [8, 0, 11], 2 * 21, 4096 + 16, TrailingRows: 3), DType.BF16, DType.F16, fused: true, rowScale: true, variant);
        RunCase(gpu, new Case("scaled, all rows in one expert", [0, 20, 0], 44, 264 * 8 + 8), DType.F16, DType.F16, fused: false, rowScale: true, variant);
    }

    [Fact]
    public void GemvWithManyExpertsAndTheHeuristicsChoice()
    {
        var gpu = Gpu();
        var random = TestData.NewRandom(out _);
        var counts = Enumerable.Range(0, 256).Select(_ => 0).ToArray();
        foreach (int e in Enumerable.Range(0, 256).OrderBy(_ => random.Next()).Take(8))
            counts[e] = 1;
        // 8 rows over 256 experts: the heuristic's pick is the GEMV (DeepSeek-V3's decode shape, scaled down).
        Assert.True(GroupedGemmGemv.ChosenFor(DType.BF16, 8, 256));
        RunCase(gpu, new Case("T=1, 8 of 256 experts", counts, 96, 56), DType.BF16, DType.BF16, fused: false, rowScale: true, variant: null);
        RunCase(gpu, new Case("T=1 fused, 8 of 256 experts", counts, 2 * 48, 56), DType.BF16, DType.BF16, fused: true, rowScale: false, variant: null);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void EightRowTilesLoopOverMTilesInFewSlots(int slots)
    {
        // Fewer slots than m-tiles: each block runs several m-tiles (of different experts, and passes of one expert).
        var gpu = Gpu();
        RunCase(gpu, new Case("9, 16, 0, 17 and 5 rows", [9, 16, 0, 17, 5], 20, 40, LeadingRows: 1, TrailingRows: 2), DType.BF16, DType.F32,
            fused: false, rowScale: true, GroupedGemmGemv.Variant8Name, slots);
        RunCase(gpu, new Case("fused, Mixtral-like, K split", [4, 7, 2, 5, 3, 6, 1, 4, 12], 2 * 18, 4096 + 8), DType.F16, DType.BF16,
            fused: true, rowScale: false, GroupedGemmGemv.Variant8Name, slots);
        RunCase(gpu, new Case("all rows in one expert, K split over 8", [0, 30, 0], 12, 16384 + 8), DType.BF16, DType.BF16,
            fused: false, rowScale: false, GroupedGemmGemv.Variant8Name, slots);
    }

    [Fact]
    public void ATileSlotCountBelowOneIsRejected()
    {
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate<BFloat16>(2 * 8);
        using var w = cpu.Allocate<BFloat16>(8 * 8);
        using var offsets = cpu.Upload<int>(new[] { 0, 2 });
        using var y = cpu.Allocate<BFloat16>(2 * 8);
        var error = Assert.Throws<ArgumentException>(() => GroupedGemm.Run(cpu, x, w, offsets, y, 8, 8, new GroupedGemmOptions { GemvTileSlotsOverride = 0 }));
        Assert.Contains("GemvTileSlotsOverride", error.Message);
    }

    [Fact]
    public void TheFourRowGemvRefusesATileSlotCount()
    {
        // The 4-row kernel does not loop over m-tiles: a slot count for it is an error, not a silent no-op.
        var gpu = Gpu();
        var error = Assert.Throws<ArgumentException>(() =>
            RunCase(gpu, new Case("slots for gemv4", [1, 2], 8, 8), DType.BF16, DType.BF16, fused: false, rowScale: false, GroupedGemmGemv.Variant4Name, 2));
        Assert.Contains("8-row", error.Message);
    }

    [Fact]
    public void TheEightRowGemvRunsMixtralAtSixteenTokens()
    {
        var gpu = Gpu();
        var random = TestData.NewRandom(out _);
        // 16 tokens, top-2 of 8 experts (distinct per token): 32 rows, 4 per expert on average.
        var counts = new int[8];
        for (int token = 0; token < 16; token++)
            foreach (int e in Enumerable.Range(0, 8).OrderBy(_ => random.Next()).Take(2))
                counts[e]++;
        // The 8-row tile is off by default (slower than the mma.sync tile on the H200); with it allowed, the rule takes it.
        Assert.False(GroupedGemmGemv.ChosenFor(DType.BF16, 32, 8, GroupedGemmGemv.DefaultMaxRows, GroupedGemmGemv.Rule.Experts));
        Assert.True(GroupedGemmGemv.ChosenFor(DType.BF16, 32, 8, GroupedGemmGemv.WideTileRows, GroupedGemmGemv.Rule.Experts));
        Assert.Equal(8, GroupedGemmGemv.TileRowsFor(32, 8, GroupedGemmGemv.WideTileRows));
        RunCase(gpu, new Case("T=16 fused, top-2 of 8", counts, 2 * 40, 64), DType.BF16, DType.BF16, fused: true, rowScale: false, variant: GroupedGemmGemv.Variant8Name);
        RunCase(gpu, new Case("T=16 down, top-2 of 8", counts, 48, 136), DType.BF16, DType.BF16, fused: false, rowScale: true, variant: GroupedGemmGemv.Variant8Name);
    }

    [Theory]
    [InlineData("gemv1")]
    [InlineData("gemv4")]
    [InlineData("gemv8")]
    public void GemvIsDeterministic(string variant) =>
        AssertRepeatsGiveTheSameBits(Gpu(), [0, 2, 3], 64, 8192 + 8, new GroupedGemmOptions { VariantOverride = variant });

    [Theory]
    [InlineData(8, 1)]
    [InlineData(2048, 1)]
    [InlineData(4096, 2)]
    [InlineData(7168, 2)]
    [InlineData(8192, 4)]
    [InlineData(14336, 4)]
    [InlineData(16384, 8)]
    [InlineData(1 << 20, 8)]
    public void LongRowsSplitKOverMoreWarps(int k, int split) => Assert.Equal(split, GroupedGemmGemv.KSplitFor(k));

    [Theory]
    [InlineData(2048, 1024, 2)]
    [InlineData(768, 256, 2)]
    [InlineData(7168, 1024, 4)]
    public void ASmallerShareSplitsShorterRows(int k, int warpK, int split) => Assert.Equal(split, GroupedGemmGemv.KSplitFor(k, warpK));

    [Theory]
    [InlineData(128, 128, true)]   // Qwen3-30B-A3B T=16
    [InlineData(256, 256, true)]   // DeepSeek-V3 T=32
    [InlineData(129, 128, false)]  // more rows than experts: the tensor-core tiles
    [InlineData(1024, 256, false)] // DeepSeek-V3 T=128
    [InlineData(8, 256, true)]
    [InlineData(63, 16, false)]    // under 64 rows but 4 an expert: the 4-row GEMV's rule is rows <= experts
    public void TheExpertsRuleAlsoTakesCallsOfNoMoreRowsThanExperts(int rows, int experts, bool chosen)
    {
        Assert.Equal(chosen, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, maxRows: 4, GroupedGemmGemv.Rule.Experts));
        Assert.False(GroupedGemmGemv.ChosenFor(DType.F32, rows, experts, maxRows: 4, GroupedGemmGemv.Rule.Experts));
        Assert.Equal(chosen && rows < 64, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, maxRows: 4, GroupedGemmGemv.Rule.Small));
    }

    [Theory]
    [InlineData(32, 8, true)]      // Mixtral-8x7B T=16
    [InlineData(1024, 256, true)]  // DeepSeek-V3 T=128: 4 rows an expert
    [InlineData(33, 8, false)]
    [InlineData(1024, 128, false)] // Qwen3-30B-A3B T=128: 8 rows an expert
    public void TheWideRuleTakesUpToFourRowsAnExpert(int rows, int experts, bool chosen)
    {
        Assert.Equal(chosen, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, maxRows: 4, GroupedGemmGemv.Rule.Wide));
        Assert.False(GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, maxRows: 4, GroupedGemmGemv.Rule.Experts));
        Assert.Equal(4, GroupedGemmGemv.TileRowsFor(rows, experts, maxRows: 4));
    }

    [Theory]
    [InlineData(null, "Experts")]
    [InlineData(" small ", "Small")]
    [InlineData("experts", "Experts")]
    [InlineData("wide", "Wide")]
    public void TheRuleSwitchParses(string? value, string rule) => Assert.Equal(rule, GroupedGemmGemv.ParseRule(value).ToString());

    [Fact]
    public void BadRuleAndOrderValuesNameTheirVariables()
    {
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_RULE", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseRule("all")).Message);
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_ORDER", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseOrder("row")).Message);
        Assert.True(GroupedGemmGemv.ParseOrder("tile"));
        Assert.False(GroupedGemmGemv.ParseOrder(null));
    }

    /// <summary>
    /// The 4-row GEMV where the experts rule takes it: 128 rows over 128 experts drawn as top-8 routing of 16 tokens gives
    /// (empty experts, experts of 1-3 rows), plus one expert of 9 rows (three m-tiles: three passes over its W).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheFourRowGemvTakesSixteenTokensOverManyExperts(bool fused)
    {
        var gpu = Gpu();
        var random = TestData.NewRandom(out int seed);
        var counts = new int[128];
        for (int t = 0; t < 15; t++)
            foreach (int e in Enumerable.Range(0, 127).OrderBy(_ => random.Next()).Take(8))
                counts[e]++;
        counts[127] = 9;
        Assert.Equal(129, counts.Sum());
        var shape = fused ? new Case($"T=16 fused, seed {seed}", counts, 2 * 40, 136) : new Case($"T=16 down, seed {seed}", counts, 72, 264, TrailingRows: 2);
        RunCase(gpu, shape, DType.BF16, DType.BF16, fused, rowScale: !fused, GroupedGemmGemv.Variant4Name);
    }

    [Theory]
    [InlineData(1, 256, true)]
    [InlineData(8, 256, true)]
    [InlineData(2, 8, true)]
    [InlineData(32, 8, true)]     // Mixtral T=16: 4 rows per expert on average, the 8-row GEMV
    [InlineData(33, 8, false)]    // past 4 rows per expert on average: the tensor-core tile
    [InlineData(63, 16, true)]
    [InlineData(64, 16, false)]   // 64 rows: the wgmma kernel's range
    [InlineData(128, 128, false)]
    public void TheHeuristicTakesTheGemvForAFewRowsPerExpert(int rows, int experts, bool chosen)
    {
        // The rule under 64 rows (MOE_GROUPED_GEMM_GEMV_RULE=small; the experts rule's wider calls are tested above).
        Assert.Equal(chosen, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, GroupedGemmGemv.WideTileRows, GroupedGemmGemv.Rule.Small));
        Assert.False(GroupedGemmGemv.ChosenFor(DType.F32, rows, experts, GroupedGemmGemv.WideTileRows, GroupedGemmGemv.Rule.Small));
        // MOE_GROUPED_GEMM_GEMV_MAX_ROWS=4: the rule before the 8-row tile, no more rows than experts.
        Assert.Equal(rows <= experts && rows < 64, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, maxRows: 4, GroupedGemmGemv.Rule.Small));
    }

    [Theory]
    [InlineData(1, 256, 8, null, 4)]   // T=1: the 4-row kernel as before
    [InlineData(8, 8, 8, null, 4)]
    [InlineData(9, 8, 8, null, 8)]
    [InlineData(32, 8, 8, null, 8)]
    [InlineData(32, 8, 4, null, 4)]    // the A/B switch back
    [InlineData(32, 8, 8, "gemv4", 4)] // forced tiles win
    [InlineData(1, 256, 4, "gemv8", 8)]
    public void TileRowsFollowTheRowsPerExpertAndTheSwitch(int rows, int experts, int maxRows, string? forced, int tileRows) =>
        Assert.Equal(tileRows, GroupedGemmGemv.TileRowsFor(rows, experts, maxRows, forced));

    [Fact]
    public void TheMaxRowsSwitchTakesFourOrEight()
    {
        Assert.Equal(4, GroupedGemmGemv.ParseMaxRows(null));
        Assert.Equal(4, GroupedGemmGemv.ParseMaxRows(" "));
        Assert.Equal(4, GroupedGemmGemv.ParseMaxRows("4"));
        Assert.Equal(8, GroupedGemmGemv.ParseMaxRows("8"));
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_MAX_ROWS", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseMaxRows("16")).Message);
        Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseMaxRows("eight"));
    }

    [Fact]
    public void TheUnrollSwitchTakesOneTwoOrFour()
    {
        Assert.Null(GroupedGemmGemv.ParseUnroll(null));
        Assert.Equal(["-DGV_UNROLL=4"], GroupedGemmGemv.ParseUnroll(" 4")!);
        Assert.Equal(["-DGV_UNROLL=1"], GroupedGemmGemv.ParseUnroll("1")!);
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_UNROLL", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseUnroll("3")).Message);
    }

    [Fact]
    public void BlocksCoverEveryColumnOfEveryPossibleTile()
    {
        // 8 rows over 256 experts: at most 8 m-tiles; plain N = 4096 in blocks of 4 W rows x 8 groups = 32 columns.
        Assert.Equal(8L * 128, GroupedGemmGemv.BlocksFor(8, 256, 4096, fused: false, kSplit: 1));
        // Fused: 2 columns per group; K split over 2 warps: 4 groups per block -> 8 columns per block.
        Assert.Equal(8L * 256, GroupedGemmGemv.BlocksFor(8, 256, 2048, fused: true, kSplit: 2));
        // A column tail still gets its block.
        Assert.Equal(1L * 2, GroupedGemmGemv.BlocksFor(1, 1, 33, fused: false, kSplit: 1));
        // 8-row tiles, Mixtral T=16 fused gate_up: I = 14336 with K = 4096 split over 2 warps: 4 groups of 2 columns ->
        // 1792 column blocks, each with ceil(32 / 8) = 4 tile slots (not the bound, 32 / 8 + 8 = 12 m-tiles).
        Assert.Equal(4L * 1792, GroupedGemmGemv.BlocksFor(32, 8, 14336, fused: true, kSplit: 2, tileRows: 8, multiprocessors: 132));
        // Mixtral down (N = 4096, K = 14336 over 4 warps: 512 column blocks): 4 slots cover 4 waves of 2 x 132 blocks.
        Assert.Equal(4L * 512, GroupedGemmGemv.BlocksFor(32, 8, 4096, fused: false, kSplit: 4, tileRows: 8, multiprocessors: 132));
        // Few column blocks: more slots for the waves, at most the bound (3 rows: 3 m-tiles at most).
        Assert.Equal(3L * 1, GroupedGemmGemv.BlocksFor(3, 8, 32, fused: false, kSplit: 1, tileRows: 8, multiprocessors: 132));
        Assert.Equal(10L * 2, GroupedGemmGemv.BlocksFor(16, 8, 64, fused: false, kSplit: 1, tileRows: 8, multiprocessors: 132));
        // 4-row tiles: the bound, as before (32 / 4 + 8 = 16 m-tiles).
        Assert.Equal(16L * 2, GroupedGemmGemv.BlocksFor(32, 8, 64, fused: false, kSplit: 1, tileRows: 4, multiprocessors: 132));
        Assert.Equal(5L * 2, GroupedGemmGemv.BlocksFor(32, 8, 64, fused: false, kSplit: 1, tileRows: 8, tileSlots: 5));
    }

    private static Accelerator Gpu() => TestDevices.Get("cuda:0");
}
