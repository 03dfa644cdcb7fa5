using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The decode GEMV kernel (<see cref="GroupedGemmGemv"/>) forced on awkward shapes against the F64 reference, with the
/// bounds and poisoned outputs of <see cref="GroupedGemmTests"/>. Its m-tiles are 4 rows, its warp groups 4 W rows
/// (2 fused columns), and long K splits over 2, 4 or 8 warps: the cases sit on and around those sizes. The CUDA cases
/// skip without a GPU; the host-side planning checks run everywhere.
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
    ];

    public static TheoryData<int, string, string> Cases()
    {
        var data = new TheoryData<int, string, string>();
        for (int shape = 0; shape < Shapes.Length; shape++)
            foreach (var (operands, output) in new[] { ("bf16", "bf16"), ("bf16", "f32"), ("f16", "f16"), ("f16", "f32"), ("bf16", "f16"), ("f16", "bf16") })
                data.Add(shape, operands, output);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void GemvMatchesTheReference(int shape, string operands, string output) =>
        RunCase(Gpu(), Shapes[shape], DTypes.Parse(operands), DTypes.Parse(output), fused: false, rowScale: false, GroupedGemmGemv.VariantName);

    [Fact]
    public void GemvRowScaleAndFusedSiluAndMul()
    {
        var gpu = Gpu();
        RunCase(gpu, new Case("scaled", [1, 0, 6, 1], 72, 136, TrailingRows: 2), DType.BF16, DType.BF16, fused: false, rowScale: true, GroupedGemmGemv.VariantName);
        RunCase(gpu, new Case("fused, odd I", [1, 5, 0, 1], 2 * 37, 48), DType.BF16, DType.BF16, fused: true, rowScale: false, GroupedGemmGemv.VariantName);
        RunCase(gpu, new Case("fused and scaled, K split", [1, 2], 2 * 20, 4096 + 16, LeadingRows: 1), DType.F16, DType.F32, fused: true, rowScale: true, GroupedGemmGemv.VariantName);
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

    [Fact]
    public void GemvIsDeterministic()
    {
        var gpu = Gpu();
        var random = TestData.NewRandom(out int seed);
        const int n = 64, k = 8192 + 8;
        var x = TestData.ToBf16(TestData.Uniform(random, 3 * k));
        var w = TestData.ToBf16(TestData.Uniform(random, 2 * n * k));
        using var xs = gpu.Upload<BFloat16>(x);
        using var ws = gpu.Upload<BFloat16>(w);
        using var offsets = gpu.Upload<int>(new[] { 0, 2, 3 });
        using var y = gpu.Allocate<float>(3 * n);
        var options = new GroupedGemmOptions { VariantOverride = GroupedGemmGemv.VariantName };
        GroupedGemm.Run(gpu, xs, ws, offsets, y, n, k, options);
        var first = y.ToArray();
        for (int run = 0; run < 5; run++)
        {
            GroupedGemm.Run(gpu, xs, ws, offsets, y, n, k, options);
            Assert.True(first.AsSpan().SequenceEqual(y.ToArray()), $"run {run} differs from the first (seed {seed})");
        }
    }

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
    [InlineData(1, 256, true)]
    [InlineData(8, 256, true)]
    [InlineData(2, 8, true)]
    [InlineData(32, 8, false)]    // Mixtral T=16: 4 rows per expert on average, the tensor-core tile
    [InlineData(128, 128, false)] // 128 rows: the wgmma kernel's range
    public void TheHeuristicTakesTheGemvForAboutOneRowPerExpert(int rows, int experts, bool chosen)
    {
        Assert.Equal(chosen, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts));
        Assert.False(GroupedGemmGemv.ChosenFor(DType.F32, rows, experts));
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
    }

    private static Accelerator Gpu() => TestDevices.Get("cuda:0");
}
