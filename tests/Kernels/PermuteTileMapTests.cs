using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Tests.Infrastructure;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Permute's m-tile map (Permute.TileMap.cs) against a reference that searches the offsets for each tile the way
/// find_expert_tile does (the first expert whose tiles hold it), on every accelerator; on CUDA every path (one kernel,
/// separate kernels fused and three) against the CPU twin too. The map starts poisoned, so an entry left unwritten fails.
/// </summary>
// Permute.ForceSeparateKernels and ForceThreeKernels are process-wide: a class that sets them runs alone (ProcessSwitches).
[Collection(ProcessSwitches.Name)]
public class PermuteTileMapTests
{
    public sealed record Case(string Name, int Tokens, int TopK, int Experts, int BlockSize, string Skew = "uniform", int ExtraTiles = 0)
    {
        public override string ToString() => Name;
    }

    private const int Poison = 0x5A5A5A5A;

    public static TheoryData<string, Case> Cases()
    {
        var cases = new[]
        {
            new Case("T1 E8 k2", 1, 2, 8, 1),
            new Case("T1 E128 k8 (Qwen3 decode)", 1, 8, 128, 1),
            new Case("T1 E256 k8 pad 4", 1, 8, 256, 4),
            new Case("T1 E512 k8 pad 16", 1, 8, 512, 16),
            new Case("T3 E128 k8", 3, 8, 128, 1),
            new Case("T16 E8 k2 (Mixtral decode): several rows an expert", 16, 2, 8, 1),
            new Case("all tokens to one expert, E8 k1", 100, 1, 8, 1, "one"),
            new Case("expert 0 in every token, E128 k8 pad 4", 37, 8, 128, 4, "one"),
            new Case("upper half of experts empty, E256 k8 pad 16", 40, 8, 256, 16, "half"),
            new Case("E512 k16 pad 4", 30, 16, 512, 4),
            new Case("dropped ids E128 k8", 20, 8, 128, 1, "dropped"),
            new Case("no tokens E8", 0, 2, 8, 1),
            new Case("no tokens E128 pad 4", 0, 8, 128, 4),
            new Case("a longer map than the bound, E8 k2", 5, 2, 8, 1, ExtraTiles: 7),
            new Case("separate kernels: 16 chunks E128 k8", 1000, 8, 128, 1),
            new Case("separate kernels: 33 chunks E512 k16 pad 4 (three kernels)", 1056, 16, 512, 4),
            new Case("separate kernels: 3 chunks E256 k8 pad 16, upper half empty", 200, 8, 256, 16, "half"),
        };
        return TestDevices.Each(cases);
    }

    /// <summary>Every path's map equals the reference built from its offsets; the other outputs are those of a run without a map.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void TheMapMatchesTheReferenceOnEveryPath(string device, Case c)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        var ids = RandomIds(random, c);
        string what = $"{c.Name} on {device}, seed {seed}";

        var cpu = Run(TestDevices.Context.Cpu, c, ids, withMap: true);
        AssertSame(Run(TestDevices.Context.Cpu, c, ids, withMap: false), cpu, $"{what}: CPU, with the map against without");
        Assert.Equal(Reference(cpu.Offsets, c.Experts, Capacity(c), c.ExtraTiles), cpu.Map!);
        if (accelerator.Kind == AcceleratorKind.Cpu)
            return;

        foreach (var (path, separate, three) in new[] { ("default", false, false), ("separate kernels", true, false), ("three kernels", true, true) })
        {
            Result actual;
            try
            {
                Permute.ForceSeparateKernels = separate;
                Permute.ForceThreeKernels = three;
                actual = Run(accelerator, c, ids, withMap: true);
            }
            finally
            {
                Permute.ForceSeparateKernels = false;
                Permute.ForceThreeKernels = false;
            }
            AssertSame(cpu, actual, $"{what}, {path} path against the CPU twin");
        }
    }

    /// <summary>The hand-worked example of Permute.TileMap.cs: offsets [0, 5, 5, 6] at 4 rows a tile.</summary>
    [Fact]
    public void HandWorkedExample()
    {
        var map = new int[(int)Permute.TileMapElements(6, 3)];
        Assert.Equal(15, map.Length);
        Permute.WriteTileMapCpu([0, 5, 5, 6], 4, map);
        Assert.Equal(new[] { 0, 0, 4, 0, 4, 5, 2, 5, 6, -1, 0, 0, -1, 0, 0 }, map);
    }

    [Fact]
    public void BadMapsAreRejected()
    {
        var cpu = TestDevices.Context.Cpu;
        const int tokens = 3, topK = 2, experts = 8;
        int rows = tokens * topK;
        using var ids = cpu.Upload<int>(new[] { 0, 1, 2, 3, 4, 5 });
        using var counts = cpu.Allocate<int>(experts);
        using var offsets = cpu.Allocate<int>(experts + 1);
        using var rowOfSlot = cpu.Allocate<int>(rows);
        using var tokenOfRow = cpu.Allocate<int>(rows);
        long needed = Permute.TileMapElements(rows, experts);
        Assert.Equal(3L * GroupedGemmLaunch.MTilesBound(rows, experts, 4), needed);
        void RunWith(MemoryBuffer<int> map, int tileRows = Permute.DefaultTileRows) =>
            Permute.Run(ids, tokens, topK, experts, 1, counts, offsets, rowOfSlot, tokenOfRow, tileMap: map, tileRows: tileRows);

        using (var shortMap = cpu.Allocate<int>(needed - 3))
        {
            var error = Assert.Throws<ArgumentException>(() => RunWith(shortMap));
            Assert.Equal("tileMap", error.ParamName);
            Assert.Contains($"{needed} are needed", error.Message);
        }
        using (var ragged = cpu.Allocate<int>(needed + 1))
            Assert.Equal("tileMap", Assert.Throws<ArgumentException>(() => RunWith(ragged)).ParamName);
        using (var map = cpu.Allocate<int>(needed))
        {
            Assert.Equal("tileRows", Assert.Throws<ArgumentOutOfRangeException>(() => RunWith(map, tileRows: 0)).ParamName);
            RunWith(map); // the exact length is accepted
        }

        // The GEMM's option: at least 3 x MTilesBound(rows, E, 4) elements.
        const int n = 8, k = 16;
        using var x = cpu.Allocate<BFloat16>(rows * k);
        using var w = cpu.Allocate<BFloat16>(experts * n * k);
        using var y = cpu.Allocate<BFloat16>(rows * n);
        using var gemmOffsets = cpu.Upload<int>(new[] { 0, 1, 2, 3, 4, 5, 6, 6, 6 });
        using var tooShort = cpu.Allocate<int>(needed - 1);
        var gemmError = Assert.Throws<ArgumentException>(() =>
            GroupedGemm.Run(cpu, x, w, gemmOffsets, y, n, k, new GroupedGemmOptions { TileMap = tooShort }));
        Assert.Equal("options.TileMap", gemmError.ParamName);
        Assert.Contains("MTilesBound", gemmError.Message);
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("", true)]
    [InlineData("off", false)]
    [InlineData(" ON ", true)]
    public void TheSwitchParses(string? value, bool on) => Assert.Equal(on, GemvTileMapSwitch.Parse(value));

    [Fact]
    public void ABadSwitchValueNamesTheVariable() =>
        Assert.Contains("MOE_GEMV_TILE_MAP", Assert.Throws<ArgumentException>(() => GemvTileMapSwitch.Parse("1")).Message);

    private sealed record Result(int[] Counts, int[] Offsets, int[] RowOfSlot, int[] TokenOfRow, int[]? Map);

    private static int Capacity(Case c) => (int)Permute.RowCapacity(c.Tokens, c.TopK, c.Experts, c.BlockSize);

    private static Result Run(Accelerator accelerator, Case c, int[] ids, bool withMap)
    {
        int slots = c.Tokens * c.TopK, capacity = Capacity(c);
        using var idsBuffer = accelerator.Upload<int>(ids.Length == 0 ? [0] : ids);
        using var counts = accelerator.Allocate<int>(c.Experts);
        using var offsets = accelerator.Allocate<int>(c.Experts + 1);
        using var rowOfSlot = accelerator.Allocate<int>(Math.Max(1, slots));
        using var tokenOfRow = accelerator.Allocate<int>(Math.Max(1, capacity));
        using var map = withMap ? accelerator.Allocate<int>(Permute.TileMapElements(capacity, c.Experts) + 3L * c.ExtraTiles) : null;
        map?.Fill(Poison);
        using var workspace = accelerator.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(c.Tokens, c.TopK, c.Experts)));
        Permute.Run(idsBuffer, c.Tokens, c.TopK, c.Experts, c.BlockSize, counts, offsets, rowOfSlot, tokenOfRow,
            workspace: workspace, tileMap: map);
        accelerator.Synchronize();
        return new Result(counts.ToArray(), offsets.ToArray(), rowOfSlot.ToArray()[..slots], tokenOfRow.ToArray()[..capacity], map?.ToArray());
    }

    private static void AssertSame(Result expected, Result actual, string what)
    {
        Assert.True(expected.Counts.SequenceEqual(actual.Counts), $"{what}: expertCounts differ");
        Assert.True(expected.Offsets.SequenceEqual(actual.Offsets), $"{what}: expertOffsets differ");
        Assert.True(expected.RowOfSlot.SequenceEqual(actual.RowOfSlot), $"{what}: rowOfSlot differs");
        Assert.True(expected.TokenOfRow.SequenceEqual(actual.TokenOfRow), $"{what}: tokenOfRow differs");
        if (expected.Map is null || actual.Map is null)
            return;
        for (int i = 0; i < expected.Map.Length; i++)
            Assert.True(expected.Map[i] == actual.Map[i],
                $"{what}: tile {i / 3} entry {i % 3}: expected {expected.Map[i]}, got {actual.Map[i]} (tile {string.Join(", ", actual.Map[(i / 3 * 3)..(i / 3 * 3 + 3)])})");
    }

    /// <summary>Tile i by a search: the first expert whose ceil(rows_e / 4) tiles, counted in expert order, hold i.</summary>
    internal static int[] Reference(int[] offsets, int experts, int rows, int extraTiles)
    {
        int tiles = GroupedGemmLaunch.MTilesBound(rows, experts, Permute.DefaultTileRows) + extraTiles;
        var map = new int[3 * tiles];
        for (int tile = 0; tile < tiles; tile++)
        {
            (int expert, int begin, int end) entry = (-1, 0, 0);
            int before = 0;
            for (int e = 0; e < experts; e++)
            {
                int segment = offsets[e + 1] - offsets[e];
                int owned = (segment + Permute.DefaultTileRows - 1) / Permute.DefaultTileRows;
                if (tile < before + owned)
                {
                    int begin = offsets[e] + (tile - before) * Permute.DefaultTileRows;
                    entry = (e, begin, Math.Min(begin + Permute.DefaultTileRows, offsets[e + 1]));
                    break;
                }
                before += owned;
            }
            (map[3 * tile], map[3 * tile + 1], map[3 * tile + 2]) = entry;
        }
        return map;
    }

    private static int[] RandomIds(Random random, Case c)
    {
        var ids = TokenOpsData.RandomIds(random, c.Tokens, c.TopK, c.Experts, c.Skew == "dropped" ? "uniform" : c.Skew);
        if (c.Skew == "dropped")
            for (int i = 0; i < ids.Length; i++)
                if (random.Next(5) == 0)
                    ids[i] = random.Next(2) == 0 ? -1 : c.Experts + random.Next(3);
        return ids;
    }
}
