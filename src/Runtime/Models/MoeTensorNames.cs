namespace MoeRuntime.Runtime.Models;

/// <summary>
/// Names on disk of one MoE layer's tensors, per family. Two expert layouts exist:
/// <list type="bullet">
/// <item>per expert (transformers 4.x and the original releases): <c>experts.{e}.gate_proj.weight</c> [I, H],
/// <c>up_proj</c> [I, H], <c>down_proj</c> [H, I]; Mixtral calls them w1 (gate), w3 (up), w2 (down).</item>
/// <item>fused (transformers 5.x MixtralExperts / Qwen3MoeExperts / DeepseekV3NaiveMoe parameters):
/// <c>experts.gate_up_proj</c> [E, 2I, H] whose forward is <c>linear(x, gate_up_proj[e]).chunk(2)</c>, so rows
/// 0..I-1 are gate and I..2I-1 up (our layout exactly), and <c>experts.down_proj</c> [E, H, I]. Parameters, so no
/// ".weight" suffix.</item>
/// </list>
/// Mixtral's block is <c>block_sparse_moe</c> in 4.x checkpoints and may be <c>mlp</c> in 5.x ones: both are tried.
/// FP8 weights carry their block scales in <c>{name}_scale_inv</c>.
/// </summary>
public sealed class MoeTensorNames
{
    private readonly ModelFamily _family;

    public MoeTensorNames(ModelFamily family, string blockPrefix)
    {
        _family = family;
        Prefix = blockPrefix;
    }

    /// <summary>Candidate block prefixes for a layer, most usual first.</summary>
    public static IReadOnlyList<string> CandidatePrefixes(ModelFamily family, int layer) => family == ModelFamily.Mixtral
        ? [$"model.layers.{layer}.block_sparse_moe", $"model.layers.{layer}.mlp"]
        : [$"model.layers.{layer}.mlp"];

    public string Prefix { get; }

    public string RouterGate => $"{Prefix}.gate.weight";
    public string ScoreCorrectionBias => $"{Prefix}.gate.e_score_correction_bias";

    public string ExpertGate(int expert) => $"{Prefix}.experts.{expert}.{(_family == ModelFamily.Mixtral ? "w1" : "gate_proj")}.weight";
    public string ExpertUp(int expert) => $"{Prefix}.experts.{expert}.{(_family == ModelFamily.Mixtral ? "w3" : "up_proj")}.weight";
    public string ExpertDown(int expert) => $"{Prefix}.experts.{expert}.{(_family == ModelFamily.Mixtral ? "w2" : "down_proj")}.weight";

    public string FusedGateUp => $"{Prefix}.experts.gate_up_proj";
    public string FusedDown => $"{Prefix}.experts.down_proj";

    private string SharedModule => _family == ModelFamily.DeepseekV3 ? "shared_experts" : "shared_expert";
    public string SharedGate => $"{Prefix}.{SharedModule}.gate_proj.weight";
    public string SharedUp => $"{Prefix}.{SharedModule}.up_proj.weight";
    public string SharedDown => $"{Prefix}.{SharedModule}.down_proj.weight";
    public string SharedExpertGate => $"{Prefix}.shared_expert_gate.weight";

    public static string ScaleOf(string weightName) => weightName + "_scale_inv";
}
