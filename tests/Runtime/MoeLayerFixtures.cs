using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// Small random checkpoints of each family for the layer tests, and a helper that runs <see cref="MoeLayer"/>
/// on one accelerator. H 64; I 96 and the shared expert's 96 split into TP slices of 48, 32, 24 (multiples of
/// 8, as bf16 GEMMs need) over 2, 3, 4 ranks.
/// </summary>
public static class MoeLayerFixtures
{
    public static readonly string[] Families = ["mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"];

    /// <summary>
    /// Options for <paramref name="family"/> with <paramref name="experts"/> experts: mixtral top-2; qwen2_moe
    /// top-4 with a gated shared expert; qwen3_moe top-4 without renormalisation; deepseek_v3 top-4 of 2 of
    /// 4 groups with bias, scaling 2.5 and one shared expert (layer 0 dense, layer 1 MoE).
    /// </summary>
    public static (ModelFamily Family, RandomCheckpointOptions Options) Options(string family, int experts) => family switch
    {
        "mixtral" => (ModelFamily.Mixtral, Base(experts) with { TopK = 2 }),
        "qwen2_moe" => (ModelFamily.Qwen2Moe, Base(experts) with { TopK = 4, SharedExpertIntermediateSize = 96 }),
        "qwen3_moe" => (ModelFamily.Qwen3Moe, Base(experts) with { TopK = 4, NormTopKProb = false }),
        "deepseek_v3" => (ModelFamily.DeepseekV3, Base(experts) with { TopK = 4, NumGroups = 4, TopKGroups = 2, NumSharedExperts = 1, RoutedScalingFactor = 2.5 }),
        _ => throw new ArgumentException($"unknown family {family}", nameof(family)),
    };

    private static RandomCheckpointOptions Base(int experts) => new() { HiddenSize = 64, IntermediateSize = 96, NumExperts = experts, NumLayers = 2 };

    /// <summary>Writes the checkpoint into <paramref name="directory"/>; returns its config and the first MoE layer's index.</summary>
    public static (ModelConfig Config, int Layer) Write(string directory, string family, int experts, int seed)
    {
        var (f, options) = Options(family, experts);
        var config = RandomCheckpoint.Write(directory, f, options, seed);
        int layer = Enumerable.Range(0, config.NumHiddenLayers).First(config.IsMoeLayer);
        return (config, layer);
    }

    /// <summary>Host values rounded to <paramref name="dtype"/> (what the layer sees after upload).</summary>
    public static float[] RoundTo(float[] values, DType dtype) => dtype switch
    {
        DType.F32 => values,
        DType.BF16 => values.Select(v => (float)(BFloat16)v).ToArray(),
        DType.F16 => values.Select(v => (float)(Half)v).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>
    /// The bf16 layer of <paramref name="family"/> (<paramref name="experts"/> experts, H = 64) on <paramref name="device"/> at each
    /// of <paramref name="tokenCounts"/> against the plain reference; <paramref name="setting"/> names the switch under test in a failure.
    /// </summary>
    public static void CheckAgainstReference(string device, string family, int experts, int[] tokenCounts, string setting, bool? fusedSilu = null,
                                             bool? gemvTileMap = null, bool? gemvPrefetch = null)
    {
        var accelerator = Infrastructure.TestDevices.Get(device);
        var random = Infrastructure.TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        var reference = new MoeRuntime.Runtime.Reference.MoeBlockReference(weights);
        foreach (int tokens in tokenCounts)
        {
            var hidden = RoundTo(Infrastructure.TestData.Uniform(random, tokens * 64), DType.BF16);
            var expected = reference.Forward(hidden);
            var actual = RunSingle(accelerator, weights, hidden, tokens, fusedSilu, gemvTileMap, gemvPrefetch);
            Infrastructure.Compare.Close(expected, Infrastructure.Compare.ToDouble(actual), Infrastructure.Compare.ToleranceFor(DType.BF16),
                $"{family} bf16, T={tokens}, on {device}, {setting}, seed {seed}");
        }
    }

    /// <summary>
    /// The bf16 layer of <paramref name="family"/> on cuda:0 at T = 1 and 3 (decode: both expert GEMMs on the GEMV) gives the
    /// same bits with a workspace switch off and on (<paramref name="run"/>(weights, hidden, tokens, on)), and no NaN.
    /// </summary>
    public static void AssertSameBitsOnAndOff(string family, int experts, string what, Func<MoeLayerWeights, float[], int, bool, float[]> run)
    {
        var gpu = Infrastructure.TestDevices.Get("cuda:0");
        var random = Infrastructure.TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layer) = Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        foreach (int tokens in new[] { 1, 3 })
        {
            Assert.True(GroupedGemm.RunsGemv(gpu, DType.BF16, tokens * config.TopK, experts, 2 * config.MoeIntermediateSize, config.HiddenSize)
                && GroupedGemm.RunsGemv(gpu, DType.BF16, tokens * config.TopK, experts, config.HiddenSize, config.MoeIntermediateSize),
                $"{family} E={experts} T={tokens}: not the GEMV");
            var hidden = RoundTo(Infrastructure.TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
            var off = run(weights, hidden, tokens, false);
            var on = run(weights, hidden, tokens, true);
            for (int i = 0; i < off.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(off[i]) == BitConverter.SingleToInt32Bits(on[i]),
                    $"{family} E={experts} T={tokens} seed {seed}: element {i}: without {what} {off[i]}, with it {on[i]}");
            Assert.DoesNotContain(on, float.IsNaN);
        }
    }

    /// <summary>
    /// One forward of the six-kernel chain (the fused decode kernel off, so the chain's switches are what runs; its own tests
    /// are MoeLayerFusedDecodeTests), output poisoned first. <paramref name="fusedDecodeMaxTokens"/>: null = the default.
    /// </summary>
    public static float[] RunSingle(Accelerator accelerator, MoeLayerWeights weights, float[] hidden, int tokens, bool? fusedSilu = null,
                                    bool? gemvTileMap = null, bool? gemvPrefetch = null, int? fusedDecodeMaxTokens = 0)
    {
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        var layer = new MoeLayer(device);
        using var workspace = new MoeWorkspace(device, tokens, fusedSilu: fusedSilu, gemvTileMap: gemvTileMap, gemvPrefetch: gemvPrefetch,
            fusedDecodeMaxTokens: fusedDecodeMaxTokens);
        using var input = DeviceMoeWeights.UploadFloats(accelerator, hidden, weights.DType);
        using var output = accelerator.Allocate<float>((long)tokens * weights.Config.HiddenSize);
        Infrastructure.TestData.Poison(output);
        layer.Forward(input, output, workspace);
        accelerator.Synchronize();
        return output.ToArray();
    }
}
