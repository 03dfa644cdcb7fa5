using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The 4-row GEMV's W rows a warp group chosen per call (MOE_GROUPED_GEMM_GEMV_WROWS=auto, GroupedGemmOptions'
/// GemvWRowsOverride = 0): 8 only where the 4-row grid needs two waves and the 8-row grid fits in one. Both builds sum each
/// output column in the same order (the same lanes, chunks and K split), so the choice must not change a bit of the output.
/// </summary>
public class GroupedGemmGemvWRowsTests
{
    [Theory]
    [InlineData(512, 396, 256, 264, 8)]  // Qwen3-30B-A3B down at T=1 on an H200: two waves become one
    [InlineData(384, 396, 192, 264, 4)]  // its gate_up: already one wave
    [InlineData(1792, 396, 896, 264, 4)] // DeepSeek-V3 down: several waves either way
    [InlineData(600, 396, 300, 264, 4)]  // two waves, and 8 rows would still be two
    public void EightRowsOnlyWhereTheyTurnSeveralWavesIntoOne(long blocks4, long places4, long blocks8, long places8, int expected) =>
        Assert.Equal(expected, GroupedGemmGemv.WRowsFor(blocks4, places4, blocks8, places8));

    [Theory]
    [InlineData(null, GroupedGemmGemv.AutoWRows)]
    [InlineData("4", 4)]
    [InlineData(" 8 ", 8)]
    [InlineData("auto", GroupedGemmGemv.AutoWRows)]
    public void TheSwitchTakesFourEightOrAuto(string? value, int expected) => Assert.Equal(expected, GroupedGemmGemv.ParseWRows(value));

    [Fact]
    public void AnOverrideOtherThanFourEightOrAutoIsRejected()
    {
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate<BFloat16>(2 * 8);
        using var w = cpu.Allocate<BFloat16>(8 * 8);
        using var offsets = cpu.Upload<int>(new[] { 0, 2 });
        using var y = cpu.Allocate<BFloat16>(2 * 8);
        var error = Assert.Throws<ArgumentException>(() => GroupedGemm.Run(cpu, x, w, offsets, y, 8, 8, new GroupedGemmOptions { GemvWRowsOverride = 6 }));
        Assert.Contains("GemvWRowsOverride", error.Message);
    }

    /// <summary>
    /// Qwen3-30B-A3B's down at T = 1 (8 rows, one in each of 8 of 128 experts, N = 2048, K = 768): 512 blocks of 4 W rows,
    /// two waves at 3 blocks an SM on 132 SMs; auto takes 8 rows (256 blocks) and gives the 4-row build's bits. Gate_up
    /// fused (N = 2 x 768, K = 2048) has 384 blocks, one wave: auto keeps 4.
    /// </summary>
    [Theory]
    [InlineData(false, 2048, 768, false)]
    [InlineData(false, 2048, 768, true)]
    [InlineData(true, 2 * 768, 2048, false)]
    public void AutoPicksByWavesAndGivesTheSameBits(bool fused, int n, int k, bool withMap)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = GroupedGemmGemvTileMapTests.RowCounts(random, 128, "one row");
        var shape = new Case("Qwen3 T=1", counts, n, k); // 8 rows: trailing rows would raise the bound on m-tiles, hence the grid
        Assert.Equal(fused ? 384 : 512, GroupedGemmGemv.BlocksFor(8, 128, fused ? n / 2 : n, fused, GroupedGemmGemv.KSplitFor(k), wRows: 4));
        Assert.Equal(fused ? 192 : 256, GroupedGemmGemv.BlocksFor(8, 128, fused ? n / 2 : n, fused, GroupedGemmGemv.KSplitFor(k), wRows: 8));
        var (four, _) = Run(gpu, shape, fused, 4, withMap, seed);
        Assert.Equal(4, GroupedGemmGemv.LastRunWRows);
        var (auto, covered) = Run(gpu, shape, fused, GroupedGemmGemv.AutoWRows, withMap, seed);
        int sms = gpu.Info.MultiprocessorCount;
        if (sms == 132) // the waves above are an H100's / H200's; elsewhere only the bits are checked
            Assert.True((fused ? 4 : 8) == GroupedGemmGemv.LastRunWRows, $"fused={fused}: auto took {GroupedGemmGemv.LastRunWRows} W rows on {gpu.Info.Name} ({sms} SMs)");
        string what = $"fused={fused} map={withMap}, {GroupedGemmGemv.LastRunWRows} W rows, seed {seed}";
        for (int i = 0; i < four.Length; i++)
            Assert.True(four[i] == auto[i], $"{what}: element {i}: 4 rows {four[i]:X4}, auto {auto[i]:X4}");
        for (int i = 0; i < covered; i++)
            Assert.True(auto[i] != GroupedGemmGemvTileMapTests.PoisonBits, $"{what}: element {i} of an expert's rows was not written");
    }

    /// <summary>
    /// The 8-W-row build forced (GemvWRowsOverride = 8) against the 4-row one with 1 to 4 X rows a tile (0 to 9 rows an
    /// expert: partial and several m-tiles), plain with a row scale and fused, with and without the map: the same bits.
    /// Its inner loop loads a tile's X chunks first and then multiplies one W row at a time; this covers X rows past the
    /// first, which the auto cases above (one row an expert) do not.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void EightWRowsGiveTheFourRowBuildsBitsWithSeveralRowsAnExpert(bool fused, bool withMap)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = GroupedGemmGemvTileMapTests.RowCounts(random, 24, "several rows");
        var shape = new Case($"E=24, 0-9 rows an expert, seed {seed}", counts, fused ? 2 * 72 : 136, 264, TrailingRows: 2);
        var (four, covered) = Run(gpu, shape, fused, 4, withMap, seed);
        var (eight, _) = Run(gpu, shape, fused, 8, withMap, seed);
        Assert.Equal(8, GroupedGemmGemv.LastRunWRows);
        for (int i = 0; i < four.Length; i++)
            Assert.True(four[i] == eight[i], $"{shape.Name} fused={fused} map={withMap}: element {i}: 4 W rows {four[i]:X4}, 8 {eight[i]:X4}");
        for (int i = 0; i < covered; i++)
            Assert.True(eight[i] != GroupedGemmGemvTileMapTests.PoisonBits, $"{shape.Name}: element {i} of an expert's rows was not written");
    }

    private static (ushort[] Bits, int Covered) Run(Accelerator gpu, Case shape, bool fused, int wRows, bool withMap, int seed) =>
        GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: true, GroupedGemmGemv.Variant4Name, withMap, seed, wRows);
}
