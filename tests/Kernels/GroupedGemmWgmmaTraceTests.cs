using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The wgmma kernel's traced build (MOE_GROUPED_GEMM_WGMMA_TRACE=1, a diagnostic the benchmarks read): the same bits as
/// the plain build, and one record for every work item, in order in time, naming the expert, rows and column tile the
/// work order gives that item. The trace switch changes the kernel's parameters, so these tests run alone.
/// </summary>
[Collection(ProcessSwitches.Name)]
public sealed class GroupedGemmWgmmaTraceTests
{
    [Theory]
    [InlineData(false, "static")]
    [InlineData(true, "static")]
    [InlineData(false, "dynamic")]
    [InlineData(true, "dynamic")]
    public void TheTraceRecordsEveryItemAndChangesNoBit(bool fused, string schedule)
    {
        var gpu = Hopper(DType.BF16);
        var data = SmallTileData.Random(TestData.NewRandom(out int seed), fused);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 0, 0);
        GroupedGemmWgmma.ScheduleOverride = GroupedGemmWgmma.ParseSchedule(schedule);
        GroupedGemmWgmma.GroupMOverride = GroupM;
        try
        {
            var expected = data.Run(gpu, rowScale: true, workspace);
            using var trace = gpu.Allocate<long>(4096 * GroupedGemmWgmma.TraceValues);
            trace.Clear(gpu.DefaultStream);
            GroupedGemmWgmma.TraceOverride = true;
            GroupedGemmWgmma.TraceBuffer = trace;
            BFloat16[] traced;
            try
            {
                traced = data.Run(gpu, rowScale: true, workspace);
            }
            finally
            {
                GroupedGemmWgmma.TraceOverride = null;
                GroupedGemmWgmma.TraceBuffer = null;
            }
            Compare.Exact<BFloat16>(expected, traced, $"traced build, fused={fused} {schedule}, seed={seed}");
            AssertEveryItemTraced(trace.ToArray(), data, fused, schedule, gpu.Info.MultiprocessorCount);
        }
        finally
        {
            GroupedGemmWgmma.ScheduleOverride = null;
            GroupedGemmWgmma.GroupMOverride = null;
        }
    }

    /// <summary>
    /// The orders where blocks start late (the odd ones, 200 us: GW_LATE_ODD_BLOCKS), as blocks do whose SMs another
    /// kernel holds. Every item runs once, the bits are the static order's, and the tickets are zero again after each
    /// call. Dynamic: the early blocks claim the items the static order would give the late ones. Static and bounded:
    /// every item runs on its own block; bounded:1 also: no item of the second round starts before every item of the
    /// first has (the early blocks waited for the late ones; under the static order the even blocks start their second
    /// items ~200 us before the late blocks start their first). Auto: dynamic where 1 in 16 m-tiles or more is an expert's
    /// only one (the "mixed" counts: 5 of 30), bounded:1 where none is ("multi").
    /// </summary>
    [Theory]
    [InlineData("dynamic", "mixed", "dynamic")]
    [InlineData("static", "mixed", "static")]
    [InlineData("bounded:1", "mixed", "bounded:1")]
    [InlineData("auto", "mixed", "dynamic")]
    [InlineData("auto", "multi", "bounded:1")]
    [InlineData("dynamic", "multi", "dynamic")]
    public void LateBlocksLeaveTheirItemsToTheOthersUnderTheDynamicOrders(string schedule, string countsName, string behaves)
    {
        var gpu = Hopper(DType.BF16);
        var random = TestData.NewRandom(out int seed);
        // mixed: 30 m-tiles x 8 column tiles, 240 items for 132 SMs, so most blocks own two and a late block has items to
        // lose. multi: 33 m-tiles (264 items), every expert two or more.
        int[] counts = countsName == "mixed" ? [300, 0, 1, 700, 64, 65, 900, 5, 130, 128, 255, 450] : [300, 0, 700, 900, 130, 255, 450, 1000];
        var offsets = new int[counts.Length + 1];
        for (int e = 0; e < counts.Length; e++)
            offsets[e + 1] = offsets[e] + counts[e];
        const int n = 2048, k = 128;
        int rows = offsets[^1];
        var x = TestData.ToBf16(TestData.Uniform(random, rows * k));
        var w = TestData.ToBf16(TestData.Uniform(random, counts.Length * n * k));
        var expected = RunBf16(gpu, x, w, offsets, null, rows * n, n, k, fused: false);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 0, 0);
        using var trace = gpu.Allocate<long>(4096 * GroupedGemmWgmma.TraceValues);
        GroupedGemmWgmma.ScheduleOverride = GroupedGemmWgmma.ParseSchedule(schedule);
        GroupedGemmWgmma.LateOddBlocksNsOverride = 200_000;
        GroupedGemmWgmma.TraceOverride = true;
        GroupedGemmWgmma.TraceBuffer = trace;
        try
        {
            for (int call = 0; call < 2; call++)
            {
                trace.Clear(gpu.DefaultStream);
                Compare.Exact<BFloat16>(expected, RunBf16(gpu, x, w, offsets, null, rows * n, n, k, fused: false, workspace),
                    $"{schedule} on {countsName} counts with late odd blocks, call {call}, seed={seed}");
                Assert.Equal(new int[GroupedGemmWorkspace.TicketInts], workspace.Tickets!.ToArray());
                var values = trace.ToArray();
                const int v = GroupedGemmWgmma.TraceValues;
                int work = 0;
                while (values[work * v] != 0)
                    work++;
                int grid = gpu.Info.MultiprocessorCount; // the launcher's: its bound on the items is above the SMs
                Assert.True(work > grid && work <= 2 * grid, $"{work} items for {grid} blocks: not two rounds");
                Assert.All(values.Skip(work * v), value => Assert.Equal(0, value));
                long BlockOf(int t) => values[t * v + 4] & 0xffffffffL;
                int onOtherBlocks = Enumerable.Range(0, work).Count(t => BlockOf(t) != t % grid);
                int onLateBlocks = Enumerable.Range(0, work).Count(t => (BlockOf(t) & 1) == 1);
                if (behaves == "dynamic")
                {
                    // The static order gives the odd blocks half the items; 200 us late, they find all but a few claimed.
                    Assert.True(onOtherBlocks > work / 4, $"{onOtherBlocks} of {work} items ran on a block that does not own them");
                    Assert.True(onLateBlocks < work / 4, $"{onLateBlocks} of {work} items ran on the late blocks");
                }
                else
                    Assert.Equal(0, onOtherBlocks);
                if (behaves == "bounded:1")
                {
                    // Issue stamps (ns); 2 us of slack for the timer's steps and the stamp written just after the count.
                    long lastFirstRound = Enumerable.Range(0, grid).Max(t => values[t * v]);
                    long firstSecondRound = Enumerable.Range(grid, work - grid).Min(t => values[t * v]);
                    Assert.True(firstSecondRound >= lastFirstRound - 2000,
                        $"an item of the second round was issued {(lastFirstRound - firstSecondRound) / 1000.0:F1} us before the first round's last");
                }
            }
        }
        finally
        {
            GroupedGemmWgmma.ScheduleOverride = null;
            GroupedGemmWgmma.LateOddBlocksNsOverride = null;
            GroupedGemmWgmma.TraceOverride = null;
            GroupedGemmWgmma.TraceBuffer = null;
        }
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("0", false)]
    [InlineData(" 1 ", true)]
    public void TheTraceSwitchParses(string? value, bool traced) => Assert.Equal(traced, GroupedGemmWgmma.ParseTrace(value));

    [Fact]
    public void ABadTraceValueNamesTheVariable() =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_TRACE", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseTrace("yes")).Message);

    /// <summary>The traced build takes one parameter more, the trace, after the plain build's last (PTX for compute_90: NVRTC 11.8 cannot assemble sm_90a).</summary>
    [Fact]
    public void TheTracedEntriesTakeTheTraceLast()
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm_wgmma.cu");
        string Ptx(params string[] defines) => NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions("compute_90", defines));
        const string lastPlain = "grouped_gemm_wgmma_bf16_bf16_param_11", trace = "grouped_gemm_wgmma_bf16_bf16_param_12";
        string plain = Ptx(), traced = Ptx("-DGW_TRACE");
        Assert.Contains(lastPlain, plain);
        Assert.DoesNotContain(trace, plain);
        Assert.Contains(".param .u64 " + trace, traced);
    }

    private const int GroupM = 8;

    /// <summary>The work order of grouped_gemm_wgmma.cu on the host: item t's m-tile and column tile.</summary>
    private static (int MTile, int NTile) ItemTile(int t, int mTiles, int nTiles)
    {
        int group = t / (GroupM * nTiles), firstM = group * GroupM, groupM = Math.Min(mTiles - firstM, GroupM);
        int local = t - group * GroupM * nTiles;
        return (firstM + local % groupM, local / groupM);
    }

    private static void AssertEveryItemTraced(long[] values, SmallTileData data, bool fused, string schedule, int blocks)
    {
        // Each expert's m-tiles in order: (expert, rows of the tile).
        var tiles = new List<(int Expert, int Rows)>();
        for (int e = 0; e + 1 < data.Offsets.Length; e++)
            for (int begin = data.Offsets[e]; begin < data.Offsets[e + 1]; begin += GroupedGemmWgmma.TileRows)
                tiles.Add((e, Math.Min(GroupedGemmWgmma.TileRows, data.Offsets[e + 1] - begin)));
        int colsPerTile = fused ? GroupedGemmWgmma.TileCols / 2 : GroupedGemmWgmma.TileCols;
        int nTiles = (data.OutCols + colsPerTile - 1) / colsPerTile, work = tiles.Count * nTiles;
        const int v = GroupedGemmWgmma.TraceValues;
        Assert.True(values.Length >= (work + 1) * v);
        for (int t = 0; t < work; t++)
        {
            string at = $"item {t} of {work} ({schedule}, fused={fused})";
            long issued = values[t * v], start = values[t * v + 1], loopEnd = values[t * v + 2], end = values[t * v + 3];
            Assert.True(issued > 0 && issued <= start && start <= loopEnd && loopEnd <= end, $"{at}: stamps {issued} {start} {loopEnd} {end}");
            var (mTile, nTile) = ItemTile(t, tiles.Count, nTiles);
            long what = values[t * v + 5];
            Assert.Equal((tiles[mTile].Expert, tiles[mTile].Rows, nTile), ((int)(what >> 40), (int)((what >> 20) & 0xfffff), (int)(what & 0xfffff)));
            Assert.InRange(values[t * v + 4] & 0xffffffffL, 0, blocks - 1);
        }
        Assert.All(values.Skip(work * v), value => Assert.Equal(0, value)); // no record past the work
    }
}
