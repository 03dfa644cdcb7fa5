using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// MOE_GEMV_TILE_MAP (the workspace's gemvTileMap): Permute writes the m-tile map and the routed experts' decode GEMVs
/// read their tiles from it. The layer at decode sizes, where both GEMMs run the GEMV, gives bit for bit the output it
/// gives without the map, and matches the plain reference either way.
/// </summary>
public sealed class MoeLayerGemvTileMapTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var family in MoeLayerFixtures.Families)
            foreach (int experts in new[] { 16, 128 })
                data.Add(family, experts);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void TheLayerGivesTheSameOutputWithTheMapAndWithout(string family, int experts) =>
        MoeLayerFixtures.AssertSameBitsOnAndOff(family, experts, "the map",
            (weights, hidden, tokens, on) => MoeLayerFixtures.RunSingle(TestDevices.Get("cuda:0"), weights, hidden, tokens, gemvTileMap: on));

    [Theory]
    [InlineData("qwen3_moe")]
    [InlineData("deepseek_v3")]
    public void TheLayerWithTheMapMatchesTheReference(string family) =>
        MoeLayerFixtures.CheckAgainstReference("cuda:0", family, 128, [1, 3, 64], "MOE_GEMV_TILE_MAP=on", gemvTileMap: true);

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void OnlyACudaWorkspaceHoldsTheMapSizedForItsRows(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var folder = new TempFolder();
        var (config, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 128, 5);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        using var deviceWeights = DeviceMoeWeights.Upload(accelerator, weights);
        using var on = new MoeWorkspace(deviceWeights, 8, gemvTileMap: true);
        using var off = new MoeWorkspace(deviceWeights, 8, gemvTileMap: false);
        Assert.Null(off.TileMap);
        if (accelerator.Kind != AcceleratorKind.Cuda)
        {
            Assert.Null(on.TileMap);
            return;
        }
        Assert.Equal(Permute.TileMapElements(8 * config.TopK, 128), on.TileMap!.Length);
        using var routerOffsets = accelerator.Allocate<int>(2);
        Assert.Equal(Permute.TileMapElements(3 * config.TopK, 128), on.Prefix(3, routerOffsets, null).TileMap!.Length);
    }

    /// <summary>A prefix of a larger workspace (the view of the map the serving loop's workspaces use) gives the same output with the map.</summary>
    [Fact]
    public void APrefixWorkspaceWithTheMapGivesTheSameOutput()
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 128, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        using var deviceWeights = DeviceMoeWeights.Upload(gpu, weights);
        var moe = new MoeLayer(deviceWeights);
        using var withMap = new MoeWorkspace(deviceWeights, 16, gemvTileMap: true);
        using var withoutMap = new MoeWorkspace(deviceWeights, 16, gemvTileMap: false);
        using var routerOffsets = gpu.Allocate<int>(2);
        float[] Run(MoeWorkspace whole, float[] hidden, int tokens)
        {
            using var input = DeviceMoeWeights.UploadFloats(gpu, hidden, DType.BF16);
            using var output = gpu.Allocate<float>((long)tokens * config.HiddenSize);
            TestData.Poison(output);
            moe.Forward(input, output, whole.Prefix(tokens, routerOffsets, null));
            gpu.Synchronize();
            return output.ToArray();
        }
        foreach (int tokens in new[] { 3, 1 })
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
            var expected = Run(withoutMap, hidden, tokens);
            var actual = Run(withMap, hidden, tokens);
            Assert.DoesNotContain(actual, float.IsNaN);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                    $"prefix T={tokens} of 16, seed {seed}: element {i}: without the map {expected[i]}, with it {actual[i]}");
        }
    }
}
