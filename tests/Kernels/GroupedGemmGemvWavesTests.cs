using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES: a call of 64 rows or more whose wgmma grid, estimated from the host's numbers,
/// would be 8 waves of tiles or more (unset) leaves the GEMV for the wgmma kernel; calls under 64 rows stay, and 0 leaves none.
/// </summary>
public class GroupedGemmGemvWavesTests
{
    [Theory]
    [InlineData(128, 128, 81.10)]  // Qwen3-30B-A3B at T = 16 (its random router hit 81); the values rounded to 2 places
    [InlineData(128, 256, 100.88)] // DeepSeek-V3 at T = 16
    [InlineData(1, 256, 1.0)]      // one row hits one expert
    [InlineData(0, 256, 0.0)]
    [InlineData(100000, 8, 8.0)]   // every expert, at most
    public void TheExpertsHitAreThoseOfAUniformRouter(int rows, int experts, double expected) =>
        Assert.Equal(expected, GroupedGemmGemv.ExpectedExpertsHit(rows, experts), 2);

    [Theory]
    [InlineData(128, 128, 1536, 3.69)]  // Qwen3-30B-A3B's gate_up at T = 16: 81 experts x 6 tiles over 132 SMs
    [InlineData(128, 256, 4096, 12.23)] // DeepSeek-V3's gate_up: 101 x 16
    [InlineData(128, 256, 7168, 21.40)] // its down: 101 x 28
    [InlineData(128, 256, 7169, 22.16)] // a column past 28 tiles is a 29th
    public void TheWavesAreTilesOverTheSms(int rows, int experts, int n, double expected) =>
        Assert.Equal(expected, GroupedGemmGemv.WgmmaWavesEstimate(rows, experts, n, 132), 2);

    [Theory]
    [InlineData(128, 128, 1536, 8, false)] // Qwen3-30B-A3B's gate_up at T = 16 stays
    [InlineData(128, 256, 4096, 8, true)]  // DeepSeek-V3's gate_up and down at T = 16 leave
    [InlineData(128, 256, 7168, 8, true)]
    [InlineData(256, 256, 4096, 8, true)]  // its gate_up at T = 32
    [InlineData(32, 256, 7168, 8, false)]  // T = 4: under 64 rows, the GEMV whatever the waves
    [InlineData(128, 256, 7168, 0, false)] // no limit
    [InlineData(128, 256, 7169, 22, true)] // 22.16 waves: at a limit of 22 it leaves, at 23 it stays
    [InlineData(128, 256, 7169, 23, false)]
    public void OnlyCallsOfManyWavesLeave(int rows, int experts, int n, int maxWaves, bool leaves) =>
        Assert.Equal(leaves, GroupedGemmGemv.LeavesManyWaves(rows, experts, n, 132, maxWaves));

    /// <summary>The dispatch (GroupedGemm.RunsGemv, as GroupedGemm.Run picks) with the variables unset, on cuda:0.</summary>
    [Fact]
    public void TheDispatchLeavesDeepSeekV3AtSixteenTokensToTheWgmmaKernel()
    {
        Assert.SkipWhen(RuleVariablesSet, "the GEMV's rule variables are set");
        var gpu = TestDevices.Get("cuda:0");
        Assert.False(GroupedGemm.RunsGemv(TestDevices.Context.Cpu, DType.BF16, 128, 256, 4096, 7168), "the CPU runs no GEMV");
        bool wgmma = GroupedGemmWgmma.Supports(gpu, DType.BF16, out _);
        bool manyWaves = GroupedGemmGemv.WgmmaWavesEstimate(128, 256, 4096, gpu.Info.MultiprocessorCount) >= GroupedGemmGemv.DefaultExpertsRuleMaxWaves;
        Assert.Equal(!(wgmma && manyWaves), GroupedGemm.RunsGemv(gpu, DType.BF16, 128, 256, 4096, 7168)); // gate_up
        Assert.Equal(!(wgmma && manyWaves), GroupedGemm.RunsGemv(gpu, DType.BF16, 128, 256, 7168, 2048)); // down: more tiles
        Assert.True(GroupedGemm.RunsGemv(gpu, DType.BF16, 128, 128, 1536, 2048), "Qwen3-30B-A3B's gate_up at T = 16 stays on the GEMV");
        Assert.True(GroupedGemm.RunsGemv(gpu, DType.BF16, 8, 256, 4096, 7168), "DeepSeek-V3 at T = 1 stays on the GEMV");
        if (gpu.Info.MultiprocessorCount == 132 && wgmma) // H100 SXM, H200: the measured case
            Assert.False(GroupedGemm.RunsGemv(gpu, DType.BF16, 128, 256, 4096, 7168));
    }

    /// <summary>Whether a variable that moves the GEMV's dispatch is set (tests of the default dispatch skip then).</summary>
    internal static bool RuleVariablesSet =>
        new[] { "MOE_GROUPED_GEMM_GEMV_RULE", "MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K", "MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES", "MOE_GROUPED_GEMM_WGMMA" }
            .Any(name => Environment.GetEnvironmentVariable(name) is { Length: > 0 });

    [Theory]
    [InlineData(null, GroupedGemmGemv.DefaultExpertsRuleMaxWaves)]
    [InlineData("", GroupedGemmGemv.DefaultExpertsRuleMaxWaves)]
    [InlineData(" 12 ", 12)]
    [InlineData("0", 0)]
    public void TheSwitchTakesACountOfWaves(string? value, int expected) => Assert.Equal(expected, GroupedGemmGemv.ParseExpertsMaxWaves(value));

    [Theory]
    [InlineData("-1")]
    [InlineData("many")]
    [InlineData("2.5")]
    public void TheSwitchRejectsOtherValuesNamingTheVariable(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseExpertsMaxWaves(value)).Message);
}
