namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// Whether the routed experts' gate_up GEMM applies SiLU-and-mul in its epilogue (fused: one kernel, half the columns
/// written) or writes gate | up and a GatedActivation kernel follows (separate). MOE_LAYER_FUSED_SILU=on|off picks one
/// for every token count, for A/B runs; unset, the layer fuses.
/// </summary>
public static class FusedSiluRule
{
    /// <summary>Tests and benchmarks: force the choice (null: the environment's, else fused).</summary>
    public static bool? Override { get; set; }

    private static readonly bool? FromEnvironment = Parse(Environment.GetEnvironmentVariable("MOE_LAYER_FUSED_SILU"));

    /// <summary>Whether a forward of <paramref name="tokens"/> tokens fuses SiLU-and-mul into the gate_up GEMM.</summary>
    public static bool Fuses(int tokens) => Override ?? FromEnvironment ?? true;

    internal static bool? Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "on" or "1" => true,
        "off" or "0" => false,
        _ => throw new ArgumentException($"MOE_LAYER_FUSED_SILU='{value}': expected on or off"),
    };
}
