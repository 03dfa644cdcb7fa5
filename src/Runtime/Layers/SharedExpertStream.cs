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
/// workspace serves one call at a time. CUDA only; MOE_LAYER_SHARED_STREAM=0 keeps the shared experts on the
/// forward's stream (A/B). It stays on where the routed GEMMs are the decode GEMV too. One H200, 2026-12-02
/// (docs/PERFORMANCE.md, thirty-second session), DeepSeek-V3, 4 layers cycled, graph, on / on the forward's stream:
/// T = 1 200.1 / 216.1 us, T = 16 1617.6-1618.1 / 1619.2-1620.6. One layer replayed over and over read T = 16 the other
/// way (1691 / 1655 us), a case a model's decode does not have.
/// </summary>
public sealed class SharedExpertStream : IDisposable
{
    /// <summary>Whether workspaces get a shared-expert stream by default (MOE_LAYER_SHARED_STREAM, on unless "0").</summary>
    public static bool EnabledByDefault { get; } = Environment.GetEnvironmentVariable("MOE_LAYER_SHARED_STREAM") != "0";

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
