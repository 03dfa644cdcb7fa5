using System.Text.RegularExpressions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Tests.Accelerators;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// grouped_gemm.cu, grouped_gemm_gemv.cu, grouped_gemm_wgmma.cu, grouped_gemm_skinny.cu and topk_routing.cu compile one
/// dtype's (or dtype pair's) entries a build, the last two only the entry's tile or group of it, so a first use on a
/// machine compiles a fraction of each. Each build the host asks for must hold the entries it is asked for and no others
/// of another dtype (or tile, or group), and the builds together must hold the whole source's entries. NVRTC only, no GPU.
/// </summary>
public sealed class OneDtypeBuildTests
{
    [Fact]
    public void EachGroupedGemmPairBuildHoldsExactlyThatPairsEntries()
    {
        NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm.cu");
        // The whole source's entries without compiling it all (17 s): the pairs its GG_VARIANTS lines instantiate.
        var instantiated = Regex.Matches(source.Text, @"^GG_VARIANTS\((\w+),", RegexOptions.Multiline).Select(m => m.Groups[1].Value);
        var all = instantiated.SelectMany(pair => GroupedGemm.Variants.Select(v => $"grouped_gemm_{v.Name}_{pair}")).Append("grouped_gemm_f32");
        var pairs = new[] { DType.BF16, DType.F16 }.SelectMany(x => new[] { DType.BF16, DType.F16, DType.F32 }.Select(y => (x, y)))
            .Append((DType.F32, DType.F32));
        var seen = new List<string>();
        foreach (var (operands, output) in pairs)
        {
            var built = Entries(source, GroupedGemm.BuildOptions(operands, output));
            var expected = operands == DType.F32
                ? GroupedGemm.Variants.Take(1).Select(v => GroupedGemm.EntryName(v, operands, output)).ToHashSet()
                : GroupedGemm.Variants.Select(v => GroupedGemm.EntryName(v, operands, output)).ToHashSet();
            Assert.True(expected.SetEquals(built), $"{operands}->{output}: built [{string.Join(' ', built)}], the host asks for [{string.Join(' ', expected)}]");
            seen.AddRange(built);
        }
        Assert.Equal(all.Order(), seen.Order());
    }

    /// <summary>
    /// topk_routing.cu builds one logits dtype's entries of one group (lanes{n}, persistent, teams, thread): the build the
    /// host asks for an entry holds it and only entries of its dtype and group, and the builds together hold the source.
    /// </summary>
    [Fact]
    public void EachRoutingBuildHoldsItsEntrysDtypeAndGroupAlone()
    {
        NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(TopKRouting).Assembly, "topk_routing.cu");
        var all = Entries(source, []);
        Assert.Equal(55, all.Count);
        static string DTypeOf(string entry) => Regex.Match(entry, "_(f32|bf16|f16)(_|$)").Groups[1].Value;
        var seen = new HashSet<string>();
        var builds = new Dictionary<string, HashSet<string>>();
        foreach (string entry in all.Order())
        {
            var dtype = DTypeOf(entry) switch { "f32" => DType.F32, "bf16" => DType.BF16, _ => DType.F16 };
            var options = TopKRouting.BuildOptions(entry, dtype, sigmoidByDivision: false);
            Assert.Equal([.. options, "-DROUTING_SIGMOID_DIVISION"], TopKRouting.BuildOptions(entry, dtype, sigmoidByDivision: true));
            string key = string.Join(' ', options);
            if (!builds.TryGetValue(key, out var built))
                builds[key] = built = Entries(source, options);
            Assert.Contains(entry, built);
            Assert.All(built, other => Assert.True(DTypeOf(other) == DTypeOf(entry) && TopKRouting.GroupOf(other) == TopKRouting.GroupOf(entry),
                $"{entry}'s build ({key}) also holds {other}"));
            seen.UnionWith(built);
        }
        Assert.Equal(all.Order(), seen.Order());
        Assert.All(builds.Values, built => Assert.InRange(built.Count, 1, 3));
        Assert.Throws<ArgumentException>(() => TopKRouting.GroupOf("grouped_gemm_f32"));
    }

    /// <summary>grouped_gemm_skinny.cu builds one entry a build: a partial tile of one operand dtype, or one output's reduce.</summary>
    [Fact]
    public void EachSkinnyBuildHoldsItsTileOrReduceAlone()
    {
        NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm_skinny.cu");
        var seen = new List<string>();
        foreach (var operands in new[] { DType.BF16, DType.F16 })
        {
            foreach (var tile in GroupedGemmSkinny.Tiles.Concat(GroupedGemmSkinny.WideTiles))
            {
                string entry = GroupedGemmSkinny.PartialEntryName(tile, operands);
                Assert.Equal([entry], Entries(source, GroupedGemmSkinny.PartialBuildOptions(tile, operands)).ToArray());
                seen.Add(entry);
            }
        }
        foreach (var output in new[] { DType.F32, DType.BF16, DType.F16 })
        {
            string entry = GroupedGemmSkinny.ReduceEntryName(output);
            Assert.Equal([entry], Entries(source, GroupedGemmSkinny.ReduceBuildOptions(output)).ToArray());
            seen.Add(entry);
        }
        // Every entry of the source is in one build: the tiles of both operand dtypes and the three reduces.
        Assert.Equal(Entries(source, []).Order(), seen.Order());
    }

    [Fact]
    public void EachGemvPairBuildHoldsThatPairsThreeEntries()
    {
        NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm_gemv.cu");
        var seen = new List<string>();
        foreach (var (operands, output) in HalfPairs())
        {
            // The tile map's build: the options of the layer's launches (the plain build differs only in GV_TILE_MAP).
            var built = Entries(source, GroupedGemmGemv.BuildOptions(operands, output, wRows: 4, traced: false, tileMap: true));
            var expected = new[] { GroupedGemmGemv.TileRows, GroupedGemmGemv.WideTileRows, GroupedGemmGemv.SingleTileRows }
                .Select(rows => GroupedGemmGemv.EntryName(operands, output, rows)).ToHashSet();
            Assert.True(expected.SetEquals(built), $"{operands}->{output}: built [{string.Join(' ', built)}], the host asks for [{string.Join(' ', expected)}]");
            seen.AddRange(built);
        }
        Assert.Equal(6 * 3, seen.Distinct().Count());
    }

    /// <summary>
    /// The wgmma kernel's entries come from their pair's build, its debug entries from the whole source. Hopper-only code
    /// sits behind __CUDA_ARCH_FEAT_SM90_ALL, so compute_90 PTX (which NVRTC 11.8 can make) still shows every entry.
    /// </summary>
    [Fact]
    public void EachWgmmaPairBuildHoldsThatPairsEntryAlone()
    {
        NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm_wgmma.cu");
        var all = Entries(source, []);
        var seen = new List<string>();
        foreach (var (operands, output) in HalfPairs())
        {
            string entry = GroupedGemmWgmma.EntryName(operands, output);
            var built = Entries(source, GroupedGemmWgmma.PairBuildOf(entry));
            Assert.Equal([entry], built.ToArray());
            seen.Add(entry);
        }
        var debug = all.Except(seen).ToList();
        Assert.Equal(["grouped_gemm_wgmma_debug_mma_bf16", "grouped_gemm_wgmma_debug_tma"], debug.Order());
        Assert.All(debug, entry => Assert.Empty(GroupedGemmWgmma.PairBuildOf(entry)));
    }

    /// <summary>permute.cu builds a one-kernel entry alone, or the separate kernels with their gathers (the chain).</summary>
    [Fact]
    public void EachPermuteBuildHoldsItsOneKernelEntryOrTheChain()
    {
        NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(MoeRuntime.Kernels.Permute.Permute).Assembly, "permute.cu");
        var all = Entries(source, []);
        var seen = new HashSet<string>();
        foreach (string entry in all.Order())
        {
            var options = MoeRuntime.Kernels.Permute.Permute.BuildOptions(entry, matchInstruction: false);
            Assert.Equal([.. options, "-DPERMUTE_MATCH_INSTRUCTION"], MoeRuntime.Kernels.Permute.Permute.BuildOptions(entry, matchInstruction: true));
            var built = Entries(source, options);
            if (entry.StartsWith("permute_one_kernel_", StringComparison.Ordinal))
                Assert.Equal([entry], built.ToArray());
            else
                Assert.True(built.Contains(entry) && built.All(e => !e.StartsWith("permute_one_kernel_", StringComparison.Ordinal)),
                    $"{entry}'s build holds [{string.Join(' ', built)}]");
            seen.UnionWith(built);
        }
        Assert.Equal(all.Order(), seen.Order());
    }

    private static IEnumerable<(DType Operands, DType Output)> HalfPairs() =>
        new[] { DType.BF16, DType.F16 }.SelectMany(x => new[] { DType.BF16, DType.F16, DType.F32 }.Select(y => (x, y)));

    /// <summary>The entry points of <paramref name="source"/> built with <paramref name="options"/> (PTX for compute_90: no ptxas).</summary>
    private static HashSet<string> Entries(KernelSource source, IReadOnlyList<string> options)
    {
        string ptx = NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions("compute_90", options));
        return Regex.Matches(ptx, @"\.entry\s+(\w+)").Select(m => m.Groups[1].Value).ToHashSet();
    }
}
