using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Layers;

/// <summary>The phases of a single-accelerator <see cref="MoeLayer"/> forward, in the order it enqueues them.</summary>
public enum MoeLayerPhase
{
    /// <summary>logits [T, E] F32 = hidden @ gate^T (a grouped GEMM with one expert).</summary>
    RouterGemm,
    /// <summary>Top-k routing: ids, weights [T, k], routed counts [E].</summary>
    TopKRouting,
    /// <summary>Counts, offsets, row maps, and the gather of hidden rows into expert order.</summary>
    Permute,
    /// <summary>Grouped GEMM gate_up with the fused SiLU-and-mul epilogue.</summary>
    ExpertsGateUp,
    /// <summary>Grouped GEMM down (F32 out).</summary>
    ExpertsDown,
    /// <summary>The shared experts' GEMMs (and, qwen2_moe, their sigmoid gate).</summary>
    SharedExperts,
    /// <summary>Weighted sum over the k choices plus the shared experts' output.</summary>
    Combine,
}

/// <summary>
/// Hook told, from the host thread that enqueues a <see cref="MoeLayer"/> forward, where each phase starts and ends
/// on the forward's stream. A benchmark records device events here; with no timer set the forward does nothing more.
/// </summary>
public interface IMoeLayerPhaseTimer
{
    void Begin(MoeLayerPhase phase, AcceleratorStream stream);
    void End(MoeLayerPhase phase, AcceleratorStream stream);
}
