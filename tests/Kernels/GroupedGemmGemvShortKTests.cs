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
