using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The layer at T = 128 and 200 on every accelerator against the plain reference, for every family: at these row counts the router
/// and shared-expert GEMMs are calls the few-tile rule takes (<see cref="GroupedGemmFewTiles"/>) when
/// MOE_GROUPED_GEMM_FEW_TILES=mma, and the Hopper kernel's otherwise; run it both ways on an H100/H200.
/// </summary>
public sealed class MoeLayerFewTilesTests
{
    [Theory]
    [MemberData(nameof(Cases))]
    public void LayerAtManyTokensMatchesTheReference(string device, string family) =>
        MoeLayerFixtures.CheckAgainstReference(device, family, family is "qwen3_moe" or "deepseek_v3" ? 16 : 8, [128, 200],
            $"few-tile rule {(GroupedGemmFewTiles.Enabled ? "on" : "off")}");

    public static TheoryData<string, string> Cases() => TestDevices.Each(MoeLayerFixtures.Families);
}
