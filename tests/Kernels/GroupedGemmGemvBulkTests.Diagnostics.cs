using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Kernels.GroupedGemmTests;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The bulk GEMV's diagnostic knobs (<see cref="GroupedGemmGemvBulkConfig"/>, issue 9): every setting that
/// tools/gpu/bulkdiag-check.sh measures with full arithmetic matches the F64 reference on CUDA (through the test override,
/// in this class so that no other class's runs see it), copy-only leaves the output untouched, every setting compiles,
/// and the variables parse with errors that name them. Same class as the rest (partial): its tests never run
/// concurrently with the override set.
/// </summary>
public partial class GroupedGemmGemvBulkTests
{
    /// <summary>The settings of the GPU script, as its environment assignments (MOE_GROUPED_GEMM_GEMV_BULK_ left off).</summary>
    public static readonly TheoryData<string> MeasuredSettings = new(
        "", // the shipped build
        "MODE=copy-only",
        "MODE=copy-only STAGES=8 STAGE_KB=16 BLOCKS_PER_SM=1",
        "MODE=copy-only STAGES=4 STAGE_KB=16 BLOCKS_PER_SM=2",
        "MODE=copy-only STAGES=8 STAGE_KB=8 BLOCKS_PER_SM=2",
        "MODE=copy-only SPLIT_KB=4",
        "MODE=copy-only SPLIT_KB=4 COPY_LANES=8",
        "MODE=copy-only STAGES=2 STAGE_KB=32 BLOCKS_PER_SM=1",
        "MODE=no-epilogue-sync",
        "STAGES=4 STAGE_KB=16 BLOCKS_PER_SM=2",
        "STAGES=8 STAGE_KB=16 BLOCKS_PER_SM=1",
        "STAGES=8 STAGE_KB=8 BLOCKS_PER_SM=2",
        "SPLIT_KB=4 COPY_LANES=8",
        "COPY_LANES=4",
        "L2_HINT=evict-first",
        "MODE=no-epilogue-sync STAGES=4 STAGE_KB=16 BLOCKS_PER_SM=2",
        "MODE=no-epilogue-sync STAGES=8 STAGE_KB=8 BLOCKS_PER_SM=2 SPLIT_KB=4 COPY_LANES=4");

    /// <summary>
    /// The consumer-side settings of tools/gpu/bulkfix-check.sh (issue 9: the ring keeps up, the consumers do not): X in
    /// shared memory, contiguous items per block, a deeper unroll, alone and together (a theory of its own, so that the
    /// script runs just these).
    /// </summary>
    public static readonly TheoryData<string> ConsumerSettings = new(
        "X_KB=16",
        "ORDER=contiguous",
        "X_KB=16 ORDER=contiguous",
        "X_KB=16 ORDER=contiguous STAGES=2 BLOCKS_PER_SM=1",
        "X_KB=16 ORDER=contiguous STAGES=2 BLOCKS_PER_SM=2",
        "X_KB=56 ORDER=contiguous STAGES=2 BLOCKS_PER_SM=1",
        "X_KB=16 ORDER=contiguous UNROLL=8",
        "ORDER=contiguous UNROLL=8",
        "ORDER=contiguous STAGES=2 BLOCKS_PER_SM=2",
        "X_KB=16 UNROLL=4 MODE=no-epilogue-sync");

    private static GroupedGemmGemvBulkConfig Setting(string assignments)
    {
        var values = assignments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(a => a.Split('=')).ToDictionary(a => a[0], a => a[1]);
        return GroupedGemmGemvBulkConfig.Parse(name => values.GetValueOrDefault(name));
    }

    [Theory, MemberData(nameof(MeasuredSettings))]
    public void EveryMeasuredSettingMatchesTheReference(string assignments) => MatchesTheReference(assignments);

    [Theory, MemberData(nameof(ConsumerSettings))]
    public void EveryConsumerSettingMatchesTheReference(string assignments) => MatchesTheReference(assignments);

    private static void MatchesTheReference(string assignments)
    {
        var gpu = SupportedGpu();
        var config = Setting(assignments);
        if (config.Mode == GroupedGemmGemvBulkConfig.CopyOnlyMode)
            config = config with { Mode = GroupedGemmGemvBulkConfig.FullMode }; // its copies and ring, with the arithmetic (copy-only writes nothing)
        GroupedGemmGemvBulk.ConfigOverride = config;
        try
        {
            int plainK = GroupedGemmGemvBulk.MaxK(fused: false), fusedK = GroupedGemmGemvBulk.MaxK(fused: true);
            var counts = OneRowIn(8, of: 128);
            RunCase(gpu, new Case($"{config}: Qwen3 T=1 gate_up fused, K = 2048", counts, 2 * 40, 2048), DType.BF16, DType.BF16, fused: true, rowScale: false, Bulk);
            RunCase(gpu, new Case($"{config}: Qwen3 T=1 down*w, K = 768", counts, 96, 768), DType.F16, DType.F32, fused: false, rowScale: true, Bulk);
            RunCase(gpu, new Case($"{config}: 5 and 9 rows, empty experts", [5, 0, 9, 0, 1], 70, 40), DType.BF16, DType.F32, fused: false, rowScale: false, Bulk);
            RunCase(gpu, new Case($"{config}: fused and scaled, 5 and 9 rows, K = 8", [5, 0, 9], 2 * 66, 8, TrailingRows: 3), DType.BF16, DType.F16,
                fused: true, rowScale: true, Bulk);
            RunCase(gpu, new Case($"{config}: K at the plain limit ({plainK}), N tail", [1, 0, 5], 5, plainK, LeadingRows: 1), DType.BF16, DType.BF16,
                fused: false, rowScale: false, Bulk);
            RunCase(gpu, new Case($"{config}: K at the fused limit ({fusedK})", [1, 0, 5], 2 * 3, fusedK), DType.BF16, DType.F32, fused: true, rowScale: true, Bulk);
            RunCase(gpu, new Case($"{config}: full and partial m-tiles, K = 1024", [4, 7, 0, 3, 9], 2 * 72, 1024), DType.BF16, DType.BF16,
                fused: true, rowScale: true, Bulk);
            RunCase(gpu, new Case($"{config}: 300 one-row experts", Enumerable.Repeat(1, 300).ToArray(), 20, 16), DType.F16, DType.F16, fused: false, rowScale: false, Bulk);
            if (GroupedGemmGemvBulk.FitsK(7168, fused: true))
                RunCase(gpu, new Case($"{config}: DeepSeek-V3 T=1 gate_up fused, K = 7168", OneRowIn(8, of: 256), 2 * 6, 7168), DType.BF16, DType.BF16,
                    fused: true, rowScale: false, Bulk);
        }
        finally
        {
            GroupedGemmGemvBulk.ConfigOverride = null;
        }
    }

    [Fact]
    public void CopyOnlyMovesTheStagesAndWritesNothing()
    {
        var gpu = SupportedGpu();
        GroupedGemmGemvBulk.ConfigOverride = Setting("MODE=copy-only SPLIT_KB=4 COPY_LANES=8");
        try
        {
            var random = TestData.NewRandom(out int seed);
            const int n = 2 * 96, k = 2048;
            int[] offsets = [0, 1, 1, 6, 7];
            using var x = gpu.Upload<BFloat16>(TestData.ToBf16(TestData.Uniform(random, 7 * k)));
            using var w = gpu.Upload<BFloat16>(TestData.ToBf16(TestData.Uniform(random, 4 * n * k)));
            using var offsetsBuffer = gpu.Upload<int>(offsets);
            using var y = gpu.Allocate<float>(7 * n / 2);
            TestData.Poison(y);
            GroupedGemm.Run(gpu, x, w, offsetsBuffer, y, n, k, new GroupedGemmOptions { FusedSiluAndMul = true, VariantOverride = Bulk });
            Assert.All(y.ToArray(), v => Assert.True(float.IsNaN(v), $"copy-only wrote {v} (seed {seed})"));
        }
        finally
        {
            GroupedGemmGemvBulk.ConfigOverride = null;
        }
    }

    [Theory, MemberData(nameof(MeasuredSettings))]
    public void EveryMeasuredSettingCompiles(string assignments) => Compiles(assignments);

    [Theory, MemberData(nameof(ConsumerSettings))]
    public void EveryConsumerSettingCompiles(string assignments) => Compiles(assignments);

    private static void Compiles(string assignments)
    {
        // NVRTC 11.8 (CI) builds the real body only with the PTX 7.8 stand-ins of the register probe; NVRTC 12+ as on the GPU.
        var config = Setting(assignments);
        var options = new List<string>(config.CompileOptions(config.BlocksPerSm ?? 1) ?? []);
        if (NvrtcCompiler.Version.Major < 12)
            options.Add("-DGB_PTX78_PROBE");
        string ptx = NvrtcCompiler.CompileToPtx(GroupedGemmGemvBulk.Source, NvrtcCompiler.DefaultOptions("sm_90", options));
        Assert.Contains("grouped_gemm_gemv_bulk_bf16_bf16", ptx);
        // Copy-only consumers do no arithmetic: no FMA anywhere in the kernel.
        Assert.Equal(config.Mode != GroupedGemmGemvBulkConfig.CopyOnlyMode, ptx.Contains("fma.rn.f32", StringComparison.Ordinal));
        if (NvrtcCompiler.Version.Major >= 12)
            Assert.Equal(config.L2EvictFirst, ptx.Contains("L2::cache_hint", StringComparison.Ordinal));
    }

    [Fact]
    public void TheKnobsParseWithErrorsThatNameThem()
    {
        Assert.Equal(GroupedGemmGemvBulkConfig.Default, GroupedGemmGemvBulkConfig.Parse(_ => null));
        Assert.Equal(GroupedGemmGemvBulkConfig.Default, Setting("STAGES=4 STAGE_KB=32 MODE=full SPLIT_KB=0 COPY_LANES=1 L2_HINT=none"));
        Assert.Null(GroupedGemmGemvBulkConfig.Default.CompileOptions(1)); // the shipped build: the kernel's own defines
        var config = Setting("STAGES=8 STAGE_KB=16 BLOCKS_PER_SM=2 MODE=no-epilogue-sync SPLIT_KB=4 COPY_LANES=8 L2_HINT=evict-first");
        Assert.Equal(new GroupedGemmGemvBulkConfig(8, 16384, 2, "no-epilogue-sync", 4096, 8, true), config);
        Assert.Equal(["-DGB_STAGES=8", "-DGB_STAGE_BYTES=16384", "-DGB_MIN_BLOCKS=2", "-DGB_MODE=2", "-DGB_SPLIT_BYTES=4096", "-DGB_COPY_LANES=8",
            "-DGB_L2_EVICT_FIRST=1", "-DGB_X_BYTES=0", "-DGB_CONTIGUOUS=0", "-DGB_UNROLL=2"], config.CompileOptions(2)!);
        Assert.Equal("8x16KB 2/SM no-epilogue-sync split 4KB 8 lanes evict-first", config.ToString());
        foreach (var (bad, variable) in new[]
                 {
                     ("STAGES=3", "STAGES"), ("STAGES=four", "STAGES"), ("STAGE_KB=64", "STAGE_KB"), ("STAGE_KB=-8", "STAGE_KB"),
                     ("BLOCKS_PER_SM=3", "BLOCKS_PER_SM"), ("MODE=copy", "MODE"), ("SPLIT_KB=3", "SPLIT_KB"), ("COPY_LANES=3", "COPY_LANES"),
                     ("L2_HINT=evict_first", "L2_HINT"), ("X_KB=8", "X_KB"), ("ORDER=blocked", "ORDER"), ("UNROLL=3", "UNROLL"),
                 })
        {
            var error = Assert.Throws<ArgumentException>(() => Setting(bad));
            Assert.Contains("MOE_GROUPED_GEMM_GEMV_BULK_" + variable, error.Message);
        }
        Assert.Equal(8192, Setting("STAGE_KB=8 SPLIT_KB=8").SplitBytes); // a piece may be the whole stage
        var staged = Setting("X_KB=16 ORDER=contiguous UNROLL=8 STAGES=2");
        Assert.Equal(new GroupedGemmGemvBulkConfig(2, 32768, null, "full", 0, 1, false, 16384, true, 8), staged);
        Assert.Equal(2 * (32768 + 16384), staged.SharedBytes);
        Assert.Equal("2x32KB full X 16KB contiguous unroll 8", staged.ToString());
    }

    [Fact]
    public void SmallStagesLowerTheKLimitAndTwoBlocksPerSmNeedTheSharedMemory()
    {
        const int h200 = 227 * 1024;
        GroupedGemmGemvBulk.ConfigOverride = Setting("STAGES=8 STAGE_KB=8 BLOCKS_PER_SM=2");
        try
        {
            Assert.Equal(4096, GroupedGemmGemvBulk.MaxK(fused: false));
            Assert.Equal(2048, GroupedGemmGemvBulk.MaxK(fused: true)); // Qwen3 gate_up fits, DeepSeek-V3 gate_up (7168) keeps the 4-row GEMV
            Assert.Equal(2, GroupedGemmGemvBulk.StageRows(2048, fused: true));
            Assert.False(GroupedGemmGemvBulk.ChosenFor(supported: true, DType.BF16, 8, 256, 7168, fused: true, switchOn: true, GroupedGemmGemv.DefaultMaxRows));
            // 2 blocks per SM: Qwen3 T=1 down (8 m-tiles x ceil(2048 / 5) chunks) fills 264 blocks.
            Assert.Equal(264, GroupedGemmGemvBulk.BlocksFor(8, 128, 2048, 768, fused: false, 132, h200));
        }
        finally
        {
            GroupedGemmGemvBulk.ConfigOverride = null;
        }
        // 4 x 32 KB twice does not fit 228 KB: refused, naming the variable.
        var error = Assert.Throws<ArgumentException>(() => GroupedGemmGemvBulk.BlocksPerSmFor(Setting("BLOCKS_PER_SM=2"), h200));
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_BULK_BLOCKS_PER_SM=2", error.Message);
        Assert.Equal(2, GroupedGemmGemvBulk.BlocksPerSmFor(Setting("STAGE_KB=16 BLOCKS_PER_SM=2"), h200));
        Assert.Equal(1, GroupedGemmGemvBulk.BlocksPerSmFor(Setting("STAGES=2 BLOCKS_PER_SM=1"), h200));
        Assert.Equal(1, GroupedGemmGemvBulk.BlocksPerSmFor(GroupedGemmGemvBulkConfig.Default, h200));
        // X in shared memory: 2 x (32 + 16) KB fits twice; the X area bounds K (16 KB: 4 rows of 2048).
        Assert.Equal(2, GroupedGemmGemvBulk.BlocksPerSmFor(Setting("X_KB=16 STAGES=2 BLOCKS_PER_SM=2"), h200));
        GroupedGemmGemvBulk.ConfigOverride = Setting("X_KB=16");
        try
        {
            Assert.Equal(2048, GroupedGemmGemvBulk.MaxK(fused: false));
            Assert.Equal(2048, GroupedGemmGemvBulk.MaxK(fused: true));
            Assert.False(GroupedGemmGemvBulk.FitsK(4096, fused: true)); // Mixtral gate_up keeps the 4-row GEMV
        }
        finally
        {
            GroupedGemmGemvBulk.ConfigOverride = null;
        }
    }
}
