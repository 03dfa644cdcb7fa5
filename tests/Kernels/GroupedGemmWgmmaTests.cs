using System.Text.RegularExpressions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The sm_90a grouped GEMM (<see cref="GroupedGemmWgmma"/>: TMA, mbarrier pipeline, wgmma) against the F64 reference,
/// with the bounds of <see cref="GroupedGemmTests"/> (bf16 operands 1e-2, f16 2e-3) and poisoned outputs: rows outside
/// every expert must stay NaN. The CUDA cases run on a compute capability 9.0 device and skip elsewhere with the reason;
/// the host-side checks run everywhere.
/// </summary>
public class GroupedGemmWgmmaTests
{
    // Tile 128 x 256 (fused: 128 output columns), BK = 64: the awkward cases sit around those sizes.
    internal static readonly Case[] Shapes =
    [
        new("one expert, one row", [1], 8, 8),
        new("K below one step, N below one box", [3], 24, 40),
        new("empty and 1-row experts, N and K tails", [3, 0, 17, 1, 0], 72, 40),
        new("rows outside the experts", [5, 9], 24, 16, LeadingRows: 3, TrailingRows: 4),
        new("exactly one tile", [128], 256, 64),
        new("rows not a multiple of 128", [129, 1, 255, 0, 300], 136, 104, LeadingRows: 2, TrailingRows: 5),
        new("several column tiles with a tail, K tail", [70, 200], 520, 200),
        new("long K", [150, 40], 264, 1032),
        new("many small experts", [2, 1, 0, 0, 3, 1, 0, 2, 7, 0, 1, 1], 200, 136),
        new("big and empty experts", [0, 520, 0, 0, 131, 0], 392, 256, TrailingRows: 7),
        new("small tiles around the 16-row boxes", [16, 17, 63, 64, 65, 1, 0, 33, 15], 136, 200, LeadingRows: 1, TrailingRows: 2),
    ];

    public static TheoryData<int, string, string> Cases()
    {
        var data = new TheoryData<int, string, string>();
        for (int shape = 0; shape < Shapes.Length; shape++)
            foreach (var (operands, output) in new[] { ("bf16", "bf16"), ("bf16", "f32"), ("f16", "f16"), ("f16", "f32"), ("bf16", "f16"), ("f16", "bf16") })
                data.Add(shape, operands, output);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void WgmmaMatchesTheReference(int shape, string operands, string output)
    {
        var gpu = Hopper(DTypes.Parse(operands));
        RunCase(gpu, Shapes[shape], DTypes.Parse(operands), DTypes.Parse(output), fused: false, rowScale: false, GroupedGemmWgmma.VariantName);
    }

    [Fact]
    public void WgmmaRowScaleAndFusedSiluAndMul()
    {
        var gpu = Hopper(DType.BF16);
        RunCase(gpu, new Case("wgmma scaled", [12, 0, 131, 31], 264, 72, LeadingRows: 1), DType.BF16, DType.BF16, fused: false, rowScale: true, GroupedGemmWgmma.VariantName);
        RunCase(gpu, new Case("wgmma fused", [19, 0, 130, 200], 2 * 136, 136), DType.BF16, DType.BF16, fused: true, rowScale: false, GroupedGemmWgmma.VariantName);
        RunCase(gpu, new Case("wgmma fused, odd I, scaled", [7, 133], 2 * 37, 48, TrailingRows: 3), DType.F16, DType.F32, fused: true, rowScale: true, GroupedGemmWgmma.VariantName);
        RunCase(gpu, new Case("wgmma fused, I past one tile", [300], 2 * 300, 64), DType.F16, DType.F16, fused: true, rowScale: true, GroupedGemmWgmma.VariantName);
    }

    /// <summary>E from 1 to 256 with random counts (many empty, some 1-row, some past a tile).</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(128)]
    [InlineData(256)]
    public void WgmmaManyExperts(int experts)
    {
        var gpu = Hopper(DType.BF16);
        var random = TestData.NewRandom(out _);
        var counts = Enumerable.Range(0, experts).Select(_ => random.Next(5) switch
        {
            0 => 0,
            1 => 1,
            2 => random.Next(2, 40),
            _ => random.Next(100, 300),
        }).ToArray();
        if (experts > 32)
            counts = counts.Select(c => c / 8).ToArray(); // keep the F64 reference quick
        RunCase(gpu, new Case($"{experts} experts", counts, 136, 72, TrailingRows: 3), DType.BF16, DType.BF16, fused: false, rowScale: false, GroupedGemmWgmma.VariantName);
    }

    /// <summary>A prefill-sized case: several m-tile groups and column tiles, more tiles than SMs.</summary>
    [Fact]
    public void WgmmaPrefillShape()
    {
        var gpu = Hopper(DType.BF16);
        RunCase(gpu, new Case("prefill", [1100, 0, 1030, 1, 900, 1050], 1032, 520, LeadingRows: 5), DType.BF16, DType.BF16, fused: false, rowScale: false, GroupedGemmWgmma.VariantName);
    }

    /// <summary>Same inputs twice, bit for bit: a race (a stage reused too early) shows as a difference.</summary>
    [Fact]
    public void WgmmaIsDeterministic() =>
        AssertRepeatsGiveTheSameBits(Hopper(DType.BF16), [0, 400, 401, 950], 520, 328, new GroupedGemmOptions { VariantOverride = GroupedGemmWgmma.VariantName }, repeats: 2);

    /// <summary>The work order's group size only reorders tiles: every group size gives the default's exact output.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(16)]
    public void WgmmaGroupSizeDoesNotChangeTheResult(int groupM)
    {
        var gpu = Hopper(DType.BF16);
        var shape = Shapes[5];
        var random = TestData.NewRandom(out int seed);
        int rows = shape.LeadingRows + shape.Counts.Sum() + shape.TrailingRows;
        var x = TestData.ToBf16(TestData.Uniform(random, rows * shape.K));
        var w = TestData.ToBf16(TestData.Uniform(random, shape.Counts.Length * shape.N * shape.K));
        var offsets = new int[shape.Counts.Length + 1];
        offsets[0] = shape.LeadingRows;
        for (int e = 0; e < shape.Counts.Length; e++)
            offsets[e + 1] = offsets[e] + shape.Counts[e];
        float[] Run(int? group)
        {
            GroupedGemmWgmma.GroupMOverride = group;
            try
            {
                using var xs = gpu.Upload<BFloat16>(x);
                using var ws = gpu.Upload<BFloat16>(w);
                using var offs = gpu.Upload<int>(offsets);
                using var y = gpu.Upload<float>(Enumerable.Repeat(float.NaN, rows * shape.N).ToArray());
                GroupedGemm.Run(gpu, xs, ws, offs, y, shape.N, shape.K, new GroupedGemmOptions { VariantOverride = GroupedGemmWgmma.VariantName });
                return y.ToArray();
            }
            finally
            {
                GroupedGemmWgmma.GroupMOverride = null;
            }
        }
        var expected = Run(null);
        var actual = Run(groupM);
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"group size {groupM} changed the output (seed {seed})");
        Assert.Contains(expected, v => !float.IsNaN(v));
    }

    // The epilogues' awkward cases: odd N (rows not 16-byte multiples: the element path), a column tail inside a staged
    // chunk, 16-byte rows with an 8-column tail tile, fused with an odd I, rows of one expert ending mid-warp.
    private static readonly (Case Shape, bool Fused)[] EpilogueShapes =
    [
        (new Case("epilogue: odd N, row tails", [70, 0, 131, 1], 263, 72, LeadingRows: 1, TrailingRows: 2), false),
        (new Case("epilogue: 16-byte rows, 8-column tail tile", [129, 3, 200], 520, 136), false),
        (new Case("epilogue: fused, I past one tile", [19, 130], 2 * 136, 72, TrailingRows: 1), true),
        (new Case("epilogue: fused, odd I", [7, 133], 2 * 37, 48), true),
    ];

    public static TheoryData<string, int, string, string, bool> EpilogueCases()
    {
        var data = new TheoryData<string, int, string, string, bool>();
        foreach (var epilogue in new[] { GroupedGemmWgmma.SmemEpilogue, GroupedGemmWgmma.DirectEpilogue })
            for (int shape = 0; shape < EpilogueShapes.Length; shape++)
                foreach (var (operands, output) in new[] { ("bf16", "bf16"), ("bf16", "f32"), ("f16", "f16") })
                    foreach (bool rowScale in new[] { false, true })
                        data.Add(epilogue, shape, operands, output, rowScale);
        return data;
    }

    /// <summary>Each epilogue (MOE_GROUPED_GEMM_WGMMA_EPILOGUE) against the reference, rows outside the experts poisoned.</summary>
    [Theory, MemberData(nameof(EpilogueCases))]
    public void EachEpilogueMatchesTheReference(string epilogue, int shape, string operands, string output, bool rowScale)
    {
        var gpu = Hopper(DTypes.Parse(operands));
        var (theCase, fused) = EpilogueShapes[shape];
        GroupedGemmWgmma.EpilogueOverride = epilogue;
        try
        {
            RunCase(gpu, theCase with { Name = $"{theCase.Name} ({epilogue} epilogue)" }, DTypes.Parse(operands), DTypes.Parse(output), fused, rowScale,
                GroupedGemmWgmma.VariantName);
        }
        finally
        {
            GroupedGemmWgmma.EpilogueOverride = null;
        }
    }

    /// <summary>The epilogues round the same float values the same way: their outputs are equal bit for bit.</summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void BothEpiloguesGiveTheSameBits(bool fused, bool rowScale)
    {
        var gpu = Hopper(DType.BF16);
        var random = TestData.NewRandom(out int seed);
        const int n = 2 * 264, k = 200;
        int[] offsets = [2, 300, 300, 301, 560];
        int rows = offsets[^1] + 3, outCols = fused ? n / 2 : n;
        var x = TestData.ToBf16(TestData.Uniform(random, rows * k));
        var w = TestData.ToBf16(TestData.Uniform(random, (offsets.Length - 1) * n * k));
        var scales = TestData.Uniform(random, rows, 0.1f, 1.5f);
        BFloat16[] Run(string epilogue)
        {
            GroupedGemmWgmma.EpilogueOverride = epilogue;
            try
            {
                return RunBf16(gpu, x, w, offsets, rowScale ? scales : null, rows * outCols, n, k, fused);
            }
            finally
            {
                GroupedGemmWgmma.EpilogueOverride = null;
            }
        }
        var direct = Run(GroupedGemmWgmma.DirectEpilogue);
        var staged = Run(GroupedGemmWgmma.SmemEpilogue);
        Assert.Contains(direct, v => !float.IsNaN(v));
        Compare.Exact<BFloat16>(direct, staged, $"direct against smem epilogue, fused={fused} scaled={rowScale} seed={seed}");
    }

    // Small tiles (MOE_GROUPED_GEMM_WGMMA_SMALL_TILES): experts of 1-64 rows (one tile: X boxes and the idle warpgroup)
    // whose 16-row boxes end on, just past and just before a box; 65 rows (one tile, both warpgroups); 128 + 20 (a partial
    // last tile with siblings: X boxes only); and a last expert whose boxes run past x's end.
    internal static readonly int[] SmallTileCounts = [1, 16, 17, 31, 48, 64, 65, 0, 7, 128 + 20, 5];

    /// <summary>Random bf16 data over <see cref="SmallTileCounts"/>: 3 rows before the first expert, none after the last.</summary>
    internal sealed record SmallTileData(BFloat16[] X, BFloat16[] W, int[] Offsets, float[] Scales, bool Fused)
    {
        public const int N = 2 * 264, K = 200;
        public int Rows => Offsets[^1];
        public int OutCols => Fused ? N / 2 : N;

        public static SmallTileData Random(Random random, bool fused)
        {
            var offsets = new int[SmallTileCounts.Length + 1];
            offsets[0] = 3;
            for (int e = 0; e < SmallTileCounts.Length; e++)
                offsets[e + 1] = offsets[e] + SmallTileCounts[e];
            int rows = offsets[^1];
            return new SmallTileData(TestData.ToBf16(TestData.Uniform(random, rows * K)), TestData.ToBf16(TestData.Uniform(random, SmallTileCounts.Length * N * K)),
                offsets, TestData.Uniform(random, rows, 0.1f, 1.5f), fused);
        }

        /// <summary>One wgmma call into a poisoned output, with the settings the caller has made.</summary>
        public BFloat16[] Run(Accelerator gpu, bool rowScale, GroupedGemmWorkspace? workspace = null) =>
            RunBf16(gpu, X, W, Offsets, rowScale ? Scales : null, Rows * OutCols, N, K, Fused, workspace);
    }

    /// <summary>
    /// Every order that uses the workspace's tickets (dynamic, bounded, auto) gives the static order's bits, call after
    /// call on one workspace: a launch that left its tickets above zero would hand the next one no work (its rows stay
    /// NaN). GroupedGemmWgmmaTraceTests makes blocks start late, so that the claims move items between blocks.
    /// </summary>
    [Theory]
    [InlineData(false, false, "on")]
    [InlineData(true, true, "on")]
    [InlineData(false, true, "boxes")]
    public void BothSchedulesGiveTheSameBits(bool fused, bool rowScale, string smallTiles)
    {
        var gpu = Hopper(DType.BF16);
        var data = SmallTileData.Random(TestData.NewRandom(out int seed), fused);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 0, 0);
        BFloat16[] Run(GroupedGemmWgmma.Schedule schedule)
        {
            GroupedGemmWgmma.ScheduleOverride = schedule;
            GroupedGemmWgmma.SmallTilesOverride = GroupedGemmWgmma.ParseSmallTiles(smallTiles);
            try
            {
                Assert.Equal(schedule, GroupedGemmWgmma.ScheduleFor(workspace));
                return data.Run(gpu, rowScale, workspace);
            }
            finally
            {
                GroupedGemmWgmma.ScheduleOverride = null;
                GroupedGemmWgmma.SmallTilesOverride = null;
            }
        }
        var expected = Run(GroupedGemmWgmma.Schedule.Static);
        Assert.DoesNotContain(expected.Skip(data.Offsets[0] * data.OutCols), v => float.IsNaN(v));
        foreach (var schedule in new[] { GroupedGemmWgmma.Schedule.Dynamic, GroupedGemmWgmma.Schedule.Bounded(1),
                                         GroupedGemmWgmma.Schedule.Bounded(2), GroupedGemmWgmma.Schedule.Auto })
            for (int call = 0; call < 3; call++)
            {
                Compare.Exact<BFloat16>(expected, Run(schedule),
                    $"{schedule} schedule, call {call} on one workspace, fused={fused} scaled={rowScale} small tiles {smallTiles} seed={seed}");
                Assert.Equal(new int[GroupedGemmWorkspace.TicketInts], workspace.Tickets!.ToArray());
            }
    }

    /// <summary>The register split between the producer and the consumers (an A/B build) changes no bit.</summary>
    [Theory]
    [InlineData(false, 40)]
    [InlineData(true, 40)]
    [InlineData(false, 24)]
    public void TheProducersRegistersChangeNoBit(bool fused, int producer)
    {
        var gpu = Hopper(DType.BF16);
        var data = SmallTileData.Random(TestData.NewRandom(out int seed), fused);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 0, 0);
        var expected = data.Run(gpu, rowScale: true, workspace);
        GroupedGemmWgmma.ProducerRegistersOverride = producer;
        try
        {
            Compare.Exact<BFloat16>(expected, data.Run(gpu, rowScale: true, workspace), $"producer {producer} registers, fused={fused} seed={seed}");
        }
        finally
        {
            GroupedGemmWgmma.ProducerRegistersOverride = null;
        }
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("56", 56)]
    public void TheProducerRegistersSwitchParses(string? value, int? expected) => Assert.Equal(expected, GroupedGemmWgmma.ParseProducerRegisters(value));

    [Theory]
    [InlineData("44")]
    [InlineData("16")]
    [InlineData("many")]
    public void ABadProducerRegistersValueNamesTheVariable(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_PRODUCER_REGS", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseProducerRegisters(value)).Message);

    /// <summary>
    /// Dynamic is the default. Auto stays auto on a workspace of its own and is dynamic on one that shares the device with
    /// another stream's kernels; an order asked for by name is kept either way.
    /// </summary>
    [Fact]
    public void AutoIsDynamicOnAWorkspaceThatSharesTheDevice()
    {
        var gpu = Hopper(DType.BF16);
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 0, 0);
        Assert.Equal(GroupedGemmWgmma.Schedule.Dynamic, GroupedGemmWgmma.ScheduleFor(workspace));
        GroupedGemmWgmma.ScheduleOverride = GroupedGemmWgmma.Schedule.Auto;
        try
        {
            Assert.Equal(GroupedGemmWgmma.Schedule.Auto, GroupedGemmWgmma.ScheduleFor(workspace));
            workspace.SharesDevice = true;
            Assert.Equal(GroupedGemmWgmma.Schedule.Dynamic, GroupedGemmWgmma.ScheduleFor(workspace));
            GroupedGemmWgmma.ScheduleOverride = GroupedGemmWgmma.Schedule.Bounded(1);
            Assert.Equal(GroupedGemmWgmma.Schedule.Bounded(1), GroupedGemmWgmma.ScheduleFor(workspace));
        }
        finally
        {
            GroupedGemmWgmma.ScheduleOverride = null;
        }
    }

    [Fact]
    public void ScheduleIsStaticWithoutTickets()
    {
        Assert.Equal(GroupedGemmWgmma.Schedule.Static, GroupedGemmWgmma.ScheduleFor(null));
        using var cpuWorkspace = GroupedGemmWorkspace.WithCapacity(TestDevices.Get("cpu"), 0, 0);
        Assert.Null(cpuWorkspace.Tickets);
        Assert.Equal(GroupedGemmWgmma.Schedule.Static, GroupedGemmWgmma.ScheduleFor(cpuWorkspace));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("dynamic", "dynamic")]
    [InlineData(" Static ", "static")]
    [InlineData("Auto", "auto")]
    [InlineData("bounded:2", "bounded:2")]
    public void ScheduleEnvironmentValuesParse(string? value, string? expected) =>
        Assert.Equal(expected, GroupedGemmWgmma.ParseSchedule(value)?.ToString());

    [Fact]
    public void TheOrdersCompileOptionsNameTheirParameters()
    {
        Assert.Equal(["-DGW_ORDER_BOUNDED=3"], GroupedGemmWgmma.Schedule.Bounded(3).CompileOptions);
        Assert.Equal(["-DGW_ORDER_BOUNDED=1", "-DGW_ORDER_AUTO"], GroupedGemmWgmma.Schedule.Auto.CompileOptions);
        Assert.Empty(GroupedGemmWgmma.Schedule.Dynamic.CompileOptions);
        Assert.Empty(GroupedGemmWgmma.Schedule.Static.CompileOptions);
    }

    [Theory]
    [InlineData("1")]
    [InlineData("auto:1")]
    [InlineData("bounded")]
    [InlineData("bounded:65")]
    [InlineData("bounded:a")]
    [InlineData("bounded:0")]
    [InlineData("bounded:1:2")]
    [InlineData("static:1")]
    public void BadScheduleEnvironmentValuesAreRejected(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_SCHEDULE", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseSchedule(value)).Message);

    [Theory]
    [InlineData(null, null)]
    [InlineData(" ", null)]
    [InlineData("smem", "smem")]
    [InlineData("Direct", "direct")]
    public void EpilogueEnvironmentValuesParse(string? value, string? expected) => Assert.Equal(expected, GroupedGemmWgmma.ParseEpilogue(value));

    [Fact]
    public void BadEpilogueEnvironmentValuesAreRejected() =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_EPILOGUE", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseEpilogue("tma")).Message);

    /// <summary>Small tiles leave unloaded X rows and idle warpgroups only where no row is stored: every mode gives off's bits.</summary>
    [Theory]
    [InlineData(false, false, "on")]
    [InlineData(true, true, "on")]
    [InlineData(false, true, "on")]
    [InlineData(false, false, "boxes")]
    [InlineData(true, true, "idle")]
    public void SmallTilesGiveTheSameBits(bool fused, bool rowScale, string modeName)
    {
        var mode = GroupedGemmWgmma.ParseSmallTiles(modeName)!.Value;
        var gpu = Hopper(DType.BF16);
        var data = SmallTileData.Random(TestData.NewRandom(out int seed), fused);
        BFloat16[] Run(GroupedGemmWgmma.SmallTileMode smallTiles)
        {
            GroupedGemmWgmma.SmallTilesOverride = smallTiles;
            try
            {
                return data.Run(gpu, rowScale);
            }
            finally
            {
                GroupedGemmWgmma.SmallTilesOverride = null;
            }
        }
        var off = Run(GroupedGemmWgmma.SmallTileMode.Off);
        var on = Run(mode);
        // Rows before the first expert stay poisoned in both; every expert row is written.
        Assert.All(off.Take(data.Offsets[0] * data.OutCols), v => Assert.True(float.IsNaN(v)));
        Assert.DoesNotContain(off.Skip(data.Offsets[0] * data.OutCols), v => float.IsNaN(v));
        Compare.Exact<BFloat16>(off, on, $"small tiles off against {mode}, fused={fused} scaled={rowScale} seed={seed}");
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData(" ", null)]
    [InlineData("auto", null)]
    [InlineData("on", "On")]
    [InlineData("off", "Off")]
    [InlineData("boxes", "Boxes")]
    [InlineData("idle", "Idle")]
    public void SmallTilesEnvironmentValuesParse(string? value, string? expected) =>
        Assert.Equal(expected is null ? null : Enum.Parse<GroupedGemmWgmma.SmallTileMode>(expected), GroupedGemmWgmma.ParseSmallTiles(value));

    [Fact]
    public void BadSmallTilesEnvironmentValuesAreRejected() =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_SMALL_TILES", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseSmallTiles("1")).Message);

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("1", 1)]
    [InlineData("16", 16)]
    public void GroupSizeEnvironmentValuesParse(string? value, int? expected) => Assert.Equal(expected, GroupedGemmWgmma.ParseGroupM(value));

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("many")]
    public void BadGroupSizeEnvironmentValuesAreRejected(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_GROUP_M", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseGroupM(value)).Message);

    [Theory]
    [InlineData(null, GroupedGemmWgmma.MinRows)]
    [InlineData(" ", GroupedGemmWgmma.MinRows)]
    [InlineData("16", 16)]
    [InlineData("64", 64)]
    public void MinRowsEnvironmentValuesParse(string? value, int expected) => Assert.Equal(expected, GroupedGemmWgmma.ParseMinRows(value));

    /// <summary>
    /// The heuristic gives the kernel grouped calls from 12 rows (Mixtral-8x7B at T = 6: 12 rows over 8 experts), where
    /// the GEMV does not take them first; 10 rows (T = 5) stay on the decode tile.
    /// </summary>
    [Fact]
    public void TheHeuristicTakesCallsFromTwelveRows()
    {
        var gpu = Hopper(DType.BF16);
        Assert.Equal(12, GroupedGemmWgmma.HeuristicMinRows);
        Assert.True(GroupedGemmWgmma.ChosenFor(gpu, DType.BF16, 12, 8));
        Assert.True(GroupedGemmWgmma.ChosenFor(gpu, DType.BF16, 32, 8));
        Assert.False(GroupedGemmWgmma.ChosenFor(gpu, DType.BF16, 10, 8));
        Assert.False(GroupedGemmGemv.ChosenFor(DType.BF16, 32, 8, GroupedGemmGemv.DefaultMaxRows, GroupedGemmGemv.Rule.Experts));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("few")]
    public void BadMinRowsEnvironmentValuesAreRejected(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_MIN_ROWS", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseMinRows(value)).Message);

    /// <summary>Captured in a CUDA graph, the kernel follows the offsets in device memory between replays.</summary>
    [Fact]
    public void WgmmaInACudaGraphFollowsTheOffsetsOnTheDevice() =>
        AssertGraphReplaysFollowTheOffsets(Hopper(DType.BF16), rows: 300,
            [[0, 10, 10, 250, 300], [0, 0, 3, 3, 7], [0, 300, 300, 300, 300], [0, 0, 0, 0, 0]], "wgmma graph replay");

    /// <summary>
    /// One wgmma call of 4 experts captured in a CUDA graph with a workspace, replayed once per layout of the offsets
    /// (copied into the captured buffer) into a poisoned output: the rows of the layout match the reference, the rows past
    /// it stay NaN, and <paramref name="afterReplay"/> checks the workspace after each replay.
    /// </summary>
    internal static void AssertGraphReplaysFollowTheOffsets(Accelerator gpu, int rows, int[][] layouts, string label,
                                                            Action<GroupedGemmWorkspace>? afterReplay = null)
    {
        var random = TestData.NewRandom(out int seed);
        const int n = 264, k = 72, experts = 4;
        var xValues = TestData.Uniform(random, rows * k).Select(v => (float)(BFloat16)v).ToArray();
        var wValues = TestData.Uniform(random, experts * n * k).Select(v => (float)(BFloat16)v).ToArray();
        using var x = gpu.Upload<BFloat16>(TestData.ToBf16(xValues));
        using var w = gpu.Upload<BFloat16>(TestData.ToBf16(wValues));
        using var offsets = gpu.Upload<int>(layouts[0]);
        using var y = gpu.Allocate<float>(rows * n);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)gpu.CreateStream();
        // With a workspace the graph's launch claims tiles from its tickets: each replay must find them zeroed by the last.
        using var workspace = GroupedGemmWorkspace.WithCapacity(gpu, 0, 0);
        var options = new GroupedGemmOptions { ValidateOffsets = false, VariantOverride = GroupedGemmWgmma.VariantName, SplitKWorkspace = workspace };
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        stream.BeginCapture();
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        using var graph = stream.EndCapture();
        foreach (var layout in layouts)
        {
            offsets.CopyFrom(layout, 0, stream);
            TestData.Poison(y);
            gpu.Synchronize();
            graph.Launch(stream);
            stream.Synchronize();
            var expected = GroupedGemmCpu.Reference(xValues, wValues, layout, [], n, k, fusedSiluAndMul: false);
            var actual = y.ToArray().Select(v => (double)v).ToArray();
            int covered = layout[^1] * n;
            if (covered > 0)
                Compare.Close(expected.AsSpan(0, covered), actual.AsSpan(0, covered), Compare.Bf16Tolerance,
                    $"{label} with offsets [{string.Join(", ", layout)}] seed={seed}");
            Assert.All(actual.Skip(covered), v => Assert.True(double.IsNaN(v), "a row past offsets[E] was written"));
            afterReplay?.Invoke(workspace);
        }
    }

    // ---- one layer at a time (debug entries of grouped_gemm_wgmma.cu): where to look when the cases above fail ----

    /// <summary>
    /// TMA alone: a 64 x 128 box with the 128-byte swizzle lands in shared memory as rows of 128 bytes whose 16-byte chunk c
    /// sits at chunk c ^ (row % 8), and its parts past K and past the last row are zeros.
    /// </summary>
    [Theory]
    [InlineData(200, 300, 0, 0)]
    [InlineData(200, 300, 192, 250)]   // K tail (columns 192..199 real, the rest zero) and rows past the end
    [InlineData(40, 100, 0, 7)]        // K below one box
    public void DebugTmaBoxLandsSwizzled(int k, int rows, int c0, int c1)
    {
        var gpu = (MoeRuntime.Accelerators.Cuda.CudaAccelerator)Hopper(DType.BF16);
        var random = TestData.NewRandom(out int seed);
        var values = TestData.ToBf16(TestData.Uniform(random, rows * k));
        using var x = gpu.Upload<BFloat16>(values);
        using var output = gpu.Allocate<BFloat16>(128 * 64);
        var map = MoeRuntime.Accelerators.Cuda.CudaTensorMap.EncodeTiled(x, [k, rows], [k * 2L], [64, 128], MoeRuntime.Accelerators.Cuda.TensorMapSwizzle.Bytes128);
        var kernel = GroupedGemmWgmma.LoadKernel(gpu, "grouped_gemm_wgmma_debug_tma");
        kernel.Launch((MoeRuntime.Accelerators.Cuda.CudaStream)gpu.DefaultStream, new Dim3(1), new Dim3(128), 128 * 64 * 2 + 1024, map, c0, c1, output);
        var actual = output.ToArray().Select(v => v.Bits).ToArray();
        int wrong = 0;
        var first = new List<string>();
        for (int r = 0; r < 128; r++)
            for (int c = 0; c < 64; c++)
            {
                int row = c1 + r, col = c0 + c;
                ushort expected = row < rows && col < k ? values[row * k + col].Bits : (ushort)0;
                int at = r * 64 + (((c / 8) ^ (r % 8)) * 8) + c % 8;
                if (actual[at] != expected && wrong++ < 8)
                    first.Add($"box ({r}, {c}) at shared element {at}: expected 0x{expected:x4}, got 0x{actual[at]:x4}");
            }
        Assert.True(wrong == 0, $"{wrong} of 8192 box elements misplaced (k={k} rows={rows} at ({c0}, {c1}), seed={seed}):\n{string.Join("\n", first)}");
    }

    /// <summary>
    /// The descriptors alone: one K step (4 x m64n256k16 over a 64 x 64 slice of x and 256 rows of W) without the
    /// pipeline, stored through the documented accumulator layout, against the F64 product.
    /// </summary>
    [Theory]
    [InlineData(64, 0, 0)]
    [InlineData(40, 16, 128)]   // K tail: both operands zero-filled past K; W rows 128..383 (a second expert's rows are not read: 3-D map)
    public void DebugOneKStepOfWgmma(int k, int row, int wRow)
    {
        var gpu = (MoeRuntime.Accelerators.Cuda.CudaAccelerator)Hopper(DType.BF16);
        var random = TestData.NewRandom(out int seed);
        const int rows = 100, n = 300, experts = 2, expert = 1;
        var xValues = TestData.Uniform(random, rows * k).Select(v => (float)(BFloat16)v).ToArray();
        var wValues = TestData.Uniform(random, experts * n * k).Select(v => (float)(BFloat16)v).ToArray();
        using var x = gpu.Upload<BFloat16>(TestData.ToBf16(xValues));
        using var w = gpu.Upload<BFloat16>(TestData.ToBf16(wValues));
        using var output = gpu.Allocate<float>(64 * 256);
        TestData.Poison(output);
        var mapX = MoeRuntime.Accelerators.Cuda.CudaTensorMap.EncodeTiled(x, [k, rows], [k * 2L], [64, 128], MoeRuntime.Accelerators.Cuda.TensorMapSwizzle.Bytes128);
        var mapW = MoeRuntime.Accelerators.Cuda.CudaTensorMap.EncodeTiled(w, [k, n, experts], [k * 2L, k * 2L * n], [64, 128, 1], MoeRuntime.Accelerators.Cuda.TensorMapSwizzle.Bytes128);
        var kernel = GroupedGemmWgmma.LoadKernel(gpu, "grouped_gemm_wgmma_debug_mma_bf16");
        kernel.Launch((MoeRuntime.Accelerators.Cuda.CudaStream)gpu.DefaultStream, new Dim3(1), new Dim3(128), 128 * 64 * 2 + 256 * 64 * 2 + 1024,
            mapX, mapW, row, wRow, expert, output);
        var actual = output.ToArray().Select(v => (double)v).ToArray();
        var expected = new double[64 * 256];
        for (int r = 0; r < 64; r++)
            for (int c = 0; c < 256; c++)
            {
                int xr = row + r, wr = wRow + c;
                if (xr >= rows || wr >= n)
                    continue;
                double sum = 0;
                for (int kk = 0; kk < Math.Min(k, 64); kk++)
                    sum += (double)xValues[xr * k + kk] * wValues[(expert * n + wr) * k + kk];
                expected[r * 256 + c] = sum;
            }
        Compare.Close(expected, actual, 1e-5, $"one K step of wgmma (k={k}, x rows {row}.., W rows {wRow}.., seed={seed})");
    }

    // ---- host side: runs everywhere ----

    [Fact]
    public void TheSourceDeclaresItNeedsSm90a()
    {
        var source = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm_wgmma.cu");
        Assert.Equal("sm_90a", source.RequiredArchitecture);
    }

    /// <summary>The launcher's tile constants agree with the kernel's #defines.</summary>
    [Fact]
    public void HostConstantsMatchTheKernel()
    {
        string text = KernelSource.FromResource(typeof(GroupedGemm).Assembly, "grouped_gemm_wgmma.cu").Text;
        int Define(string name)
        {
            var match = Regex.Match(text, $@"#define {name} (\d+)");
            Assert.True(match.Success, $"no #define {name}");
            return int.Parse(match.Groups[1].Value);
        }
        Assert.Equal(GroupedGemmWgmma.TileRows, Define("GW_BM"));
        Assert.Equal(GroupedGemmWgmma.TileCols, Define("GW_BN"));
        Assert.Equal(GroupedGemmWgmma.TileK, Define("GW_BK"));
        Assert.Equal(GroupedGemmWgmma.Stages, Define("GW_STAGES"));
        Assert.Equal(GroupedGemmWgmma.Threads, Define("GW_THREADS"));
        Assert.Equal(8, Define("GW_CONSUMER_WARPS"));
        Assert.Equal(128, Define("GW_EPI_ROW_BYTES"));
        Assert.Contains("#define GW_EPI_WARP_BYTES (16 * (GW_EPI_ROW_BYTES + 32))", text);
        Assert.Contains("#define GW_SHARED_BYTES (GW_STAGES * GW_STAGE_BYTES + GW_CONSUMER_WARPS * GW_EPI_WARP_BYTES + 1024 + 256)", text);
        Assert.Equal(16 * (128 + 32), GroupedGemmWgmma.EpilogueBytesPerWarp);
        Assert.Equal(GroupedGemmWgmma.Stages * (GroupedGemmWgmma.TileRows + GroupedGemmWgmma.TileCols) * GroupedGemmWgmma.TileK * 2
            + 8 * GroupedGemmWgmma.EpilogueBytesPerWarp + 1024 + 256, GroupedGemmWgmma.SharedBytes);
        Assert.True(GroupedGemmWgmma.SharedBytes <= 227 * 1024, "the kernel must fit Hopper's 227 KB of shared memory per block");
        foreach (var (operands, output) in new[] { ("bf16", "bf16"), ("bf16", "f32"), ("f16", "f16"), ("f16", "f32"), ("bf16", "f16"), ("f16", "bf16") })
            Assert.Contains($"GW_ENTRY({operands}_{output}, ", text);
    }

    [Fact]
    public void TheCpuIgnoresTheForcedVariantAndStillComputes()
    {
        var cpu = TestDevices.Get("cpu");
        Assert.False(GroupedGemmWgmma.Supports(cpu, DType.BF16, out string reason));
        Assert.Contains("not a CUDA device", reason);
        RunCase(cpu, new Case("wgmma forced on the cpu", [3, 0, 5], 24, 16, TrailingRows: 1), DType.BF16, DType.BF16, fused: false, rowScale: false, GroupedGemmWgmma.VariantName);
    }

    /// <summary>Whatever <see cref="GroupedGemmWgmma.ChosenByHeuristic"/> says, the heuristic never picks it where it cannot run.</summary>
    [Fact]
    public void TheHeuristicPicksItOnlyWhereItRuns()
    {
        var cpu = TestDevices.Get("cpu");
        Assert.False(GroupedGemmWgmma.ChosenFor(cpu, DType.BF16, 16384, 8));
        Assert.Equal(GroupedGemm.ChooseVariant(DType.BF16, 16384, 8).Name, GroupedGemmWgmma.ChoiceName(cpu, DType.BF16, 16384, 8));
        Assert.False(GroupedGemmWgmma.Supports(cpu, DType.F32, out _));
    }

    [Fact]
    public void KMustBeAMultipleOf8()
    {
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate<BFloat16>(4 * 12);
        using var w = cpu.Allocate<BFloat16>(2 * 8 * 12);
        using var o = cpu.Upload<int>(new[] { 0, 2, 4 });
        using var y = cpu.Allocate<BFloat16>(4 * 8);
        var error = Assert.ThrowsAny<ArgumentException>(() =>
            GroupedGemm.Run(cpu, x, w, o, y, 8, 12, new GroupedGemmOptions { VariantOverride = GroupedGemmWgmma.VariantName }));
        Assert.Contains("multiple of 8", error.Message);
    }

    /// <summary>One wgmma call on bf16 data into a poisoned bf16 output of <paramref name="outputLength"/> values, read back.</summary>
    internal static BFloat16[] RunBf16(Accelerator gpu, BFloat16[] x, BFloat16[] w, int[] offsets, float[]? rowScales, int outputLength,
                                      int n, int k, bool fused, GroupedGemmWorkspace? workspace = null)
    {
        using var xs = gpu.Upload<BFloat16>(x);
        using var ws = gpu.Upload<BFloat16>(w);
        using var offs = gpu.Upload<int>(offsets);
        using var scale = rowScales is null ? null : gpu.Upload<float>(rowScales);
        using var y = gpu.Allocate<BFloat16>(outputLength);
        TestData.Poison(y);
        GroupedGemm.Run(gpu, xs, ws, offs, y, n, k, new GroupedGemmOptions
        {
            VariantOverride = GroupedGemmWgmma.VariantName, FusedSiluAndMul = fused, RowScale = scale, SplitKWorkspace = workspace,
        });
        return y.ToArray();
    }

    /// <summary>The CUDA device when it is compute capability 9.0; otherwise the test is skipped with the reason.</summary>
    internal static Accelerator Hopper(DType operands)
    {
        var gpu = TestDevices.Get("cuda:0");
        if (!GroupedGemmWgmma.Supports(gpu, operands, out string reason))
            Assert.Skip(reason);
        return gpu;
    }
}
