using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The 4-row decode GEMV reading its m-tiles from the map (GroupedGemmOptions.TileMap, the -DGV_TILE_MAP build) gives
/// bit for bit what it gives searching the offsets, at E = 8, 128 and 256, with one row per active expert (T = 1) and
/// several (several m-tiles in an expert), plain and fused SiLU-and-mul, with and without a row scale; both runs start
/// from poisoned outputs, and the rows of the experts must be written. The 8-row GEMV ignores the map.
/// </summary>
public class GroupedGemmGemvTileMapTests
{
    public static TheoryData<int, string, bool, bool> Cases()
    {
        var data = new TheoryData<int, string, bool, bool>();
        foreach (int experts in new[] { 8, 128, 256 })
            foreach (string rows in new[] { "one row", "several rows" })
                foreach (bool fused in new[] { false, true })
                    data.Add(experts, rows, fused, !fused);
        data.Add(128, "one row", true, true);
        data.Add(256, "several rows", false, false);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheMapGivesTheSameOutputAsTheSearch(int experts, string rows, bool fused, bool rowScale)
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var counts = RowCounts(random, experts, rows);
        var shape = new Case($"E={experts} {rows}", counts, fused ? 2 * 40 : 72, 264, TrailingRows: 3);
        foreach (string variant in new[] { GroupedGemmGemv.Variant4Name, GroupedGemmGemv.Variant8Name })
        {
            var (without, covered) = Run(gpu, shape, fused, rowScale, variant, withMap: false, seed);
            var (with, _) = Run(gpu, shape, fused, rowScale, variant, withMap: true, seed);
            string what = $"{shape.Name} fused={fused} scaled={rowScale} {variant}, seed {seed}";
            for (int i = 0; i < without.Length; i++)
                Assert.True(without[i] == with[i], $"{what}: element {i}: search {without[i]:X4}, map {with[i]:X4}");
            for (int i = 0; i < covered; i++)
                Assert.True(with[i] != PoisonBits, $"{what}: element {i} of an expert's rows was not written");
        }
    }

    [Theory]
    [InlineData("-DGV_TILE_MAP")]
    [InlineData("-DGV_TILE_MAP", "-DGV_TRACE")]
    [InlineData("-DGV_TILE_MAP", "-DGV_BLOCK_TILE_SEARCH")]
    public void TheMapBuildsCompile(params string[] defines)
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemmGemv).Assembly, "grouped_gemm_gemv.cu");
        foreach (string architecture in new[] { "sm_80", "sm_90" })
        {
            string ptx = NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions(architecture, defines));
            Assert.Contains(".entry grouped_gemm_gemv_bf16_bf16", ptx);
            Assert.Contains(".entry grouped_gemm_gemv8_bf16_bf16", ptx);
            Assert.Contains(".entry grouped_gemm_gemv1_bf16_bf16", ptx);
        }
    }

    /// <summary>
    /// Rows an expert: "one row" is T = 1's top-8 (one row in each of 8 random experts, all of them for E = 8); "several
    /// rows", 0 to 9 an expert (empty experts, partial and several m-tiles).
    /// </summary>
    internal static int[] RowCounts(Random random, int experts, string rows)
    {
        var counts = new int[experts];
        if (rows == "one row")
            foreach (int e in Enumerable.Range(0, experts).OrderBy(_ => random.Next()).Take(8))
                counts[e] = 1;
        else
            for (int e = 0; e < experts; e++)
                counts[e] = random.Next(3) == 0 ? 0 : random.Next(1, 10);
        return counts;
    }

    internal const ushort PoisonBits = 0x7FC0; // TestData.Poison's bf16 NaN

    // bf16 in, bf16 out, from a poisoned output; returns the output's bits and how many leading elements the experts' rows
    // cover. The GEMV's W rows, prefetch and 1-row tests use it too (wRows: GroupedGemmOptions.GemvWRowsOverride; prefetch:
    // PrefetchBeforeWait; maxRowsPerExpert: MaxRowsPerExpert, with variant null for the heuristic's pick).
    internal static (ushort[] Bits, int Covered) Run(Accelerator gpu, Case shape, bool fused, bool rowScale, string? variant, bool withMap, int seed,
                                                     int? wRows = null, bool prefetch = false, int? maxRowsPerExpert = null)
    {
        var random = new Random(seed); // the same inputs for every run
        int experts = shape.Counts.Length, covered = shape.Counts.Sum(), rows = covered + shape.TrailingRows;
        int outCols = fused ? shape.N / 2 : shape.N;
        var offsets = new int[experts + 1];
        for (int e = 0; e < experts; e++)
            offsets[e + 1] = offsets[e] + shape.Counts[e];
        using var x = Upload(gpu, Rounded(TestData.Uniform(random, rows * shape.K), DType.BF16), DType.BF16);
        using var w = Upload(gpu, Rounded(TestData.Uniform(random, experts * shape.N * shape.K), DType.BF16), DType.BF16);
        var scales = TestData.Uniform(random, rows, 0.1f, 1.5f);
        using var scaleBuffer = rowScale ? gpu.Upload<float>(scales) : null;
        using var offsetsBuffer = gpu.Upload<int>(offsets);
        var map = new int[(int)Permute.TileMapElements(rows, experts)];
        Permute.WriteTileMapCpu(offsets, Permute.DefaultTileRows, map);
        using var mapBuffer = withMap ? gpu.Upload<int>(map) : null;
        using var y = gpu.Allocate<BFloat16>((long)rows * outCols);
        TestData.Poison(y);
        GroupedGemm.Run(gpu, x, w, offsetsBuffer, y, shape.N, shape.K, new GroupedGemmOptions
        {
            FusedSiluAndMul = fused, RowScale = scaleBuffer, VariantOverride = variant, TileMap = mapBuffer, GemvWRowsOverride = wRows,
            PrefetchBeforeWait = prefetch, MaxRowsPerExpert = maxRowsPerExpert,
        });
        gpu.Synchronize();
        return (y.ToArray().Select(v => v.Bits).ToArray(), covered * outCols);
    }
}
