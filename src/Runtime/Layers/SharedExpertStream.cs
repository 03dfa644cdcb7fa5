using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// A second stream for a layer's shared experts, beside the routed path (router GEMM, routing, permute, routed
/// experts) on the forward's stream: the shared expert depends on the hidden states alone, and at decode sizes the
/// routed path starts with latency-bound launches that leave most of the bandwidth to it. The forward records
/// <see cref="InputReady"/> on its stream, this stream waits for it, runs the shared experts and records
/// <see cref="SharedReady"/>, which the forward's stream waits for before the combine: the usual fork and join, also
/// inside a CUDA graph capture. The shared GEMMs get their own split-K scratch (<see cref="SplitK"/>), since a
/// workspace serves one call at a time. CUDA only.
/// By default (<see cref="BesideRouted"/>) only where the routed experts' GEMMs are the tensor-core kernels, not the decode
/// GEMV: beside the GEMV's grid the shared experts' kernels cost more than their own time on the forward's stream. One
/// H200, 2026-12-02 (docs/PERFORMANCE.md, thirty-second session), DeepSeek-V3 T = 16, one layer, graph, alternating
/// processes: on their stream 1691 / 1692 us, on the forward's 1655 / 1655. MOE_LAYER_SHARED_STREAM=auto|on|off (or 1, 0)
/// for A/B runs; a bad value is the ArgumentException naming it.
/// </summary>
public sealed class SharedExpertStream : IDisposable
{
    public const string VariableName = "MOE_LAYER_SHARED_STREAM";

    /// <summary>MOE_LAYER_SHARED_STREAM: auto (the rule), on (wherever there are shared experts, on CUDA) or off.</summary>
    public enum Mode { Auto, On, Off }

    private static readonly Lazy<Mode> FromEnvironment = new(() => Parse(Environment.GetEnvironmentVariable(VariableName)));

    /// <summary>The switch's value (auto when unset).</summary>
    public static Mode Setting => FromEnvironment.Value;

    /// <summary>
    /// Whether a forward whose routed GEMMs take <paramref name="rows"/> rows (T*k) over <paramref name="experts"/> experts
    /// runs its shared experts on their own stream, under <paramref name="mode"/>: auto, where those GEMMs are not the
    /// decode GEMV's (<see cref="GroupedGemm.RunsGemv"/>).
    /// </summary>
    public static bool BesideRouted(Accelerator accelerator, DType dtype, int rows, int experts, Mode mode) => mode switch
    {
        Mode.On => true,
        Mode.Off => false,
        _ => !GroupedGemm.RunsGemv(accelerator, dtype, rows, experts),
    };

    internal static Mode Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "auto" => Mode.Auto,
        "on" or "1" => Mode.On,
        "off" or "0" => Mode.Off,
        _ => throw new ArgumentException($"{VariableName}='{value}': expected auto (the shared experts on their own stream where the routed experts' GEMMs are not the decode GEMV), on or off"),
    };

    private SharedExpertStream(AcceleratorStream stream, AcceleratorEvent inputReady, AcceleratorEvent sharedReady, GroupedGemmWorkspace splitK)
    {
        Stream = stream;
        InputReady = inputReady;
        SharedReady = sharedReady;
        SplitK = splitK;
    }

    public AcceleratorStream Stream { get; }
    public AcceleratorEvent InputReady { get; }
    public AcceleratorEvent SharedReady { get; }
    public GroupedGemmWorkspace SplitK { get; }

    /// <summary>A stream, its two events and split-K scratch for the shared-expert GEMMs at <paramref name="tokens"/>; null where it does not apply (CPU, no shared experts).</summary>
    public static SharedExpertStream? For(DeviceMoeWeights weights, int tokens)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var a = weights.Accelerator;
        if (a.Kind != AcceleratorKind.Cuda || weights.SharedGateUp is null)
            return null;
        AcceleratorStream? stream = null;
        AcceleratorEvent? inputReady = null, sharedReady = null;
        try
        {
            stream = a.CreateStream();
            inputReady = a.CreateEvent();
            sharedReady = a.CreateEvent();
            // Beside the routed path's kernels: the wgmma kernel's blocks may start late (GroupedGemmWorkspace.SharesDevice).
            var splitK = GroupedGemmWorkspace.For(a, GemmShapes(weights, tokens));
            splitK.SharesDevice = true;
            return new SharedExpertStream(stream, inputReady, sharedReady, splitK);
        }
        catch
        {
            sharedReady?.Dispose();
            inputReady?.Dispose();
            stream?.Dispose();
            throw;
        }
    }

    /// <summary>The shared experts' GEMMs at <paramref name="tokens"/> tokens (gate_up with SiLU-and-mul, the sigmoid gate, down).</summary>
    public static GroupedGemmShape[] GemmShapes(DeviceMoeWeights weights, int tokens)
    {
        ArgumentNullException.ThrowIfNull(weights);
        int h = weights.Config.HiddenSize, ish = weights.SharedIntermediate;
        return [new(tokens, 2 * ish, h, 1, Fused: true), new(tokens, h, ish, 1), new(tokens, 1, h, 1)];
    }

    public void Dispose()
    {
        SplitK.Dispose();
        SharedReady.Dispose();
        InputReady.Dispose();
        Stream.Dispose();
    }
}
