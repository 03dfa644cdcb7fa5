using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K: a call of 64 rows or more (one the wgmma kernel could take) with a K under the
/// minimum (1024 unset) is left to the wgmma kernel; calls under 64 rows stay on the GEMV whatever their K, and 0 leaves every K.
/// </summary>
public class GroupedGemmGemvShortKTests
{
    [Theory]
    [InlineData(128, 768, 1024, true)]   // Qwen3-30B-A3B's down at T=16
    [InlineData(128, 2048, 1024, false)] // its gate_up
    [InlineData(8, 768, 1024, false)]    // T=1: under 64 rows, no wgmma to leave it to
    [InlineData(63, 8, 1024, false)]
    [InlineData(64, 1016, 1024, true)]
    [InlineData(128, 768, 0, false)]     // no minimum
    public void OnlyCallsTheWgmmaKernelCouldTakeAreLeftToIt(int rows, int k, int minK, bool leaves) =>
        Assert.Equal(leaves, GroupedGemmGemv.LeavesShortK(rows, k, minK));

    /// <summary>
    /// The K part of the rule the grouped GEMM dispatches by (GroupedGemm.RunCuda, which also weighs the wgmma kernel's waves:
    /// GroupedGemmGemvWavesTests), with the variable unset (K 1024 or more).
    /// </summary>
    [Theory]
    [InlineData(128, 128, 768, false)]  // Qwen3-30B-A3B's down at T=16: to wgmma
    [InlineData(128, 128, 2048, true)]  // its gate_up: the GEMV
    [InlineData(8, 128, 768, true)]     // its down at T=1: the GEMV (under 64 rows)
    [InlineData(128, 256, 2048, true)]  // DeepSeek-V3's down at T=16
    public void TheDispatchRuleWeighsK(int rows, int experts, int k, bool gemv)
    {
        Assert.SkipWhen(Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K") is { Length: > 0 }
            || Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_GEMV_RULE") is { Length: > 0 }, "the GEMV's rule variables are set");
        Assert.Equal(gemv, GroupedGemmGemv.ChosenFor(DType.BF16, rows, experts, k));
    }

    [Theory]
    [InlineData(null, GroupedGemmGemv.DefaultExpertsRuleMinK)]
    [InlineData("", GroupedGemmGemv.DefaultExpertsRuleMinK)]
    [InlineData(" 1024 ", 1024)]
    [InlineData("0", 0)]
    public void TheSwitchTakesAK(string? value, int expected) => Assert.Equal(expected, GroupedGemmGemv.ParseExpertsMinK(value));

    [Theory]
    [InlineData("-1")]
    [InlineData("short")]
    public void TheSwitchRejectsOtherValuesNamingTheVariable(string value) =>
        Assert.Contains("MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K", Assert.Throws<ArgumentException>(() => GroupedGemmGemv.ParseExpertsMinK(value)).Message);
}
