using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The 1-row entry's grid order (GV1_GRID: the blocks of an expert read whole W rows side by side, each warp a share of
/// K). Its sums are the 4-row entry's at a split of 8 warps, so on the GPU its output must be that entry's bit for bit,
/// from a poisoned output: one row an expert and several, plain and fused, with the map and searching, at K of one
/// segment a warp, more, and not a multiple of 2048. Below 8 segments (K &lt; 2048) the call keeps the row order.
/// </summary>
public class GroupedGemmGemvGridOrderTests
{
    public static TheoryData<int, string, bool> Cases()
    {
        var data = new TheoryData<int, string, bool>();
        foreach (int experts in new[] { 8, 128 })
            foreach (string rows in new[] { "one row", "several rows" })
                foreach (bool fused in new[] { false, true })
                    data.Add(experts, rows, fused);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheGridOrderGivesTheFourRowEntrysBitsAtASplitOfEight(int experts, string rows, bool fused)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = GroupedGemmGemvTileMapTests.RowCounts(random, experts, rows);
        foreach (int k in new[] { 2048, 2048 + 264, 4096 })
        {
            // 72 / 80 columns: a last column block of partial quads, and column blocks past the last quad.
            var shape = new Case($"E={experts} {rows} K={k}", counts, fused ? 2 * 40 : 72, k, TrailingRows: 2);
            ushort[] four;
            int covered;
            GroupedGemmGemv.KSplitOverride = GroupedGemmGemv.Warps;
            try
            {
                (four, covered) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant4Name, withMap: true, seed);
            }
            finally
            {
                GroupedGemmGemv.KSplitOverride = null;
            }
            GroupedGemmGemv.GridOrderOverride = true;
            try
            {
                foreach (bool withMap in new[] { true, false })
                {
                    var (grid, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant1Name, withMap, seed);
                    Assert.True(GroupedGemmGemv.LastRunGridOrder, $"{shape.Name}: K = {k} has a segment for each warp; the grid order should have run");
                    for (int i = 0; i < four.Length; i++)
                        Assert.True(four[i] == grid[i], $"{shape.Name} fused={fused} map={withMap} seed {seed}: element {i}: 4-row entry at split 8 {four[i]:X4}, grid order {grid[i]:X4}");
                    for (int i = 0; i < covered; i++)
                        Assert.True(grid[i] != GroupedGemmGemvTileMapTests.PoisonBits, $"{shape.Name}: element {i} of an expert's rows was not written");
                }
            }
            finally
            {
                GroupedGemmGemv.GridOrderOverride = null;
            }
        }
    }

    [Fact]
    public void BelowASegmentAWarpTheCallKeepsTheRowOrder()
    {
        Assert.True(GroupedGemmGemv.GridOrderFor(GroupedGemmGemv.SingleTileRows, 2048) == GroupedGemmGemv.GridOrderSwitch);
        Assert.False(GroupedGemmGemv.GridOrderFor(GroupedGemmGemv.SingleTileRows, 2040));
        Assert.False(GroupedGemmGemv.GridOrderFor(GroupedGemmGemv.TileRows, 4096));
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var shape = new Case("E=128 one row K=768", GroupedGemmGemvTileMapTests.RowCounts(random, 128, "one row"), 72, 768, TrailingRows: 0);
        GroupedGemmGemv.GridOrderOverride = true;
        try
        {
            GroupedGemmGemvTileMapTests.Run(gpu, shape, fused: false, rowScale: true, GroupedGemmGemv.Variant1Name, withMap: true, seed);
            Assert.False(GroupedGemmGemv.LastRunGridOrder, "K = 768 is 3 segments for 8 warps: the row order should have run");
            Assert.True(GroupedGemmGemv.GridOrderFor(GroupedGemmGemv.SingleTileRows, 2048));
        }
        finally
        {
            GroupedGemmGemv.GridOrderOverride = null;
        }
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("rows", false)]
    [InlineData("grid", true)]
    public void TheOrderSwitchParses(string? value, bool grid)
    {
        Assert.Equal(grid, GroupedGemmGemv.ParseGridOrder(value));
        Assert.Contains("MOE_GROUPED_GEMM_GEMV1_ORDER", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseGridOrder("tile")).Message);
    }
}
