using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Routing;

/// <summary>How router logits become expert choices.</summary>
public enum RoutingKind
{
    /// <summary>Softmax over all experts, then the k largest (Mixtral, Qwen3-MoE).</summary>
    Softmax,

    /// <summary>DeepSeek-V3/R1: sigmoid scores, correction bias, group-limited top-k.</summary>
    DeepSeekGrouped,
}

/// <summary>
/// Routing settings. <see cref="Renormalize"/> divides the k weights by their sum (Mixtral: yes; Qwen3-MoE:
/// <c>norm_topk_prob</c>; DeepSeek: <c>norm_topk_prob</c>, with + 1e-20 in the denominator as DeepSeek does).
/// <see cref="RoutedScalingFactor"/> multiplies every weight (DeepSeek's <c>routed_scaling_factor</c>; 1 otherwise).
/// Grouped only: <see cref="GroupCount"/> (<c>n_group</c>), <see cref="TopKGroups"/> (<c>topk_group</c>),
/// <see cref="CorrectionBias"/> ([experts] F32, <c>e_score_correction_bias</c>; null means zeros).
/// </summary>
public sealed record TopKRoutingOptions(
    RoutingKind Kind,
    int TopK,
    bool Renormalize = true,
    int GroupCount = 1,
    int TopKGroups = 1,
    float RoutedScalingFactor = 1f,
    MemoryBuffer<float>? CorrectionBias = null)
{
    public static TopKRoutingOptions Softmax(int topK, bool renormalize = true) => new(RoutingKind.Softmax, topK, renormalize);

    public static TopKRoutingOptions DeepSeek(int topK, int groupCount, int topKGroups, float routedScalingFactor, MemoryBuffer<float>? correctionBias, bool renormalize = true) =>
        new(RoutingKind.DeepSeekGrouped, topK, renormalize, groupCount, topKGroups, routedScalingFactor, correctionBias);
}
