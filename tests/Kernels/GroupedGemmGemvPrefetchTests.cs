using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The 4-row decode GEMV's prefetch before its wait (GroupedGemmOptions.PrefetchBeforeWait, the -DGV_PREFETCH_W build):
/// a hint, taken by a grid of one wave, so the output must be the build without it bit for bit, from a poisoned output, at one row an expert and
/// several, plain with a row scale and fused, 4 and 8 W rows, K of 1 to several prefetched segments. The option needs the
/// map; the build without the map does not compile.
/// </summary>
public class GroupedGemmGemvPrefetchTests
{
    [Theory]
    [InlineData(128, "one row", false, 4, 768)]
    [InlineData(128, "one row", true, 4, 2048)]
    [InlineData(128, "one row", false, 8, 768)]
    [InlineData(8, "several rows", false, 4, 2056)]
    [InlineData(24, "several rows", true, 4, 264)]
    [InlineData(24, "several rows", false, 8, 1032)]
    public void PrefetchGivesTheSameBits(int experts, string rows, bool fused, int wRows, int k)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = GroupedGemmGemvTileMapTests.RowCounts(random, experts, rows);
        var shape = new Case($"E={experts} {rows} K={k}", counts, fused ? 2 * 40 : 72, k, TrailingRows: 2);
        var (plain, covered) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant4Name, withMap: true, seed, wRows);
        var (prefetched, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, fused, rowScale: !fused, GroupedGemmGemv.Variant4Name, withMap: true, seed, wRows,
            prefetch: true);
        Assert.Equal(wRows, GroupedGemmGemv.LastRunWRows);
        Assert.True(GroupedGemmGemv.LastRunPrefetched, $"{shape.Name}: a grid this small is one wave; the prefetch build should have run");
        string what = $"{shape.Name} fused={fused} {wRows} W rows, seed {seed}";
        for (int i = 0; i < plain.Length; i++)
            Assert.True(plain[i] == prefetched[i], $"{what}: element {i}: without prefetch {plain[i]:X4}, with {prefetched[i]:X4}");
        for (int i = 0; i < covered; i++)
            Assert.True(prefetched[i] != GroupedGemmGemvTileMapTests.PoisonBits, $"{what}: element {i} of an expert's rows was not written");
    }

    /// <summary>
    /// Only a grid of one wave prefetches: Qwen3-30B-A3B's down at T=1 (8 rows over 128 experts, N = 2048, K = 768: 256
    /// blocks of 8 W rows, one wave on 132 SMs) does, a call of 1792 blocks (N = 7168) does not; both give their bits.
    /// </summary>
    [Theory]
    [InlineData(2048, true)]
    [InlineData(7168, false)]
    public void OnlyAGridOfOneWavePrefetches(int n, bool oneWave)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = GroupedGemmGemvTileMapTests.RowCounts(random, 128, "one row");
        var shape = new Case($"8 rows over 128 experts, N={n}", counts, n, 768);
        var (plain, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, false, rowScale: true, GroupedGemmGemv.Variant4Name, withMap: true, seed, GroupedGemmGemv.AutoWRows);
        var (prefetched, _) = GroupedGemmGemvTileMapTests.Run(gpu, shape, false, rowScale: true, GroupedGemmGemv.Variant4Name, withMap: true, seed,
            GroupedGemmGemv.AutoWRows, prefetch: true);
        if (gpu.Info.MultiprocessorCount == 132)
            Assert.True(oneWave == GroupedGemmGemv.LastRunPrefetched, $"{shape.Name}: prefetched {GroupedGemmGemv.LastRunPrefetched} with {GroupedGemmGemv.LastRunWRows} W rows on {gpu.Info.Name}");
        for (int i = 0; i < plain.Length; i++)
            Assert.True(plain[i] == prefetched[i], $"{shape.Name}, seed {seed}: element {i}: without prefetch {plain[i]:X4}, with {prefetched[i]:X4}");
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void PrefetchWithoutAMapIsRejected(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var x = accelerator.Allocate<BFloat16>(2 * 8);
        using var w = accelerator.Allocate<BFloat16>(8 * 8);
        using var offsets = accelerator.Upload<int>(new[] { 0, 2 });
        using var y = accelerator.Allocate<BFloat16>(2 * 8);
        var error = Assert.Throws<ArgumentException>(() =>
            GroupedGemm.Run(accelerator, x, w, offsets, y, 8, 8, new GroupedGemmOptions { PrefetchBeforeWait = true }));
        Assert.Contains("PrefetchBeforeWait needs options.TileMap", error.Message);
    }

    [Theory]
    [InlineData(null, GemvPrefetchSwitch.DefaultSegments)]
    [InlineData("off", 0)]
    [InlineData("on", GemvPrefetchSwitch.DefaultSegments)]
    [InlineData(" 4 ", 4)]
    [InlineData("64", 64)]
    public void TheSwitchTakesOffOnOrASegmentCount(string? value, int expected) => Assert.Equal(expected, GemvPrefetchSwitch.Parse(value));

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("yes")]
    public void TheSwitchRejectsOtherValuesNamingTheVariable(string value) =>
        Assert.Contains(GemvPrefetchSwitch.VariableName, Assert.Throws<ArgumentException>(() => GemvPrefetchSwitch.Parse(value)).Message);

    [Theory]
    [InlineData("-DGV_TILE_MAP", "-DGV_PREFETCH_W=2")]
    [InlineData("-DGV_TILE_MAP", "-DGV_PREFETCH_W=64", "-DGV_WROWS=8")]
    [InlineData("-DGV_TILE_MAP", "-DGV_PREFETCH_W=1", "-DGV_TILE_INNER")]
    public void ThePrefetchBuildsCompile(params string[] defines)
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemmGemv).Assembly, "grouped_gemm_gemv.cu");
        foreach (string architecture in new[] { "sm_80", "sm_90" })
        {
            string ptx = NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions(architecture, defines));
            Assert.Contains("prefetch.global.L2", ptx);
            Assert.Contains("ld.global.cg.s32", ptx);
        }
    }

    [Fact]
    public void ThePrefetchBuildNeedsTheMap()
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemmGemv).Assembly, "grouped_gemm_gemv.cu");
        var error = Assert.ThrowsAny<Exception>(() => NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions("sm_90", ["-DGV_PREFETCH_W=2"])));
        Assert.Contains("build with GV_TILE_MAP", error.Message);
    }
}
