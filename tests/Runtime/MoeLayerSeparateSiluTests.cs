using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// SiLU-and-mul as its own kernel after a plain gate_up GEMM (<see cref="FusedSiluRule"/>, fusedSilu: false) against the
/// plain reference on every accelerator, at decode and larger token counts; the workspace holds gate | up only then.
/// </summary>
public sealed class MoeLayerSeparateSiluTests
{
    [Theory]
    [MemberData(nameof(Cases))]
    public void LayerWithSeparateSiluMatchesTheReference(string device, string family) =>
        MoeLayerFixtures.CheckAgainstReference(device, family, 16, [1, 5, 33, 128], "SiLU-and-mul as its own kernel", fusedSilu: false);

    public static TheoryData<string, string> Cases() => TestDevices.Each(MoeLayerFixtures.Families);

    [Fact]
    public void OnlyTheSeparateWorkspaceHoldsGateAndUp()
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 8, 3);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.F32);
        using var device = DeviceMoeWeights.Upload(TestDevices.Context.Cpu, weights);
        using var separate = new MoeWorkspace(device, 7, fusedSilu: false);
        using var fused = new MoeWorkspace(device, 7, fusedSilu: true);
        Assert.Equal(7L * weights.Config.TopK * 2 * device.Intermediate, separate.GateUpOutput!.Length);
        Assert.Null(fused.GateUpOutput);
        using var offsets = TestDevices.Context.Cpu.Upload<int>([0, 5]);
        Assert.Equal(5L * weights.Config.TopK * 2 * device.Intermediate, separate.Prefix(5, offsets, null).GateUpOutput!.Length);
    }

    [Fact]
    public void TheRuleSeparatesOnlyFewRowsPerExpertOnTheTensorCoreTiles()
    {
        // Each preset's gate_up: W [2I, H] an expert.
        const int mixtralI = 14336, mixtralH = 4096, qwenI = 768, qwenH = 2048, deepseekI = 2048, deepseekH = 7168;
        Assert.True(FusedSiluRule.Fuses(TestDevices.Context.Cpu, DType.BF16, 32, 8, mixtralI, mixtralH), "CPU: always fused");
        var gpu = TestDevices.Get("cuda:0");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.F32, 32, 8, mixtralI, mixtralH), "F32: fused");
        Assert.False(FusedSiluRule.Fuses(gpu, DType.BF16, 32, 8, mixtralI, mixtralH), "Mixtral T=16: 4 rows an expert, mma.sync tile");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 256, 8, mixtralI, mixtralH), "Mixtral T=128: 32 rows an expert");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 8, 128, qwenI, qwenH), "Qwen3 T=1: the GEMV");
        Assert.False(FusedSiluRule.Fuses(gpu, DType.BF16, 1024, 128, qwenI, qwenH), "Qwen3 T=128: 8 rows an expert");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 8192, 128, qwenI, qwenH), "Qwen3 T=1024: 64 rows an expert");
        Assert.SkipWhen(Kernels.GroupedGemmGemvWavesTests.RuleVariablesSet, "the GEMV's rule variables are set");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 128, 128, qwenI, qwenH), "Qwen3 T=16: the GEMV (3.7 waves of wgmma tiles)");
        // DeepSeek-V3 T=16: 128 rows over 256 experts, 12 waves of wgmma tiles on a Hopper of 132 SMs, so its gate_up leaves
        // the GEMV for the wgmma kernel, with SiLU-and-mul its own kernel; without the wgmma kernel it stays on the GEMV.
        bool leaves = GroupedGemmWgmma.Supports(gpu, DType.BF16, out _) && gpu.Info.MultiprocessorCount <= 160;
        Assert.Equal(!leaves, FusedSiluRule.Fuses(gpu, DType.BF16, 128, 256, deepseekI, deepseekH));
    }

    [Fact]
    public void TheSwitchAcceptsOnAndOffOnly()
    {
        Assert.True(FusedSiluRule.Parse("on"));
        Assert.False(FusedSiluRule.Parse(" OFF "));
        Assert.Null(FusedSiluRule.Parse(null));
        Assert.Contains("MOE_LAYER_FUSED_SILU", Assert.Throws<ArgumentException>(() => FusedSiluRule.Parse("auto")).Message);
    }
}
