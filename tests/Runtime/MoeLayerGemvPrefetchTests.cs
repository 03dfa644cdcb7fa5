using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// MOE_GEMV_PREFETCH (the workspace's gemvPrefetch): the routed experts' down GEMV prefetches its W rows before it waits
/// for gate_up. The layer at decode sizes gives bit for bit its output without the prefetch and matches the reference.
/// </summary>
public sealed class MoeLayerGemvPrefetchTests
{
    [Theory]
    [InlineData("qwen3_moe", 128)]
    [InlineData("deepseek_v3", 16)]
    [InlineData("mixtral", 16)]
    public void TheLayerGivesTheSameOutputWithThePrefetchAndWithout(string family, int experts) =>
        MoeLayerFixtures.AssertSameBitsOnAndOff(family, experts, "the prefetch",
            (weights, hidden, tokens, on) =>
            {
                var output = MoeLayerFixtures.RunSingle(TestDevices.Get("cuda:0"), weights, hidden, tokens, gemvTileMap: true, gemvPrefetch: on);
                // The forward's last grouped GEMV call is the routed down (the routers and shared experts take the dense
                // GEMV's own launch): its grid here is one wave, so it prefetches exactly when the workspace asks.
                Assert.True(on == GroupedGemmGemv.LastRunPrefetched, $"{family} T={tokens}: the down call prefetched {GroupedGemmGemv.LastRunPrefetched}, asked {on}");
                return output;
            });

    [Fact]
    public void TheLayerWithThePrefetchMatchesTheReference() =>
        MoeLayerFixtures.CheckAgainstReference("cuda:0", "qwen3_moe", 128, [1, 3, 64], "MOE_GEMV_PREFETCH=on", gemvTileMap: true, gemvPrefetch: true);

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void OnlyAWorkspaceWithTheMapPrefetches(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 128, 5);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        using var deviceWeights = DeviceMoeWeights.Upload(accelerator, weights);
        using var withMap = new MoeWorkspace(deviceWeights, 8, gemvTileMap: true, gemvPrefetch: true);
        using var withoutMap = new MoeWorkspace(deviceWeights, 8, gemvTileMap: false, gemvPrefetch: true);
        using var off = new MoeWorkspace(deviceWeights, 8, gemvTileMap: true, gemvPrefetch: false);
        Assert.False(withoutMap.GemvPrefetch);
        Assert.False(off.GemvPrefetch);
        Assert.Equal(accelerator.Kind == AcceleratorKind.Cuda, withMap.GemvPrefetch);
        using var routerOffsets = accelerator.Allocate<int>(2);
        Assert.Equal(withMap.GemvPrefetch, withMap.Prefix(3, routerOffsets, null).GemvPrefetch);
    }
}
