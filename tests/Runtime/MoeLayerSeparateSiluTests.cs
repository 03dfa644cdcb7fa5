using MoeRuntime.Accelerators;
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
        Assert.True(FusedSiluRule.Fuses(TestDevices.Context.Cpu, DType.BF16, 32, 8), "CPU: always fused");
        var gpu = TestDevices.Get("cuda:0");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.F32, 32, 8), "F32: fused");
        Assert.False(FusedSiluRule.Fuses(gpu, DType.BF16, 32, 8), "Mixtral T=16: 4 rows an expert, mma.sync tile");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 256, 8), "Mixtral T=128: 32 rows an expert");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 8, 128), "Qwen3 T=1: the GEMV");
        Assert.False(FusedSiluRule.Fuses(gpu, DType.BF16, 1024, 128), "Qwen3 T=128: 8 rows an expert");
        Assert.True(FusedSiluRule.Fuses(gpu, DType.BF16, 8192, 128), "Qwen3 T=1024: 64 rows an expert");
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
