namespace MoeRuntime.Runtime.Models;

/// <summary>The MoE model families whose checkpoints we read, by their config.json model_type.</summary>
public enum ModelFamily
{
    /// <summary>model_type "mixtral": softmax top-k, always renormalised, no shared expert.</summary>
    Mixtral,

    /// <summary>model_type "qwen2_moe": softmax top-k, one shared expert behind a sigmoid gate.</summary>
    Qwen2Moe,

    /// <summary>model_type "qwen3_moe": softmax top-k with optional renormalisation, no shared expert.</summary>
    Qwen3Moe,

    /// <summary>model_type "deepseek_v3": sigmoid + correction bias, group-limited top-k, scaling, shared experts.</summary>
    DeepseekV3,
}

public static class ModelFamilies
{
    public static string ModelType(ModelFamily family) => family switch
    {
        ModelFamily.Mixtral => "mixtral",
        ModelFamily.Qwen2Moe => "qwen2_moe",
        ModelFamily.Qwen3Moe => "qwen3_moe",
        ModelFamily.DeepseekV3 => "deepseek_v3",
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "unknown model family"),
    };

    public static ModelFamily? TryParse(string modelType) => modelType switch
    {
        "mixtral" => ModelFamily.Mixtral,
        "qwen2_moe" => ModelFamily.Qwen2Moe,
        "qwen3_moe" => ModelFamily.Qwen3Moe,
        "deepseek_v3" => ModelFamily.DeepseekV3,
        _ => null,
    };

    public const string Known = "mixtral, qwen2_moe, qwen3_moe, deepseek_v3";
}

/// <summary>How router logits become expert scores.</summary>
public enum ScoringFunction
{
    Softmax,
    Sigmoid,
}
