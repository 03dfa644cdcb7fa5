using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// Whether a forward runs the shared expert as one more expert of the routed grouped GEMMs: expert E, whose rows are all
/// T tokens, appended after the routed rows (gathered [T*k + T, H], offsets [E + 2]), its output added by the combine as
/// the residual. Why: at T = 128 DeepSeek-V3's shared expert (one of I = 2048, 88 MB) cost 61-80 us as GEMMs of its own
/// (on a second stream, beside routed GEMMs that fill every SM), where its bytes take 20 us; inside the routed wgmma call
/// it is 16 + 28 more tiles of the same shape as the others.
/// It applies where the weights hold the shared expert after the routed ones (<see cref="DeviceMoeWeights.JoinedGateUp"/>:
/// one shared expert of the routed shape, no sigmoid gate) and the routed GEMMs are not the decode GEMV, whose 4-row tiles
/// would stream the shared expert's W once per 4 tokens. MOE_LAYER_JOIN_SHARED=on|off (default on) for A/B runs; a bad
/// value is the ArgumentException naming it.
/// </summary>
public static class SharedExpertJoin
{
    public const string VariableName = "MOE_LAYER_JOIN_SHARED";

    private static readonly Lazy<bool> FromEnvironment = new(() => Parse(Environment.GetEnvironmentVariable(VariableName)));

    /// <summary>The switch's value (true when unset).</summary>
    public static bool EnabledByDefault => FromEnvironment.Value;

    /// <summary>
    /// Whether a forward of <paramref name="tokens"/> tokens on <paramref name="weights"/> joins the shared expert, the switch
    /// given: the weights hold every expert (an expert-parallel rank's block runs its received rows, not this forward).
    /// </summary>
    public static bool Joins(DeviceMoeWeights weights, int tokens, bool enabled)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var c = weights.Config;
        return enabled && weights.JoinedGateUp is not null && weights.ExpertCount == c.NumExperts && tokens > 0
            && !GroupedGemm.RunsGemv(weights.Accelerator, weights.DType, checked(tokens * c.TopK), c.NumExperts);
    }

    internal static bool Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "on" or "1" => true,
        "off" or "0" => false,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected on (the shared expert runs as one more routed expert where it can) or off"),
    };
}
