using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The decode GEMV's 1-row entry (gemv1, picked where GroupedGemmOptions.MaxRowsPerExpert is 1): the 4-row entry's
/// tiles, a pass a row, one row's sums a lane. Its sums are the 4-row entry's products in the same order, so on the GPU its
/// output must be the 4-row entry's bit for bit, from a poisoned output: at one row an expert (T = 1, what it is for) and
/// at several (a bound that was wrong: each extra row another pass), with the map and searching, with the prefetch, plain
/// and fused, 4 and 8 W rows. (Against the F64 reference it runs in <see cref="GroupedGemmGemvTests"/>' shapes.)
/// </summary>
public class GroupedGemmGemvSingleRowTests
{
    public static TheoryData<int, string, bool, int> Cases()
    {
        var data = new TheoryData<int, string, bool, int>();
        foreach (int experts in new[] { 8, 128, 256 })
            foreach (string rows in new[] { "one row", "several rows" })
                foreach (bool fused in new[] { false, true })
                    data.Add(experts, rows, fused, 4);
        data.Add(128, "one row", false, 8);
        data.Add(24, "several rows", true, 8);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheOneRowEntryGivesTheFourRowEntrysBits(int experts, string rows, bool fused, int wRows)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = GroupedGemmGemvTileMapTests.RowCounts(random, experts, rows);
        foreach (int k in new[] { 264, 768, 2048 + 8 })
        {
            var shape = new Case($"E={experts} {rows} K={k}", counts, fused ? 2 * 40 : 72, k, TrailingRows: 2);
            var (four, covered) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant4Name, withMap: true, seed, wRows);
            foreach (bool withMap in new[] { true, false })
            {
                var (one, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant1Name, withMap, seed, wRows);
                Assert.Equal(GroupedGemmGemv.SingleTileRows, GroupedGemmGemv.LastRunTileRows);
                Same(four, one, covered, $"{shape.Name} fused={fused} {wRows} W rows, map={withMap}, seed {seed}");
            }
            var (prefetched, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant1Name, withMap: true, seed, wRows,
                prefetch: true);
            // One row an expert (8 rows) or 8 experts of up to 9 rows is a grid of one wave, so the prefetch build ran; 128 or
            // 256 experts of up to 9 rows are several waves, where the launch leaves the hint out. The bits are the same either way.
            if (rows == "one row" || experts == 8)
                Assert.True(GroupedGemmGemv.LastRunPrefetched, $"{shape.Name}: a grid this small is one wave; the prefetch build should have run");
            Same(four, prefetched, covered, $"{shape.Name} fused={fused} {wRows} W rows, prefetched, seed {seed}");
        }
    }

    /// <summary>
    /// The heuristic's pick follows the bound: Qwen3-30B-A3B's down and gate_up at T = 1 (8 rows over 128 experts) at a bound
    /// of 1 row an expert take the 1-row entry, at 2 the 4-row one, with the same bits. On an H100 or H200 (132 SMs, 4 blocks
    /// of the 1-row entry an SM) gate_up's 384 blocks are spread to 3 an SM (dynamic shared memory it does not use), down's
    /// 512 fill 4.
    /// </summary>
    [Theory]
    [InlineData(false, 2048, 768)]
    [InlineData(true, 2 * 768, 2048)]
    public void TheBoundOfOneRowAnExpertPicksTheOneRowEntryAndSpreadsAOneWaveGrid(bool fused, int n, int k)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var shape = new Case($"T=1, 8 of 128 experts, fused={fused}", GroupedGemmGemvTileMapTests.RowCounts(random, 128, "one row"), n, k);
        var (one, covered) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, variant: null, withMap: true, seed, maxRowsPerExpert: 1);
        Assert.Equal(GroupedGemmGemv.SingleTileRows, GroupedGemmGemv.LastRunTileRows);
        if (gpu.Info.MultiprocessorCount == 132)
            Assert.True(fused == GroupedGemmGemv.LastRunSharedBytes > 0, $"{shape.Name}: {GroupedGemmGemv.LastRunSharedBytes} bytes of dynamic shared memory");
        var (four, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, variant: null, withMap: true, seed, maxRowsPerExpert: 2);
        Assert.Equal(GroupedGemmGemv.TileRows, GroupedGemmGemv.LastRunTileRows);
        Same(four, one, covered, $"{shape.Name}, seed {seed}");
    }

    [Theory]
    [InlineData(384, 132, 4, 3)]   // Qwen3-30B-A3B gate_up at T = 1 on an H200: one wave, spread to 3 an SM
    [InlineData(512, 132, 4, 4)]   // its down: one wave at 4
    [InlineData(529, 132, 4, 4)]   // past one wave: the occupancy
    [InlineData(100, 132, 4, 1)]
    [InlineData(0, 132, 4, 1)]
    public void AOneWaveGridIsSpreadOverEverySm(long blocks, int multiprocessors, int occupancy, int perSm) =>
        Assert.Equal(perSm, GroupedGemmGemv.SpreadBlocksPerSm(blocks, multiprocessors, occupancy));

    [Theory]
    [InlineData(8, 256, null, null, 4)]  // no bound: the 4-row entry
    [InlineData(8, 256, 1, null, 1)]     // T = 1
    [InlineData(16, 128, 2, null, 4)]    // T = 2
    [InlineData(128, 128, 16, null, 4)]  // Qwen3-30B-A3B T = 16
    [InlineData(8, 256, 1, "gemv4", 4)]  // forced tiles win
    [InlineData(32, 8, 4, "gemv1", 1)]
    public void TileRowsFollowTheBound(int rows, int experts, int? maxRowsPerExpert, string? forced, int tileRows) =>
        Assert.Equal(tileRows, GroupedGemmGemv.TileRowsFor(rows, experts, GroupedGemmGemv.DefaultMaxRows, forced, maxRowsPerExpert));

    [Fact]
    public void TheOneRowEntryTakesTheFourRowEntrysGrid()
    {
        Assert.Equal(GroupedGemmGemv.TileRows, GroupedGemmGemv.GridTileRows(GroupedGemmGemv.SingleTileRows));
        Assert.Equal(GroupedGemmGemv.BlocksFor(8, 128, 2048, fused: false, kSplit: 1, tileRows: 4),
                     GroupedGemmGemv.BlocksFor(8, 128, 2048, fused: false, kSplit: 1, tileRows: 1));
        Assert.Equal("grouped_gemm_gemv1_bf16_f32", GroupedGemmGemv.EntryName(DType.BF16, DType.F32, GroupedGemmGemv.SingleTileRows));
    }

    [Fact]
    public void ItsSwitchesParseAndNameThemselves()
    {
        Assert.True(GroupedGemmGemv.ParseSingleRow(null));
        Assert.True(GroupedGemmGemv.ParseSingleRow(" on"));
        Assert.False(GroupedGemmGemv.ParseSingleRow("off"));
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_SINGLE", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseSingleRow("1")).Message);
        Assert.Equal(GroupedGemmGemv.SpreadCap, GroupedGemmGemv.ParseSingleBlocksCap(null));
        Assert.Equal(GroupedGemmGemv.SpreadCap, GroupedGemmGemv.ParseSingleBlocksCap("spread"));
        Assert.Equal(GroupedGemmGemv.NoCap, GroupedGemmGemv.ParseSingleBlocksCap("none"));
        Assert.Equal(3, GroupedGemmGemv.ParseSingleBlocksCap("3"));
        Assert.Contains("MOE_GROUPED_GEMM_GEMV1_BLOCKS", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseSingleBlocksCap("5")).Message);
        Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseSingleBlocksCap("0"));
        Assert.Null(GroupedGemmGemv.ParseSingleUnroll(""));
        Assert.Equal(["-DGV1_UNROLL=3"], GroupedGemmGemv.ParseSingleUnroll("3")!);
        Assert.Contains("MOE_GROUPED_GEMM_GEMV1_UNROLL", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseSingleUnroll("8")).Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void ABoundBelowOneRowIsRejected(int bound)
    {
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate<BFloat16>(2 * 8);
        using var w = cpu.Allocate<BFloat16>(8 * 8);
        using var offsets = cpu.Upload<int>(new[] { 0, 2 });
        using var y = cpu.Allocate<BFloat16>(2 * 8);
        var error = Assert.Throws<ArgumentException>(() => GroupedGemm.Run(cpu, x, w, offsets, y, 8, 8, new GroupedGemmOptions { MaxRowsPerExpert = bound }));
        Assert.Contains("MaxRowsPerExpert", error.Message);
    }

    private static void Same(ushort[] expected, ushort[] actual, int covered, string what)
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i] == actual[i], $"{what}: element {i}: 4-row entry {expected[i]:X4}, 1-row entry {actual[i]:X4}");
        for (int i = 0; i < covered; i++)
            Assert.True(actual[i] != GroupedGemmGemvTileMapTests.PoisonBits, $"{what}: element {i} of an expert's rows was not written");
    }
}
