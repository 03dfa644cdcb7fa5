using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The bulk-copy decode GEMV (<see cref="GroupedGemmGemvBulk"/>, forced as "gemvbulk") against the F64 reference with
/// the bounds and poisoned outputs of <see cref="GroupedGemmTests"/>. Its work items are (4-row m-tile, chunk of W
/// rows that fills a 32 KB stage, at most 64 rows): the cases put N on and off chunk boundaries (K = 8 and 24: 64-row
/// chunks; K = 768: 21 rows; K = 2048: 8 rows, 4 fused columns; K = 7168: 2 rows, 1 fused column), experts with 5 and 9
/// rows (several m-tiles), empty experts and rows outside every expert, K at the stage limit (16384 plain, 8192 fused),
/// more m-tiles than the producer maps up front (256),
/// and the Qwen3-30B-A3B and DeepSeek-V3 T = 1 shapes with N cut down. The CUDA cases skip without a GPU (and on a GPU
/// before compute capability 9.0 they check the refusal); the rule and switch checks run everywhere.
/// </summary>
public partial class GroupedGemmGemvBulkTests
{
    private const string Bulk = GroupedGemmGemvBulk.VariantName;

    private static readonly Case[] Shapes =
    [
        new("one expert, one row, K = 8", [1], 8, 8),
        new("one row in each of several experts, N past two 64-row chunks", [1, 1, 0, 1, 1], 150, 24),
        new("5 and 9 rows (several m-tiles), empty experts", [5, 0, 9, 0, 1], 70, 40),
        new("K = 8, N tail", [1, 2, 0, 3], 130, 8),
        new("rows outside the experts", [0, 2, 3, 0], 33, 16, LeadingRows: 3, TrailingRows: 4),
        new("K = 768: 21-row chunks with a tail", [1, 9, 1], 50, 768),
        new("K = 2048: 8-row chunks, N tail", [1, 5, 0, 1], 44, 2048),
        new("K at the stage limit (16384: one row a stage)", [1, 0, 5], 5, 16384),
        new("K = 8200: one row a stage (two would not fit)", [2, 1], 7, 8192 + 8),
        new("300 one-row experts: m-tiles past the producer's 256-entry map", Enumerable.Repeat(1, 300).ToArray(), 20, 16),
        new("an expert of 1030 rows: 258 m-tiles, the last ones searched", [2, 1030, 0, 5], 9, 24, LeadingRows: 1),
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
    public void BulkGemvMatchesTheReference(int shape, string operands, string output)
    {
        var gpu = SupportedGpu();
        RunCase(gpu, Shapes[shape], DTypes.Parse(operands), DTypes.Parse(output), fused: false, rowScale: false, Bulk);
    }

    [Fact]
    public void BulkGemvRowScaleAndFusedSiluAndMul()
    {
        var gpu = SupportedGpu();
        RunCase(gpu, new Case("scaled", [1, 0, 6, 1], 72, 136, TrailingRows: 2), DType.BF16, DType.BF16, fused: false, rowScale: true, Bulk);
        RunCase(gpu, new Case("fused, odd I, 64-row chunks", [1, 5, 0, 1], 2 * 37, 48), DType.BF16, DType.BF16, fused: true, rowScale: false, Bulk);
        RunCase(gpu, new Case("fused, I past a chunk (32 columns at K = 40)", [1, 9, 0, 2], 2 * 70, 40), DType.F16, DType.F16, fused: true, rowScale: false, Bulk);
        RunCase(gpu, new Case("fused and scaled, K = 2048 (4 columns a chunk), I tail", [1, 2], 2 * 21, 2048, LeadingRows: 1), DType.F16, DType.F32,
            fused: true, rowScale: true, Bulk);
        RunCase(gpu, new Case("fused and scaled, K at the fused limit (8192: one pair a stage)", [1, 0, 5], 2 * 3, 8192), DType.BF16, DType.F32,
            fused: true, rowScale: true, Bulk);
        RunCase(gpu, new Case("fused and scaled, 5 and 9 rows, K = 8", [5, 0, 9], 2 * 66, 8, TrailingRows: 3), DType.BF16, DType.F16,
            fused: true, rowScale: true, Bulk);
    }

    [Theory]
    [InlineData("bf16", "bf16")]
    [InlineData("f16", "f32")]
    public void BulkGemvRunsQwen3AtOneToken(string operands, string output)
    {
        // Qwen3-30B-A3B: E = 128, top-8, H = 2048, I = 768; N cut down (the kernel's chunks depend on K, not on N).
        var gpu = SupportedGpu();
        var counts = OneRowIn(8, of: 128);
        RunCase(gpu, new Case("Qwen3 T=1 gate_up fused, K = 2048", counts, 2 * 40, 2048), DTypes.Parse(operands), DTypes.Parse(output),
            fused: true, rowScale: false, Bulk);
        RunCase(gpu, new Case("Qwen3 T=1 gate_up plain, K = 2048", counts, 2 * 20 + 6, 2048), DTypes.Parse(operands), DTypes.Parse(output),
            fused: false, rowScale: false, Bulk);
        RunCase(gpu, new Case("Qwen3 T=1 down*w, K = 768", counts, 96, 768), DTypes.Parse(operands), DTypes.Parse(output),
            fused: false, rowScale: true, Bulk);
    }

    [Fact]
    public void BulkGemvRunsDeepSeekV3AtOneToken()
    {
        // DeepSeek-V3: E = 256, top-8, H = 7168, I = 2048; N cut down.
        var gpu = SupportedGpu();
        var counts = OneRowIn(8, of: 256);
        RunCase(gpu, new Case("DeepSeek-V3 T=1 gate_up fused, K = 7168 (one pair a stage)", counts, 2 * 6, 7168), DType.BF16, DType.BF16,
            fused: true, rowScale: false, Bulk);
        RunCase(gpu, new Case("DeepSeek-V3 T=1 down*w, K = 2048", counts, 40, 2048), DType.BF16, DType.BF16, fused: false, rowScale: true, Bulk);
    }

    [Fact]
    public void BulkGemvIsDeterministic() =>
        AssertRepeatsGiveTheSameBits(SupportedGpu(), [0, 5, 6], 64, 4096 + 8, new GroupedGemmOptions { VariantOverride = Bulk });

    [Fact]
    public void KPastTheStageIsRefused()
    {
        var gpu = SupportedGpu();
        var error = Assert.Throws<ArgumentException>(() =>
            RunCase(gpu, new Case("fused K past 8192", [1], 2 * 2, 8192 + 8), DType.BF16, DType.BF16, fused: true, rowScale: false, Bulk));
        Assert.Contains("8192", error.Message);
        // The heuristic keeps the 4-row GEMV there, and takes the bulk kernel with the switch on where K fits.
        Assert.False(GroupedGemmGemvBulk.ChosenFor(gpu, DType.BF16, 8, 256, 8192 + 8, fused: true, switchOn: true, GroupedGemmGemv.DefaultMaxRows));
        Assert.True(GroupedGemmGemvBulk.ChosenFor(gpu, DType.BF16, 8, 256, 7168, fused: true, switchOn: true, GroupedGemmGemv.DefaultMaxRows));
        Assert.False(GroupedGemmGemvBulk.ChosenFor(gpu, DType.BF16, 8, 256, 7168, fused: true, switchOn: false, GroupedGemmGemv.DefaultMaxRows));
    }

    [Fact]
    public void ForcingItBeforeComputeCapabilityNineIsAClearError()
    {
        var ampere = new DeviceInfo("A100", 8, 0, 108, 80L << 30, 40L << 20, 163 * 1024, null);
        Assert.False(GroupedGemmGemvBulk.Supports("cuda:0", AcceleratorKind.Cuda, ampere, DType.BF16, nvrtcMajor: 13, out string reason));
        string message = GroupedGemmGemvBulk.CannotRunMessage(reason);
        Assert.Contains("gemvbulk", message);
        Assert.Contains("compute capability 8.0", message);
        var hopper = ampere with { Name = "H200", ComputeMajor = 9, MaxSharedMemoryPerBlockOptin = 227 * 1024 };
        Assert.True(GroupedGemmGemvBulk.Supports("cuda:0", AcceleratorKind.Cuda, hopper, DType.BF16, nvrtcMajor: 13, out _));
        Assert.False(GroupedGemmGemvBulk.Supports("cuda:0", AcceleratorKind.Cuda, hopper, DType.F32, nvrtcMajor: 13, out _));
        Assert.False(GroupedGemmGemvBulk.Supports("cpu", AcceleratorKind.Cpu, hopper, DType.BF16, nvrtcMajor: 13, out _));
        // NVRTC 11 builds only the trapping body: refused, with the reason.
        Assert.False(GroupedGemmGemvBulk.Supports("cuda:0", AcceleratorKind.Cuda, hopper, DType.BF16, nvrtcMajor: 11, out string old));
        Assert.Contains("NVRTC 11", old);
        // On a real device before 9.0, a forced run fails with that message.
        var gpu = TestDevices.Get("cuda:0");
        if (gpu.Info.ComputeMajor >= 9)
            return;
        var error = Assert.Throws<ArgumentException>(() =>
            RunCase(gpu, new Case("forced on an old device", [1], 8, 8), DType.BF16, DType.BF16, fused: false, rowScale: false, Bulk));
        Assert.Contains("gemvbulk", error.Message);
        Assert.Contains("compute capability", error.Message);
    }

    [Theory]
    [InlineData(8, 128, 2048, true, true, true)]       // Qwen3 T=1 gate_up fused: switch on, K fits
    [InlineData(8, 128, 768, false, true, true)]       // Qwen3 T=1 down
    [InlineData(8, 256, 7168, true, true, true)]       // DeepSeek-V3 T=1 gate_up fused
    [InlineData(2, 8, 14336, false, true, true)]       // Mixtral T=1 down: 14336 <= 16384
    [InlineData(8, 128, 2048, true, false, false)]     // switch off: the 4-row GEMV
    [InlineData(8, 256, 8192 + 8, true, true, false)]  // fused K past 8192
    [InlineData(1, 1, 16384, false, true, true)]       // plain K at the limit
    [InlineData(1, 1, 16384 + 8, false, true, false)]  // plain K past it
    [InlineData(32, 8, 4096, true, true, false)]       // more rows than experts: not the 4-row GEMV's call
    [InlineData(64, 128, 2048, false, true, false)]    // 64 rows: the wgmma kernel's range
    public void TheHeuristicTakesItOnlyWithTheSwitchAndAFittingK(int rows, int experts, int k, bool fused, bool switchOn, bool chosen)
    {
        Assert.Equal(chosen, GroupedGemmGemvBulk.ChosenFor(supported: true, DType.BF16, rows, experts, k, fused, switchOn, GroupedGemmGemv.DefaultMaxRows));
        Assert.False(GroupedGemmGemvBulk.ChosenFor(supported: false, DType.BF16, rows, experts, k, fused, switchOn, GroupedGemmGemv.DefaultMaxRows));
        Assert.False(GroupedGemmGemvBulk.ChosenFor(supported: true, DType.F32, rows, experts, k, fused, switchOn, GroupedGemmGemv.DefaultMaxRows));
        // With the 8-row tile allowed, calls it would take keep the 8-row GEMV.
        if (rows > experts)
            Assert.False(GroupedGemmGemvBulk.ChosenFor(supported: true, DType.BF16, rows, experts, k, fused, switchOn, GroupedGemmGemv.WideTileRows));
        // The CPU never takes it.
        Assert.False(GroupedGemmGemvBulk.ChosenFor(TestDevices.Get("cpu"), DType.BF16, rows, experts, k, fused, switchOn, GroupedGemmGemv.DefaultMaxRows));
    }

    [Fact]
    public void TheSwitchTakesZeroOrOne()
    {
        Assert.False(GroupedGemmGemvBulk.ParseSwitch(null));
        Assert.False(GroupedGemmGemvBulk.ParseSwitch(" "));
        Assert.False(GroupedGemmGemvBulk.ParseSwitch("0"));
        Assert.True(GroupedGemmGemvBulk.ParseSwitch("1"));
        Assert.True(GroupedGemmGemvBulk.ParseSwitch(" 1 "));
        foreach (string bad in new[] { "2", "on", "true", "yes", "-1" })
            Assert.Contains("MOE_GROUPED_GEMM_GEMV_BULK", Assert.Throws<ArgumentException>(() => GroupedGemmGemvBulk.ParseSwitch(bad)).Message);
    }

    [Theory]
    [InlineData(8, false, 64, 64)]       // short rows: capped at 64
    [InlineData(768, false, 21, 21)]     // Qwen3 down: 21 x 1536 bytes
    [InlineData(2048, false, 8, 8)]
    [InlineData(2048, true, 8, 4)]       // Qwen3 gate_up fused: 4 gate + 4 up rows, 4 columns
    [InlineData(7168, true, 2, 1)]       // DeepSeek-V3 gate_up fused: one pair
    [InlineData(14336, false, 1, 1)]     // Mixtral down
    [InlineData(16384, false, 1, 1)]
    [InlineData(8192, true, 2, 1)]
    public void StagesHoldWholeRows(int k, bool fused, int stageRows, int columns)
    {
        Assert.Equal(stageRows, GroupedGemmGemvBulk.StageRows(k, fused));
        Assert.Equal(columns, GroupedGemmGemvBulk.ColumnsPerChunk(k, fused));
        Assert.True(stageRows * 2L * k <= GroupedGemmGemvBulk.StageBytes);
    }

    [Fact]
    public void TheGridIsOneWaveOrTheItems()
    {
        // H200: 132 SMs, 227 KB per block: one 130 KB block per SM.
        Assert.Equal(1, GroupedGemmGemvBulk.BlocksPerSm(227 * 1024));
        // Qwen3 T=1 down: 8 m-tiles x ceil(2048 / 21) = 98 chunks = 784 items: one wave of 132.
        Assert.Equal(132, GroupedGemmGemvBulk.BlocksFor(8, 128, 2048, 768, fused: false, 132, 227 * 1024));
        // One row, 44 columns at K = 2048 (8 a chunk): 6 items, 6 blocks.
        Assert.Equal(6, GroupedGemmGemvBulk.BlocksFor(1, 4, 44, 2048, fused: false, 132, 227 * 1024));
        // Fused, 1 row, I = 3 at K = 8192 (one column a chunk): 3 blocks.
        Assert.Equal(3, GroupedGemmGemvBulk.BlocksFor(1, 1, 3, 8192, fused: true, 132, 227 * 1024));
    }

    [Fact]
    public void TheVariantNameIsKnownToValidation()
    {
        // On the CPU the override is validated (a known name) and ignored.
        var cpu = TestDevices.Get("cpu");
        using var x = cpu.Allocate<BFloat16>(2 * 8);
        using var w = cpu.Allocate<BFloat16>(8 * 8);
        using var offsets = cpu.Upload<int>(new[] { 0, 2 });
        using var y = cpu.Allocate<BFloat16>(2 * 8);
        GroupedGemm.Run(cpu, x, w, offsets, y, 8, 8, new GroupedGemmOptions { VariantOverride = Bulk });
        var error = Assert.Throws<ArgumentException>(() => GroupedGemm.Run(cpu, x, w, offsets, y, 8, 8, new GroupedGemmOptions { VariantOverride = "gemvbulkx" }));
        Assert.Contains($"{GroupedGemmGemv.Variant8Name}, {Bulk}", error.Message);
    }

    /// <summary>One row in each of <paramref name="active"/> random experts of <paramref name="of"/> (T = 1, top-k).</summary>
    private static int[] OneRowIn(int active, int of)
    {
        var random = TestData.NewRandom(out _);
        var counts = new int[of];
        foreach (int e in Enumerable.Range(0, of).OrderBy(_ => random.Next()).Take(active))
            counts[e] = 1;
        return counts;
    }

    /// <summary>The GPU, where it can run the kernel; before compute capability 9.0 the refusal is checked and the test skips.</summary>
    private static Accelerator SupportedGpu()
    {
        var gpu = TestDevices.Get("cuda:0");
        if (!GroupedGemmGemvBulk.Supports(gpu, DType.BF16, out string reason))
            Assert.Skip($"{Bulk} cannot run on {gpu.Name}: {reason}");
        return gpu;
    }
}
