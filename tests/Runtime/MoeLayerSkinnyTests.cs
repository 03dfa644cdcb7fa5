using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The layer at T = 2, 17 and 128 on every accelerator against the plain reference: on CUDA the router GEMM, the shared
/// expert's gate_up and down and the Qwen2-MoE shared gate (N = 1) are single-matrix calls of 2..128 rows, which run on the
/// skinny kernel (<see cref="GroupedGemmSkinny"/>) unless MOE_GROUPED_GEMM_SKINNY=off, its reduction folded into it unless
/// MOE_SKINNY_REDUCE=kernel; run it each way on a GPU.
/// </summary>
public sealed class MoeLayerSkinnyTests
{
    [Theory]
    [MemberData(nameof(Cases))]
    public void LayerAtFewTokensMatchesTheReference(string device, string family) =>
        MoeLayerFixtures.CheckAgainstReference(device, family, 16, [2, 17, 128], $"skinny kernel {(GroupedGemmSkinny.Enabled ? "on" : "off")}, reduce {GroupedGemmSkinny.ReduceFromEnvironment}");

    public static TheoryData<string, string> Cases() => TestDevices.Each(new[] { "deepseek_v3", "qwen2_moe", "mixtral" });
}
