using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;
using static MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The wgmma kernel's paired build (grouped_gemm_wgmma.cu, "Clusters": two blocks a cluster, each W tile multicast into
/// both): against the F64 reference on every shape of <see cref="GroupedGemmWgmmaTests"/>, and bit for bit against the
/// unpaired build where pairs lack their second m-tile (an expert's odd last m-tile, experts of one tile, no work at all).
/// The CUDA cases run on a compute capability 9.0 device and skip elsewhere; the switch's parsing runs everywhere.
/// </summary>
public class GroupedGemmWgmmaClusterTests(ITestOutputHelper output)
{
    public static TheoryData<int, string, string> Cases()
    {
        var data = new TheoryData<int, string, string>();
        for (int shape = 0; shape < Shapes.Length; shape++)
            foreach (var (operands, result) in new[] { ("bf16", "bf16"), ("f16", "f32") })
                data.Add(shape, operands, result);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void PairedBlocksMatchTheReference(int shape, string operands, string result)
    {
        var gpu = Hopper(DTypes.Parse(operands));
        Paired(() => RunCase(gpu, Shapes[shape], DTypes.Parse(operands), DTypes.Parse(result), fused: false, rowScale: false, GroupedGemmWgmma.VariantName));
    }

    [Fact]
    public void PairedBlocksScaleRowsAndFuseSiluAndMul()
    {
        var gpu = Hopper(DType.BF16);
        Paired(() =>
        {
            RunCase(gpu, new Case("paired, scaled", [12, 0, 300, 31, 257], 264, 72, LeadingRows: 1), DType.BF16, DType.BF16, fused: false, rowScale: true, GroupedGemmWgmma.VariantName);
            RunCase(gpu, new Case("paired, fused", [19, 0, 390, 200], 2 * 136, 136), DType.BF16, DType.BF16, fused: true, rowScale: false, GroupedGemmWgmma.VariantName);
            RunCase(gpu, new Case("paired, fused, odd I, scaled", [7, 133, 385], 2 * 37, 48, TrailingRows: 3), DType.F16, DType.F32, fused: true, rowScale: true, GroupedGemmWgmma.VariantName);
        });
    }

    // Units of two m-tiles: 300 rows (a unit of 256, then one of 44 whose second rank has none), 129 (one unit, 1 row on
    // rank 1), 1, 513 (two full units and one row), 256 (exactly one unit), and empty experts between them.
    private static readonly int[] UnitCounts = [300, 0, 129, 1, 0, 513, 256, 65];

    /// <summary>The paired build gives the unpaired build's bits: the same wgmma on the same operands, whatever the pairing.</summary>
    [Theory]
    [InlineData(false, false, "on")]
    [InlineData(true, true, "on")]
    [InlineData(false, true, "off")]
    public void PairedBlocksGiveTheUnpairedBits(bool fused, bool rowScale, string smallTiles)
    {
        var gpu = Hopper(DType.BF16);
        var random = TestData.NewRandom(out int seed);
        const int n = 2 * 264, k = 200, leading = 2;
        var offsets = new int[UnitCounts.Length + 1];
        offsets[0] = leading;
        for (int e = 0; e < UnitCounts.Length; e++)
            offsets[e + 1] = offsets[e] + UnitCounts[e];
        int rows = offsets[^1], outCols = fused ? n / 2 : n;
        var x = TestData.ToBf16(TestData.Uniform(random, rows * k));
        var w = TestData.ToBf16(TestData.Uniform(random, UnitCounts.Length * n * k));
        var scales = TestData.Uniform(random, rows, 0.1f, 1.5f);
        BFloat16[] Run(int cluster)
        {
            GroupedGemmWgmma.ClusterOverride = cluster;
            GroupedGemmWgmma.SmallTilesOverride = GroupedGemmWgmma.ParseSmallTiles(smallTiles);
            try
            {
                return RunBf16(gpu, x, w, offsets, rowScale ? scales : null, rows * outCols, n, k, fused);
            }
            finally
            {
                GroupedGemmWgmma.ClusterOverride = null;
                GroupedGemmWgmma.SmallTilesOverride = null;
            }
        }
        var unpaired = Run(1);
        Assert.DoesNotContain(unpaired.Skip(leading * outCols), v => float.IsNaN(v));
        Compare.Exact<BFloat16>(unpaired, Run(2), $"paired against unpaired, fused={fused} scaled={rowScale} small tiles {smallTiles} seed={seed}");
        // The small-tile data: every expert one unit, most pairs' second rank without rows.
        var small = SmallTileData.Random(random, fused);
        BFloat16[] RunSmall(int cluster)
        {
            GroupedGemmWgmma.ClusterOverride = cluster;
            try
            {
                return small.Run(gpu, rowScale);
            }
            finally
            {
                GroupedGemmWgmma.ClusterOverride = null;
            }
        }
        Compare.Exact<BFloat16>(RunSmall(1), RunSmall(2), $"paired against unpaired on the small tiles, fused={fused} scaled={rowScale} seed={seed}");
    }

    /// <summary>
    /// A workspace asks for the dynamic order, which the pairs cannot share: they walk the static order and leave the
    /// tickets at zero, call after call, inside a CUDA graph too, with offsets that give no work at all.
    /// </summary>
    [Fact]
    public void PairedCallsLeaveTheTicketsAndFollowTheOffsetsInAGraph()
    {
        var gpu = Hopper(DType.BF16);
        GroupedGemmWgmma.ScheduleOverride = GroupedGemmWgmma.Schedule.Dynamic;
        try
        {
            Paired(() => AssertGraphReplaysFollowTheOffsets(gpu, rows: 600,
                [[0, 10, 10, 450, 600], [0, 0, 3, 3, 7], [0, 600, 600, 600, 600], [0, 0, 0, 0, 0], [0, 257, 258, 513, 600]],
                "paired graph replay", workspace => Assert.Equal(new int[GroupedGemmWorkspace.TicketInts], workspace.Tickets!.ToArray())));
        }
        finally
        {
            GroupedGemmWgmma.ScheduleOverride = null;
        }
    }

    /// <summary>
    /// The device runs pairs of the kernel's blocks on at least most of its SMs (the persistent grid's size), and the paired
    /// build keeps every value in registers, as the unpaired one does (a spill in the consumers' loop costs every K step).
    /// </summary>
    [Fact]
    public void PairsOfBlocksFitTheDeviceWithoutSpilling()
    {
        var gpu = (CudaAccelerator)Hopper(DType.BF16);
        string entry = GroupedGemmWgmma.EntryName(DType.BF16, DType.BF16);
        var unpaired = GroupedGemmWgmma.LoadKernel(gpu, entry);
        var paired = GroupedGemmWgmma.LoadKernel(gpu, entry, cluster: 2);
        int pairs = paired.MaxActiveClusters(2, GroupedGemmWgmma.Threads, GroupedGemmWgmma.SharedBytes);
        int sms = gpu.Info.MultiprocessorCount;
        output.WriteLine($"{gpu.Name}: {pairs} pairs of blocks resident at once on {sms} SMs; registers a thread unpaired " +
                         $"{unpaired.Registers} ({unpaired.LocalBytesPerThread} bytes local), paired {paired.Registers} ({paired.LocalBytesPerThread} bytes local)");
        Assert.InRange(pairs, sms / 4, sms / 2);
        Assert.Equal(0, paired.LocalBytesPerThread);
    }

    /// <summary>The override wins over the environment and the default; without either, calls run unpaired.</summary>
    [Fact]
    public void TheOverrideWinsAndTheDefaultIsUnpaired()
    {
        if (GroupedGemmWgmma.ClusterFromEnvironment() is null)
            Assert.Equal(1, GroupedGemmWgmma.ClusterSize);
        Paired(() => Assert.Equal(2, GroupedGemmWgmma.ClusterSize));
        GroupedGemmWgmma.ClusterOverride = 1;
        try
        {
            Assert.Equal(1, GroupedGemmWgmma.ClusterSize);
        }
        finally
        {
            GroupedGemmWgmma.ClusterOverride = null;
        }
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData(" ", null)]
    [InlineData("auto", null)]
    [InlineData("1", 1)]
    [InlineData(" 2 ", 2)]
    public void TheClusterSwitchParses(string? value, int? expected) => Assert.Equal(expected, GroupedGemmWgmma.ParseCluster(value));

    [Theory]
    [InlineData("3")]
    [InlineData("0")]
    [InlineData("pairs")]
    public void ABadClusterValueNamesTheVariable(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_CLUSTER", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseCluster(value)).Message);

    [Theory]
    [InlineData(null, true)]
    [InlineData("1", true)]
    [InlineData(" 0", false)]
    public void TheShareSwitchParses(string? value, bool shares) => Assert.Equal(shares, GroupedGemmWgmma.ParseClusterShare(value));

    [Fact]
    public void ABadShareValueNamesTheVariable() =>
        Assert.Contains("MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE", Assert.Throws<ArgumentException>(() => GroupedGemmWgmma.ParseClusterShare("yes")).Message);

    private static void Paired(Action run)
    {
        GroupedGemmWgmma.ClusterOverride = 2;
        try
        {
            run();
        }
        finally
        {
            GroupedGemmWgmma.ClusterOverride = null;
        }
    }
}
