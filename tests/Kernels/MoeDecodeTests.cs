using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The fused decode op's host side: what it refuses (with the argument named), the splits it takes from the chain it
/// stands for, the down rows it prefetches, its switches. Its results are checked through the layer (MoeLayerFusedDecodeTests).
/// </summary>
public sealed class MoeDecodeTests
{
    [Theory]
    [InlineData(DType.F32, 1, 128, 8, 2048, 768, "f32")]
    [InlineData(DType.BF16, 9, 128, 8, 2048, 768, "9 tokens")]
    [InlineData(DType.BF16, 0, 128, 8, 2048, 768, "0 tokens")]
    [InlineData(DType.BF16, 1, 513, 8, 2048, 768, "513 experts")]
    [InlineData(DType.BF16, 1, 128, 17, 2048, 768, "top-17")]
    [InlineData(DType.BF16, 1, 4, 8, 2048, 768, "top-8 of 4")]
    [InlineData(DType.BF16, 1, 128, 8, 2044, 768, "hidden size 2044")]
    [InlineData(DType.F16, 1, 128, 8, 2048, 100, "intermediate size 100")]
    public void UnsupportedShapesAreNamed(DType dtype, int tokens, int experts, int k, int hidden, int inter, string named)
    {
        var why = MoeDecode.Unsupported(dtype, tokens, experts, k, hidden, inter);
        Assert.NotNull(why);
        Assert.Contains(named, why);
    }

    [Fact]
    public void RealShapesAreSupported()
    {
        Assert.Null(MoeDecode.Unsupported(DType.BF16, 1, 128, 8, 2048, 768));   // Qwen3-30B-A3B
        Assert.Null(MoeDecode.Unsupported(DType.BF16, 8, 256, 8, 7168, 2048));  // DeepSeek-V3
        Assert.Null(MoeDecode.Unsupported(DType.F16, 4, 8, 2, 4096, 14336));    // Mixtral-8x7B
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void RunRefusesBadCallsBeforeAnyLaunch(string deviceName)
    {
        var a = TestDevices.Get(deviceName);
        const int T = 1, H = 64, I = 96, E = 16, K = 4;
        using var hidden = a.Allocate(DType.BF16, T * H);
        using var router = a.Allocate(DType.BF16, E * H);
        using var gateUp = a.Allocate(DType.BF16, E * 2 * I * H);
        using var down = a.Allocate(DType.BF16, E * H * I);
        using var downF16 = a.Allocate(DType.F16, E * H * I);
        using var logits = a.Allocate<float>(T * E);
        using var ids = a.Allocate<int>(T * K);
        using var weights = a.Allocate<float>(T * K);
        using var counts = a.Allocate<int>(E);
        using var act = a.Allocate(DType.BF16, T * K * I);
        using var output = a.Allocate<float>(T * H);
        using var shortOutput = a.Allocate<float>(T * H - 1);
        using var barrier = a.Allocate<int>(1);
        var routing = TopKRoutingOptions.Softmax(K);
        var e1 = Assert.Throws<ArgumentException>(() => MoeDecode.Run(hidden, router, gateUp, downF16, T, H, I, E, routing, logits, ids, weights, counts, act, output, barrier));
        Assert.Contains("down", e1.Message);
        var e2 = Assert.ThrowsAny<ArgumentException>(() => MoeDecode.Run(hidden, router, gateUp, down, T, H, I, E, routing, logits, ids, weights, counts, act, shortOutput, barrier));
        Assert.Contains("output", e2.Message);
        var e3 = Assert.ThrowsAny<ArgumentException>(() => MoeDecode.Run(hidden, router, gateUp, down, T, H, I, E, TopKRoutingOptions.Softmax(E + 1), logits, ids, weights, counts, act, output, barrier));
        Assert.Contains("top-17", e3.Message);
        var e4 = Assert.ThrowsAny<ArgumentException>(() => MoeDecode.Run(hidden, router, gateUp, down, T, H, I, E,
            TopKRoutingOptions.DeepSeek(K, 3, 1, 1f, null), logits, ids, weights, counts, act, output, barrier));
        Assert.Contains("GroupCount", e4.Message);
    }

    [Fact]
    public void ThePlanTakesTheChainsSplits()
    {
        var cpu = TestDevices.Get("cpu");
        using var logits = cpu.Allocate<float>(256);
        // Qwen3-30B-A3B: the dense router GEMV splits K = 2048 eight ways, the grouped GEMV's gate_up and down not at all.
        var qwen = MoeDecode.PlanFor(logits, 1, 2048, 768, 128, TopKRoutingOptions.Softmax(8, renormalize: false));
        Assert.Equal((8, 1, 1, 1, 4, true), (qwen.RouterSplit, qwen.GateUpSplit, qwen.DownSplit, qwen.DownQuads, qwen.PerLane, qwen.Contiguous));
        // DeepSeek-V3: K = 7168 gives gate_up two warps a row; 256 experts are 8 a lane, contiguous (8 groups: a power of two).
        var deepSeek = MoeDecode.PlanFor(logits, 1, 7168, 2048, 256, TopKRoutingOptions.DeepSeek(8, 8, 4, 2.5f, null));
        Assert.Equal((8, 2, 1, 1, 8, true), (deepSeek.RouterSplit, deepSeek.GateUpSplit, deepSeek.DownSplit, deepSeek.DownQuads, deepSeek.PerLane, deepSeek.Contiguous));
        // Mixtral-8x7B: K = 14336 splits down four ways (two groups: a slot each); 8 experts take the strided routing.
        var mixtral = MoeDecode.PlanFor(logits, 1, 4096, 14336, 8, TopKRoutingOptions.Softmax(2));
        Assert.Equal((4, 1, 1, false), (mixtral.DownSplit, mixtral.DownQuads, mixtral.PerLane, mixtral.Contiguous));
        // Top-2 with a short down row: eight groups, four 4-column groups a down item.
        Assert.Equal(4, MoeDecode.PlanFor(logits, 1, 64, 96, 16, TopKRoutingOptions.Softmax(2)).DownQuads);
    }

    [Fact]
    public void GateUpRaisesItsSplitOnlyWhereMostOfTheGridWouldIdle()
    {
        var cpu = TestDevices.Get("cpu");
        using var logits = cpu.Allocate<float>(256);
        var qwen = TopKRoutingOptions.Softmax(8, renormalize: false);
        // A TP rank's slice of Qwen3 (I = 384): 192 items of 8 units for 528 blocks -> split 2, 384 items (1 under
        // MOE_DECODE_GATE_UP_SPLIT=chain).
        Assert.Equal(MoeDecodeSwitch.RaiseGateUpSplit ? 2 : 1, MoeDecode.PlanFor(logits, 1, 2048, 384, 128, qwen, residentBlocks: 528).GateUpSplit);
        // The whole layer: 384 items, more than half the grid: the chain's split.
        Assert.Equal(1, MoeDecode.PlanFor(logits, 1, 2048, 768, 128, qwen, residentBlocks: 528).GateUpSplit);
        // Grid not known: the chain's split.
        Assert.Equal(1, MoeDecode.PlanFor(logits, 1, 2048, 384, 128, qwen).GateUpSplit);
        // A short H (the layer tests' 64) never splits: a warp's share would fall under MinRaisedWarpK.
        Assert.Equal(1, MoeDecode.PlanFor(logits, 1, 64, 96, 16, TopKRoutingOptions.Softmax(2), residentBlocks: 528).GateUpSplit);
        // Raised step by step up to the warps: 8 units, 1 item at split 8 still leaves the grid idle.
        Assert.Equal(MoeDecode.Warps, MoeDecode.GateUpSplitFor(1, 65536, 16, 1, 528));
        Assert.Equal(4, MoeDecode.GateUpSplitFor(1, 2048, 16, 1, 528));   // 2048 / 8 < 512: stops at 4
    }

    /// <summary>The trace's values a block (8 stamps and the SM) are the kernel's MD_TRACE_STAMPS, read from the source.</summary>
    [Fact]
    public void TheTraceStrideIsTheKernels()
    {
        string source = MoeRuntime.Accelerators.Nvrtc.KernelSource.FromResource(typeof(MoeDecode).Assembly, "moe_decode.cu").Text;
        var match = System.Text.RegularExpressions.Regex.Match(source, @"^#define MD_TRACE_STAMPS (\d+)\b", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(match.Success, "moe_decode.cu has no '#define MD_TRACE_STAMPS <number>'");
        Assert.Equal(MoeDecode.TraceStamps, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void TheDownPrefetchTakesWholeRowsUnderItsBudget()
    {
        Assert.Equal(12, MoeDecode.PrefetchLinesFor(1, 8, 2048, 768));     // Qwen3 T=1: 25 MB, every line of the 1.5 KB rows
        Assert.Equal(4, MoeDecode.PrefetchLinesFor(1, 8, 7168, 2048));     // DeepSeek-V3: 32 MB / (57344 rows x 128 B)
        Assert.Equal(0, MoeDecode.PrefetchLinesFor(8, 8, 7168, 2048));     // no whole line fits the budget
    }

    /// <summary>
    /// Unset, the layer fuses one token where its routed experts for it weigh at most 512 MB: Qwen3-30B-A3B (75.5 MB) and every
    /// preset's 2-GPU tensor-parallel slice do, Mixtral-8x7B and DeepSeek-V3 whole (705 MB) run the chain; a set variable wins.
    /// </summary>
    [Theory]
    [InlineData(8, 2048, 768, null, 1)]      // Qwen3-30B-A3B
    [InlineData(8, 2048, 384, null, 1)]      // its TP slice of 2
    [InlineData(2, 4096, 14336, null, 0)]    // Mixtral-8x7B
    [InlineData(2, 4096, 7168, null, 1)]     // its TP slice of 2
    [InlineData(8, 7168, 2048, null, 0)]     // DeepSeek-V3
    [InlineData(8, 7168, 1024, null, 1)]     // its TP slice of 2
    [InlineData(2, 4096, 14336, 1, 1)]       // MOE_DECODE_FUSED=on
    [InlineData(8, 2048, 768, 0, 0)]         // MOE_DECODE_FUSED=off
    [InlineData(8, 2048, 768, 4, 4)]
    public void UnsetTheLayerFusesOneTokenUnderTheSizeRule(int topK, int hidden, int intermediate, int? setting, int maxTokens) =>
        Assert.Equal(maxTokens, MoeDecodeSwitch.MaxTokensFor(MoeDecodeSwitch.ActiveBytes(topK, hidden, intermediate, DType.BF16), setting));

    [Fact]
    public void ActiveBytesRefusesAnEmptyShapeNamingIt()
    {
        Assert.Equal(8L * 3 * 2048 * 768 * 2, MoeDecodeSwitch.ActiveBytes(8, 2048, 768, DType.BF16));
        Assert.Equal("topK", Assert.Throws<ArgumentOutOfRangeException>(() => MoeDecodeSwitch.ActiveBytes(0, 2048, 768, DType.BF16)).ParamName);
        Assert.Equal("hiddenSize", Assert.Throws<ArgumentOutOfRangeException>(() => MoeDecodeSwitch.ActiveBytes(8, -1, 768, DType.BF16)).ParamName);
        Assert.Equal("intermediate", Assert.Throws<ArgumentOutOfRangeException>(() => MoeDecodeSwitch.ActiveBytes(8, 2048, 0, DType.BF16)).ParamName);
    }

    [Fact]
    public void TheSwitchesParse()
    {
        Assert.Null(MoeDecodeSwitch.Parse(null));
        Assert.Null(MoeDecodeSwitch.Parse(" "));
        Assert.Equal(0, MoeDecodeSwitch.Parse("off"));
        Assert.Equal(MoeDecodeSwitch.DefaultMaxTokens, MoeDecodeSwitch.Parse("on"));
        Assert.Equal(4, MoeDecodeSwitch.Parse(" 4 "));
        Assert.Contains("MOE_DECODE_FUSED", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.Parse("9")).Message);
        Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.Parse("fast"));
        Assert.Equal(DecodePrefetch.Late, MoeDecodeSwitch.ParsePrefetch(null));
        Assert.Equal(DecodePrefetch.Late, MoeDecodeSwitch.ParsePrefetch("on"));
        Assert.Equal(DecodePrefetch.Early, MoeDecodeSwitch.ParsePrefetch("Early"));
        Assert.Equal(DecodePrefetch.Off, MoeDecodeSwitch.ParsePrefetch("off"));
        Assert.Contains("MOE_DECODE_PREFETCH", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.ParsePrefetch("2")).Message);
        Assert.Equal(0, MoeDecodeSwitch.ParseBlocksPerSm(null));
        Assert.Equal(2, MoeDecodeSwitch.ParseBlocksPerSm("2"));
        Assert.Contains("MOE_DECODE_BLOCKS_PER_SM", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.ParseBlocksPerSm("0")).Message);
        Assert.True(MoeDecodeSwitch.ParseGateUpSplit(null));
        Assert.False(MoeDecodeSwitch.ParseGateUpSplit("Chain"));
        Assert.Contains("MOE_DECODE_GATE_UP_SPLIT", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.ParseGateUpSplit("2")).Message);
        Assert.Equal(1, MoeDecodeSwitch.ParseUnroll(null));
        Assert.Equal(4, MoeDecodeSwitch.ParseUnroll("4"));
        Assert.Contains("MOE_DECODE_UNROLL", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.ParseUnroll("3")).Message);
    }

    /// <summary>
    /// Every build the host can ask for compiles (CI's NVRTC: the default build alone is in NvrtcTests), and holds its
    /// dtype's entry alone; the source without the dtype macros holds both.
    /// </summary>
    [Theory]
    [InlineData(1, false, 1, false, false)]
    [InlineData(2, true, 1, false, false)]
    [InlineData(4, true, 2, true, false)]
    [InlineData(8, true, 4, false, true)]
    [InlineData(16, false, 2, true, true)]
    public void EveryBuildCompiles(int perLane, bool contiguous, int unroll, bool early, bool traced)
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var plan = new MoeDecode.Plan(8, 1, 1, 1, 12, perLane, contiguous, unroll, early);
        var source = MoeRuntime.Accelerators.Nvrtc.KernelSource.FromResource(typeof(MoeDecode).Assembly, "moe_decode.cu");
        string Entries(IReadOnlyList<string> options) => string.Join(' ', System.Text.RegularExpressions.Regex
            .Matches(MoeRuntime.Accelerators.Nvrtc.NvrtcCompiler.CompileToPtx(source, MoeRuntime.Accelerators.Nvrtc.NvrtcCompiler.DefaultOptions("sm_90", options)), @"\.entry\s+(\w+)")
            .Select(m => m.Groups[1].Value).Order());
        Assert.Equal("moe_decode_bf16", Entries(plan.BuildOptions(DType.BF16, traced)));
        Assert.Equal("moe_decode_f16", Entries(plan.BuildOptions(DType.F16, traced)));
        var both = plan.BuildOptions(DType.BF16, traced).Where(o => !o.StartsWith("-DMD_ONE_DTYPE", StringComparison.Ordinal) && !o.StartsWith("-DMD_DTYPE_", StringComparison.Ordinal)).ToList();
        Assert.Equal("moe_decode_bf16 moe_decode_f16", Entries(both));
    }
}
