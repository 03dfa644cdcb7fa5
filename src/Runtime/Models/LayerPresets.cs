using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Models;

/// <summary>
/// MoE layer shapes of real models, for benchmarks with random weights (no download): routing and the
/// shapes of one MoE layer. <c>tiny</c> is a DeepSeek-style layer small enough for CPU smoke tests.
/// </summary>
public static class LayerPresets
{
    public static readonly string[] Names = ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "moe-e64", "tiny", "tiny-e64"];

    public static ModelConfig Get(string name) => name.Trim().ToLowerInvariant() switch
    {
        "mixtral-8x7b" => new ModelConfig
        {
            Family = ModelFamily.Mixtral, HiddenSize = 4096, MoeIntermediateSize = 14336, NumExperts = 8, TopK = 2,
            NumHiddenLayers = 1, NormTopKProb = true,
        },
        "qwen3-30b-a3b" => new ModelConfig
        {
            Family = ModelFamily.Qwen3Moe, HiddenSize = 2048, MoeIntermediateSize = 768, NumExperts = 128, TopK = 8,
            NumHiddenLayers = 1, NormTopKProb = true,
        },
        "deepseek-v3" => new ModelConfig
        {
            Family = ModelFamily.DeepseekV3, HiddenSize = 7168, MoeIntermediateSize = 2048, NumExperts = 256, TopK = 8,
            NumHiddenLayers = 1, NormTopKProb = true, ScoringFunction = ScoringFunction.Sigmoid, NumGroups = 8, TopKGroups = 4,
            RoutedScalingFactor = 2.5, SharedIntermediateSize = 2048, HasScoreCorrectionBias = true,
        },
        // DeepSeek-like routing scaled down for EPLB benchmarks on a few GPUs: 64 experts, top-6 in 8 groups.
        "moe-e64" => new ModelConfig
        {
            Family = ModelFamily.DeepseekV3, HiddenSize = 2048, MoeIntermediateSize = 1408, NumExperts = 64, TopK = 6,
            NumHiddenLayers = 1, NormTopKProb = true, ScoringFunction = ScoringFunction.Sigmoid, NumGroups = 8, TopKGroups = 4,
            RoutedScalingFactor = 2.5, SharedIntermediateSize = 2816, HasScoreCorrectionBias = true,
        },
        "tiny" => new ModelConfig
        {
            Family = ModelFamily.DeepseekV3, HiddenSize = 64, MoeIntermediateSize = 96, NumExperts = 16, TopK = 4,
            NumHiddenLayers = 1, NormTopKProb = true, ScoringFunction = ScoringFunction.Sigmoid, NumGroups = 4, TopKGroups = 2,
            RoutedScalingFactor = 2.5, SharedIntermediateSize = 96, HasScoreCorrectionBias = true,
        },
        // moe-e64's routing (64 experts, top-6) at tiny's widths: CPU smoke runs of moe bench eplb.
        "tiny-e64" => new ModelConfig
        {
            Family = ModelFamily.DeepseekV3, HiddenSize = 64, MoeIntermediateSize = 96, NumExperts = 64, TopK = 6,
            NumHiddenLayers = 1, NormTopKProb = true, ScoringFunction = ScoringFunction.Sigmoid, NumGroups = 8, TopKGroups = 4,
            RoutedScalingFactor = 2.5, SharedIntermediateSize = 96, HasScoreCorrectionBias = true,
        },
        _ => throw new ArgumentException($"preset '{name}': {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>
    /// Weight bytes T tokens must read at least: the router, the expected number of distinct experts hit when
    /// T*k choices fall uniformly on E experts (E (1 - (1 - k/E)^T)), and the shared experts.
    /// </summary>
    public static long ActiveWeightBytes(ModelConfig c, int tokens, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(c);
        double hit = c.NumExperts * (1 - Math.Pow(1 - (double)c.TopK / c.NumExperts, tokens));
        return ActiveWeightBytes(c, hit, dtype);
    }

    /// <summary>
    /// Router + <paramref name="activeExperts"/> experts + shared experts, in bytes. Random routers are not uniform
    /// (DeepSeek's correction bias is as wide as the sigmoid scores' spread), so benchmarks pass the count of experts
    /// the routing really hit rather than the uniform expectation.
    /// </summary>
    public static long ActiveWeightBytes(ModelConfig c, double activeExperts, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(c);
        long width = DTypes.SizeOf(dtype);
        long perExpert = 3L * c.HiddenSize * c.MoeIntermediateSize * width;
        long shared = 3L * c.HiddenSize * c.SharedIntermediateSize * width;
        return (long)((long)c.NumExperts * c.HiddenSize * width + activeExperts * perExpert + shared);
    }
}
