using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The layer at T = 2, 17 and 128 on every accelerator against the plain reference: on CUDA the router GEMM, the shared
/// expert's gate_up and down and the Qwen2-MoE shared gate (N = 1) are single-matrix calls of 2..128 rows, which run on the
/// skinny kernel (<see cref="GroupedGemmSkinny"/>) unless MOE_GROUPED_GEMM_SKINNY=off; run it both ways on a GPU.
/// </summary>
public sealed class MoeLayerSkinnyTests
{
    [Theory]
    [MemberData(nameof(Cases))]
    public void LayerAtFewTokensMatchesTheReference(string device, string family)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        var reference = new MoeBlockReference(weights);
        foreach (int tokens in new[] { 2, 17, 128 })
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * 64), DType.BF16);
            var expected = reference.Forward(hidden);
            var actual = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, tokens);
            Compare.Close(expected, Compare.ToDouble(actual), Compare.ToleranceFor(DType.BF16),
                $"{family} bf16, T={tokens}, on {device}, skinny kernel {(GroupedGemmSkinny.Enabled ? "on" : "off")}, seed {seed}");
        }
    }

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var device in TestDevices.Names)
            foreach (var family in new[] { "deepseek_v3", "qwen2_moe", "mixtral" })
                data.Add(device.Data, family);
        return data;
    }
}
