using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// Whether the routed experts' gate_up GEMM applies SiLU-and-mul in its epilogue (fused: one kernel, half the columns
/// written) or writes gate | up and a GatedActivation kernel follows (separate). Measured on an H200 (2026-11-30, fifth
/// session, docs/PERFORMANCE.md): with a few rows per expert on the tensor-core tiles the fused epilogue costs more than
/// the extra kernel (Qwen3-30B-A3B T=16: 261 -> 239 us a layer, T=128: 360 -> 335; DeepSeek-V3 T=128: 3408 -> 3374),
/// with many rows it pays (Mixtral T=128: 744 against 752), and on the decode GEMV it is free (T=1).
/// So: separate on CUDA bf16/f16 when the call has at most <see cref="SeparateMaxRowsPerExpert"/> rows per expert on
/// average and is not the GEMV's; fused otherwise. MOE_LAYER_FUSED_SILU=on|off forces one for A/B runs.
/// </summary>
public static class FusedSiluRule
{
    /// <summary>Average rows per expert up to which SiLU-and-mul runs as its own kernel.</summary>
    public const int SeparateMaxRowsPerExpert = 16;

    private static readonly bool? FromEnvironment = Parse(Environment.GetEnvironmentVariable("MOE_LAYER_FUSED_SILU"));

    /// <summary>Whether a forward of <paramref name="tokens"/> tokens fuses SiLU-and-mul into the gate_up GEMM.</summary>
    public static bool Fuses(DeviceMoeWeights weights, int tokens)
    {
        ArgumentNullException.ThrowIfNull(weights);
        return FromEnvironment ?? Fuses(weights.Accelerator, weights.DType, (long)tokens * weights.Config.TopK, weights.Config.NumExperts,
            weights.Intermediate, weights.Config.HiddenSize);
    }

    /// <summary>
    /// The rule without the environment: a gate_up call of <paramref name="rows"/> rows over <paramref name="experts"/> experts,
    /// each expert's W [2 <paramref name="intermediate"/>, <paramref name="hidden"/>].
    /// </summary>
    public static bool Fuses(Accelerator accelerator, DType dtype, long rows, int experts, int intermediate, int hidden) =>
        (accelerator ?? throw new ArgumentNullException(nameof(accelerator))).Kind != AcceleratorKind.Cuda || dtype == DType.F32 || rows > (long)SeparateMaxRowsPerExpert * experts
        || GroupedGemm.RunsGemv(accelerator, dtype, (int)rows, experts, 2 * intermediate, hidden);

    internal static bool? Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "on" or "1" => true,
        "off" or "0" => false,
        _ => throw new ArgumentException($"MOE_LAYER_FUSED_SILU='{value}': expected on or off"),
    };
}
