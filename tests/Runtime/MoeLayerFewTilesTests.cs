using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;
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
    public void LayerAtManyTokensMatchesTheReference(string device, string family)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        int experts = family is "qwen3_moe" or "deepseek_v3" ? 16 : 8;
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        var reference = new MoeBlockReference(weights);
        foreach (int tokens in new[] { 128, 200 })
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * 64), DType.BF16);
            var expected = reference.Forward(hidden);
            var actual = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, tokens);
            Compare.Close(expected, Compare.ToDouble(actual), Compare.ToleranceFor(DType.BF16),
                $"{family} bf16, T={tokens}, on {device}, few-tile rule {(GroupedGemmFewTiles.Enabled ? "on" : "off")}, seed {seed}");
        }
    }

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var device in TestDevices.Names)
            foreach (var family in MoeLayerFixtures.Families)
                data.Add(device.Data, family);
        return data;
    }
}
