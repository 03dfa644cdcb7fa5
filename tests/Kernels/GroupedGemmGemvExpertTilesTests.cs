using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The tile map of many experts (<c>expert_tiles.cuh</c>'s find_expert_tile, which the GEMV uses; run them with
/// MOE_EXPERT_TILES_WALK=parallel too): with E = 128, 256 and 512 the parallel walk has each lane read E / 32 experts'
/// offsets at once and the serial one walks 4 to 16 chunks, so the cases put rows in the last experts, on the first and last
/// expert of a lane, several m-tiles in one expert, and long runs of empty experts between; E = 130 leaves lanes with no
/// experts and E = 513 takes the serial walk. A wrong expert or row range shows as wrong or unwritten (poisoned) rows.
/// </summary>
public class GroupedGemmGemvExpertTilesTests
{
    public static TheoryData<int, string, string> Cases()
    {
        var data = new TheoryData<int, string, string>();
        foreach (int experts in new[] { 128, 130, 256, 512, 513 })
            foreach (string pattern in new[] { "last experts", "lane edges", "many tiles late", "random 8", "every expert" })
                foreach (string tile in new[] { GroupedGemmGemv.Variant4Name, GroupedGemmGemv.Variant8Name })
                    data.Add(experts, pattern, tile);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ManyExpertsMatchTheReference(int experts, string pattern, string tile)
    {
        var gpu = Gpu();
        var counts = Counts(experts, pattern, new Random(experts * 31 + pattern.Length));
        RunCase(gpu, new Case($"E={experts}, {pattern}", counts, 12, 24, LeadingRows: 1, TrailingRows: 2), DType.BF16, DType.F32,
            fused: false, rowScale: true, tile);
    }

    [Theory]
    [InlineData("-DEXPERT_TILES_PARALLEL_WALK")] // MOE_EXPERT_TILES_WALK=parallel, the A/B build
    [InlineData("-DGV_MIN_BLOCKS=3")]            // MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS=3
    [InlineData("-DGV_WROWS=8")]                 // MOE_GROUPED_GEMM_GEMV_WROWS=8
    [InlineData("-DGV_BLOCK_TILE_SEARCH")]       // MOE_GROUPED_GEMM_GEMV_TILE_SEARCH=block
    [InlineData("-DGV_TRACE")]                 // MOE_GROUPED_GEMM_GEMV_TRACE=1
    [InlineData("-DGV_TILE_INNER")]            // MOE_GROUPED_GEMM_GEMV_ORDER=tile
    public void TheGemvsSwitchBuildsCompile(string define)
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemmGemv).Assembly, "grouped_gemm_gemv.cu");
        foreach (string architecture in new[] { "sm_80", "sm_90" })
            Assert.Contains(".entry grouped_gemm_gemv_bf16_bf16", NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions(architecture, [define])));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("serial", false)]
    [InlineData(" parallel ", true)]
    public void TheWalkSwitchParses(string? value, bool parallel) => Assert.Equal(parallel, ExpertTilesWalk.ParseParallel(value));

    [Theory]
    [InlineData(null, GroupedGemmGemv.AutoWRows, false)]
    [InlineData("8", 8, false)]
    [InlineData("4", 4, true)]
    public void TheWRowsAndTileSearchSwitchesParse(string? wrows, int expected, bool block)
    {
        Assert.Equal(expected, GroupedGemmGemv.ParseWRows(wrows));
        Assert.Equal(block, GroupedGemmGemv.ParseTileSearch(block ? "block" : "warp"));
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_WROWS", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseWRows("6")).Message);
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_TILE_SEARCH", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseTileSearch("grid")).Message);
    }

    [Theory]
    [InlineData(null, 1)]
    [InlineData("3", 3)]
    public void TheMinBlocksSwitchParses(string? value, int blocks) => Assert.Equal(blocks, GroupedGemmGemv.ParseMinBlocks(value));

    [Theory]
    [InlineData("0")]
    [InlineData("five")]
    public void ABadMinBlocksValueNamesTheVariable(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseMinBlocks(value)).Message);

    [Fact]
    public void ABadWalkNamesTheVariable() =>
        Assert.Contains("MOE_EXPERT_TILES_WALK", Assert.Throws<ArgumentException>(() => ExpertTilesWalk.ParseParallel("chunked")).Message);

    private static Accelerator Gpu() => TestDevices.Get("cuda:0");

    internal static int[] Counts(int experts, string pattern, Random random)
    {
        var counts = new int[experts];
        int per = (experts + 31) / 32; // experts per lane in the one-round-trip walk
        switch (pattern)
        {
            case "last experts": // all tiles in the last chunk of 32 and the last lane
                counts[experts - 1] = 1;
                counts[experts - 2] = 3;
                counts[experts - 5] = 2;
                break;
            case "lane edges": // the first and the last expert of lanes, empty lanes between
                for (int lane = 1; lane < 32; lane += 3)
                {
                    if (lane * per < experts)
                        counts[lane * per] = 1 + lane % 3;
                    if (Math.Min(experts, (lane + 1) * per) - 1 is var last && last > lane * per)
                        counts[last] = 2;
                }
                break;
            case "many tiles late": // one expert of 4 and 8 m-tiles after a long run of empty ones, then a 1-row one
                counts[experts * 3 / 4] = 13;
                counts[experts - 3] = 33;
                counts[experts - 1] = 1;
                break;
            case "random 8": // T = 1: 8 distinct experts
                foreach (int e in Enumerable.Range(0, experts).OrderBy(_ => random.Next()).Take(8))
                    counts[e] = 1;
                break;
            case "every expert": // every lane's every expert has tiles
                for (int e = 0; e < experts; e++)
                    counts[e] = 1 + (e % 5 == 0 ? 4 : 0);
                break;
            default:
                throw new ArgumentException(pattern, nameof(pattern));
        }
        return counts;
    }
}
