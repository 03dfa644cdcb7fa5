using MoeRuntime.Runtime.Checkpoints;

namespace MoeRuntime.Runtime.Models;

/// <summary>
/// Receives a layer's weights as they are read, one expert at a time, so a large layer can go straight
/// into accelerator buffers (e.g. <c>buffer.Slice(expert * 2I * H, 2I * H).CopyFrom(...)</c>) without the
/// whole layer ever sitting in host memory. Every tensor arrives already in the target dtype.
/// </summary>
public interface IMoeLayerWeightSink
{
    /// <summary>Router gate: [E, H].</summary>
    void RouterGate(HostTensor gate);

    /// <summary>DeepSeek's e_score_correction_bias: [E], F32 (routing math stays F32).</summary>
    void ScoreCorrectionBias(float[] bias);

    /// <summary>One routed expert: gateUp [2I, H] (gate rows, then up rows), down [H, I].</summary>
    void Expert(int expert, HostTensor gateUp, HostTensor down);

    /// <summary>Shared expert(s) taken together: gateUp [2Is, H], down [H, Is]; qwen2_moe's sigmoid gate [1, H] or null.</summary>
    void SharedExpert(HostTensor gateUp, HostTensor down, HostTensor? gate);
}
