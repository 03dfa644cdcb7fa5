using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;

namespace MoeRuntime.Runtime.Models;

/// <summary>
/// One MoE layer's weights in host memory, stacked per expert, in one dtype (F32, BF16 or F16):
/// <code>
/// RouterGate          [E, H]
/// ExpertGateUp        [E, 2I, H]   rows 0..I-1 of each expert: gate, rows I..2I-1: up
/// ExpertDown          [E, H, I]
/// ScoreCorrectionBias [E] F32      deepseek_v3 only
/// SharedGateUp        [2Is, H]     qwen2_moe, deepseek_v3 (all shared experts taken together)
/// SharedDown          [H, Is]
/// SharedExpertGate    [1, H]       qwen2_moe only: output scaled by sigmoid(gate . x)
/// </code>
/// For layers too large for host arrays, use <see cref="MoeLayerLoader"/> with a sink that uploads each expert.
/// </summary>
public sealed class MoeLayerWeights
{
    public required ModelConfig Config { get; init; }
    public required int Layer { get; init; }
    public required DType DType { get; init; }
    public required HostTensor RouterGate { get; init; }
    public required HostTensor ExpertGateUp { get; init; }
    public required HostTensor ExpertDown { get; init; }
    public float[]? ScoreCorrectionBias { get; init; }
    public HostTensor? SharedGateUp { get; init; }
    public HostTensor? SharedDown { get; init; }
    public HostTensor? SharedExpertGate { get; init; }

    /// <summary>Loads layer <paramref name="layer"/> of the checkpoint in <paramref name="directory"/>, converted to <paramref name="targetDtype"/>.</summary>
    public static MoeLayerWeights Load(string directory, int layer, DType targetDtype, IProgress<LoadProgress>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var config = ModelConfig.Load(directory);
        config.EnsureMoeLayer(layer);
        long gateUpElements = (long)config.NumExperts * 2 * config.MoeIntermediateSize * config.HiddenSize;
        if (gateUpElements > Array.MaxLength)
            throw new ArgumentException(
                $"layer {layer} holds {gateUpElements} gate_up elements, more than one host array can; load it with MoeLayerLoader and a sink that uploads each expert",
                nameof(directory));

        var sink = new StackingSink(config, targetDtype);
        MoeLayerLoader.Load(directory, layer, targetDtype, sink, progress);
        return new MoeLayerWeights
        {
            Config = config,
            Layer = layer,
            DType = targetDtype,
            RouterGate = sink.Router ?? throw new InvalidOperationException("router gate was not loaded"),
            ExpertGateUp = HostTensor.FromFloats(sink.GateUp, [config.NumExperts, 2 * config.MoeIntermediateSize, config.HiddenSize], targetDtype),
            ExpertDown = HostTensor.FromFloats(sink.Down, [config.NumExperts, config.HiddenSize, config.MoeIntermediateSize], targetDtype),
            ScoreCorrectionBias = sink.Bias,
            SharedGateUp = sink.SharedGateUp,
            SharedDown = sink.SharedDown,
            SharedExpertGate = sink.SharedGate,
        };
    }

    /// <summary>Collects experts into stacked float arrays (values already rounded to the target dtype, so re-rounding is exact).</summary>
    private sealed class StackingSink(ModelConfig config, DType dtype) : IMoeLayerWeightSink
    {
        private readonly int _gateUpSize = 2 * config.MoeIntermediateSize * config.HiddenSize;
        private readonly int _downSize = config.HiddenSize * config.MoeIntermediateSize;

        public HostTensor? Router { get; private set; }
        public float[] GateUp { get; } = new float[(long)config.NumExperts * 2 * config.MoeIntermediateSize * config.HiddenSize];
        public float[] Down { get; } = new float[(long)config.NumExperts * config.HiddenSize * config.MoeIntermediateSize];
        public float[]? Bias { get; private set; }
        public HostTensor? SharedGateUp { get; private set; }
        public HostTensor? SharedDown { get; private set; }
        public HostTensor? SharedGate { get; private set; }

        public void RouterGate(HostTensor gate) => Router = gate;

        public void ScoreCorrectionBias(float[] bias) => Bias = bias;

        public void Expert(int expert, HostTensor gateUp, HostTensor down)
        {
            if (gateUp.DType != dtype || down.DType != dtype)
                throw new InvalidOperationException("expert arrived in the wrong dtype");
            gateUp.ToFloats().CopyTo(GateUp, (long)expert * _gateUpSize);
            down.ToFloats().CopyTo(Down, (long)expert * _downSize);
        }

        public void SharedExpert(HostTensor gateUp, HostTensor down, HostTensor? gate)
        {
            SharedGateUp = gateUp;
            SharedDown = down;
            SharedGate = gate;
        }
    }
}
