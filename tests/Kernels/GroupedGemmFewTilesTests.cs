using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The few-tile rule (<see cref="GroupedGemmFewTiles"/>, MOE_GROUPED_GEMM_FEW_TILES=mma): which calls it takes from the
/// Hopper kernel and how they split (on the CPU, for an H100/H200's 132 SMs), and on CUDA the layer's dense calls at
/// T = 128 run through it against the F64 reference (operands rounded to bf16; tolerance as in <see cref="GroupedGemmTests"/>),
/// outputs poisoned, and close to the same call with the rule off.
/// </summary>
public sealed class GroupedGemmFewTilesTests
{
    private const int Sms = 132, SharedOptin = 227 * 1024;

    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("mma", true)]
    [InlineData("MMA", true)]
    [InlineData("1", true)]
    [InlineData("wgmma", false)]
    [InlineData("0", false)]
    public void EnvironmentValuesParse(string? value, bool expected) => Assert.Equal(expected, GroupedGemmFewTiles.Parse(value));

    [Fact]
    public void BadEnvironmentValueIsRejected() =>
        Assert.Contains(GroupedGemmFewTiles.EnvironmentVariable, Assert.Throws<ArgumentException>(() => GroupedGemmFewTiles.Parse("tma")).Message);

    /// <summary>The layer's dense calls at T = 128 leave most SMs idle on the Hopper kernel; the routed experts' calls do not.</summary>
    [Theory]
    [InlineData("deepseek router T=128", 128, 256, 1, false, 2, true)]         // one real tile; the bound counts a partial one
    [InlineData("deepseek shared gate_up T=128", 128, 4096, 1, true, 32, true)]
    [InlineData("deepseek shared down T=128", 128, 7168, 1, false, 56, true)]
    [InlineData("qwen3 router T=128", 128, 128, 1, false, 2, true)]
    [InlineData("deepseek experts gate_up T=128", 1024, 4096, 256, true, 264 * 16, false)]
    [InlineData("mixtral experts down T=128", 256, 4096, 8, false, 10 * 16, false)]
    [InlineData("deepseek router T=8192", 8192, 256, 1, false, 65, true)]       // 64 real tiles + the bound's partial one
    [InlineData("deepseek router T=16384", 16384, 256, 1, false, 129, false)]
    public void TooFewTilesMeansFewerThanHalfTheSms(string name, int rows, int n, int experts, bool fused, long tiles, bool few)
    {
        Assert.True(tiles == GroupedGemmFewTiles.WgmmaTiles(rows, n, experts, fused), name);
        Assert.True(few == GroupedGemmFewTiles.TooFewTiles(Sms, rows, n, experts, fused), name);
    }

    /// <summary>
    /// The tile and split the rule plans for them on 132 SMs (hand-worked with the wave model, which counts the 2 row
    /// tiles 128 rows of one expert fill, not the grid's bound of 3): the router, 4 items of 64 x 128 over K = 7168
    /// (112 k-tiles), takes the most splits (8); shared gate_up, 64 items, 4 (one wave of 256 blocks in 264 slots at 28
    /// k-tiles; 8 splits, two waves at 14, are no better); shared down, 112 items over K = 2048 (32 k-tiles), 2 (one wave).
    /// </summary>
    [Theory]
    [InlineData(128, 256, 7168, 1, false, "medium64", 8)]
    [InlineData(128, 4096, 7168, 1, true, "medium64", 4)]
    [InlineData(128, 7168, 2048, 1, false, "medium64", 2)]
    [InlineData(64, 4096, 7168, 16, true, "decode64", 1)] // 4 rows per expert: the 16-row tile, enough items not to split
    public void PlanSplitsTheFewTileCalls(int rows, int n, int k, int experts, bool fused, string tile, int splits)
    {
        var variant = GroupedGemmFewTiles.VariantFor(rows, experts);
        Assert.Equal(tile, variant.Name);
        long slots = Sms * (long)GroupedGemmLaunch.BlocksPerSm(variant, SharedOptin);
        var launch = GroupedGemmLaunch.Plan(variant, rows, n, k, experts, fused, slots, null, long.MaxValue, long.MaxValue, autoSplit: true);
        Assert.True(splits == launch.Splits, launch.ToString());
        // Without the rule the same tile never splits by itself (only the decode tiles do).
        var plain = GroupedGemmLaunch.Plan(variant, rows, n, k, experts, fused, slots, null, long.MaxValue, long.MaxValue);
        Assert.Equal(variant == GroupedGemm.Decode64 ? launch.Splits : 1, plain.Splits);
    }

    // ---- CUDA: the calls through the rule against the reference ----

    public sealed record Case(string Name, int LeadingRows, int Rows, int TrailingRows, int N, int K, bool Fused, DType Output);

    public static TheoryData<string> CaseNames() => new(Cases.Select(c => c.Name));

    private static readonly Case[] Cases =
    [
        new("router: 128 x 256 x 7168 -> f32", 0, 128, 0, 256, 7168, false, DType.F32),
        new("shared gate_up (narrow): 128 x 2*512 x 2048 fused -> bf16", 0, 128, 0, 2 * 512, 2048, true, DType.BF16),
        new("shared down (narrow): 128 x 1024 x 2048 -> f32", 0, 128, 0, 1024, 2048, false, DType.F32),
        new("100 rows after 3, 5 past the end: 256 x 1032", 3, 100, 5, 256, 1032, false, DType.BF16),
        new("200 rows, fused, odd I: 2*72 x 4096", 0, 200, 0, 2 * 72, 4096, true, DType.F16),
    ];

    [Theory, MemberData(nameof(CaseNames))]
    public void FewTileCallsMatchTheReferenceAndTheHopperKernel(string name)
    {
        var gpu = TestDevices.Get("cuda:0");
        var shape = Cases.Single(c => c.Name == name);
        var operands = shape.Output == DType.F16 ? DType.F16 : DType.BF16;
        int rows = shape.LeadingRows + shape.Rows + shape.TrailingRows;
        int outCols = shape.Fused ? shape.N / 2 : shape.N;
        int[] offsets = [shape.LeadingRows, shape.LeadingRows + shape.Rows];
        var random = TestData.NewRandom(out int seed);
        var xValues = GroupedGemmTests.Rounded(TestData.Uniform(random, rows * shape.K), operands);
        var wValues = GroupedGemmTests.Rounded(TestData.Uniform(random, shape.N * shape.K), operands);
        var scales = TestData.Uniform(random, rows, 0.1f, 1.5f);
        using var x = GroupedGemmTests.Upload(gpu, xValues, operands);
        using var w = GroupedGemmTests.Upload(gpu, wValues, operands);
        using var offsetsBuffer = gpu.Upload<int>(offsets);
        using var scaleBuffer = gpu.Upload<float>(scales);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 64L << 20, 1 << 16);
        var expected = GroupedGemmCpu.Reference(xValues, wValues, offsets, scales, shape.N, shape.K, shape.Fused);
        string what = $"{name} seed={seed}";
        bool applies = GroupedGemmFewTiles.Applies(gpu, operands, rows, shape.N, 1, shape.Fused, hasWorkspace: true, forced: true);
        Assert.True(applies || gpu.Info is not { ComputeMajor: 9, ComputeMinor: 0 }, $"{what}: the rule should take this call on {gpu.Info.Name}");

        double[] Run(bool fewTiles)
        {
            using var y = gpu.Allocate(shape.Output, (long)rows * outCols);
            TestData.Poison(y);
            GroupedGemm.Run(gpu, x, w, offsetsBuffer, y, shape.N, shape.K, new GroupedGemmOptions
            {
                FusedSiluAndMul = shape.Fused, RowScale = scaleBuffer, SplitKWorkspace = workspace, FewTilesOverride = fewTiles,
                SkinnyOverride = false, // this test is about the few-tile rule and the Hopper kernel
            });
            return GroupedGemmTests.ToDoubles(y);
        }

        int begin = shape.LeadingRows * outCols, end = (shape.LeadingRows + shape.Rows) * outCols;
        foreach (bool fewTiles in new[] { true, false })
        {
            var actual = Run(fewTiles);
            Compare.Close(expected.AsSpan(begin, end - begin), actual.AsSpan(begin, end - begin), Compare.ToleranceFor(operands, shape.Output), $"{what} fewTiles={fewTiles}");
            for (int i = 0; i < actual.Length; i++)
                if (i < begin || i >= end)
                    Assert.True(double.IsNaN(actual[i]), $"{what} fewTiles={fewTiles}: element {i} outside the expert's rows was written ({actual[i]})");
        }
        var counters = workspace.Counters!.ToArray();
        Assert.True(counters.All(c => c == 0), $"{what}: arrival counters left non-zero");
    }
}
