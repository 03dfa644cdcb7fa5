using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// One MoE layer's weights on one accelerator, in the compute dtype, as the kernels take them:
/// <code>
/// RouterGate   [E, H]           every rank holds all of it (routing is replicated)
/// GateUp       [Eh, 2Ih, H]     Eh experts held here (all, or an EP block); Ih = I / tpRanks (gate rows, then up rows)
/// Down         [Eh, H, Ih]
/// Bias         [E] F32          DeepSeek's score correction bias, or null
/// SharedGateUp [2Ish, H], SharedDown [H, Ish], SharedGate [1, H] (qwen2_moe), or null
/// </code>
/// Tensor parallelism slices every expert's intermediate dimension (I / N rows of gate and of up, the
/// matching I / N columns of down); expert parallelism keeps a contiguous block of experts.
/// </summary>
public sealed class DeviceMoeWeights : IDisposable
{
    private DeviceMoeWeights(Accelerator accelerator, ModelConfig config, DType dtype, int firstExpert, int expertCount, int intermediate, int sharedIntermediate)
    {
        Accelerator = accelerator;
        Config = config;
        DType = dtype;
        FirstExpert = firstExpert;
        ExpertCount = expertCount;
        Intermediate = intermediate;
        SharedIntermediate = sharedIntermediate;
    }

    public Accelerator Accelerator { get; }
    public ModelConfig Config { get; }
    public DType DType { get; }
    public int FirstExpert { get; }
    public int ExpertCount { get; }

    /// <summary>Intermediate size held here per expert (I / tpRanks).</summary>
    public int Intermediate { get; }
    public int SharedIntermediate { get; }

    public MemoryBuffer RouterGate { get; private set; } = null!;
    public MemoryBuffer GateUp { get; private set; } = null!;
    public MemoryBuffer Down { get; private set; } = null!;
    public MemoryBuffer<float>? Bias { get; private set; }
    public MemoryBuffer? SharedGateUp { get; private set; }
    public MemoryBuffer? SharedDown { get; private set; }
    public MemoryBuffer? SharedGate { get; private set; }

    /// <summary>
    /// Uploads <paramref name="weights"/> (already in the compute dtype) to <paramref name="accelerator"/>:
    /// experts [firstExpert, firstExpert + expertCount), intermediate slice <paramref name="tpRank"/> of <paramref name="tpRanks"/>.
    /// </summary>
    public static DeviceMoeWeights Upload(Accelerator accelerator, MoeLayerWeights weights, int tpRank = 0, int tpRanks = 1, int firstExpert = 0, int? expertCount = null)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(weights);
        var c = weights.Config;
        int experts = expertCount ?? c.NumExperts;
        if (tpRanks < 1 || tpRank < 0 || tpRank >= tpRanks)
            throw new ArgumentOutOfRangeException(nameof(tpRank), $"tensor-parallel rank {tpRank} of {tpRanks}");
        if (c.MoeIntermediateSize % tpRanks != 0)
            throw new ArgumentException($"moe intermediate size {c.MoeIntermediateSize} is not divisible by {tpRanks} tensor-parallel ranks", nameof(tpRanks));
        if (c.SharedIntermediateSize % tpRanks != 0)
            throw new ArgumentException($"shared expert intermediate size {c.SharedIntermediateSize} is not divisible by {tpRanks} tensor-parallel ranks", nameof(tpRanks));
        if (firstExpert < 0 || experts < 1 || firstExpert + experts > c.NumExperts)
            throw new ArgumentOutOfRangeException(nameof(firstExpert), $"experts [{firstExpert}, {firstExpert + experts}) of {c.NumExperts}");
        int h = c.HiddenSize, i = c.MoeIntermediateSize, ih = i / tpRanks;
        int ish = c.SharedIntermediateSize / tpRanks;
        var result = new DeviceMoeWeights(accelerator, c, weights.DType, firstExpert, experts, ih, ish);
        try
        {
            result.RouterGate = UploadFloats(accelerator, weights.RouterGate.ToFloats(), weights.DType);
            var gateUp = weights.ExpertGateUp.ToFloats();
            var down = weights.ExpertDown.ToFloats();
            result.GateUp = UploadFloats(accelerator, SliceGateUp(gateUp, firstExpert, experts, i, h, tpRank, tpRanks), weights.DType);
            result.Down = UploadFloats(accelerator, SliceDown(down, firstExpert, experts, h, i, tpRank, tpRanks), weights.DType);
            if (weights.ScoreCorrectionBias is { } bias)
                result.Bias = accelerator.Upload<float>(bias);
            if (weights.SharedGateUp is { } sgu && weights.SharedDown is { } sd)
            {
                int isFull = c.SharedIntermediateSize;
                result.SharedGateUp = UploadFloats(accelerator, SliceGateUp(sgu.ToFloats(), 0, 1, isFull, h, tpRank, tpRanks), weights.DType);
                result.SharedDown = UploadFloats(accelerator, SliceDown(sd.ToFloats(), 0, 1, h, isFull, tpRank, tpRanks), weights.DType);
                if (weights.SharedExpertGate is { } sg)
                    result.SharedGate = UploadFloats(accelerator, sg.ToFloats(), weights.DType);
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Experts [first, first + count) of gate_up [E, 2I, H], keeping gate rows and up rows [rank*I/N, (rank+1)*I/N).</summary>
    internal static float[] SliceGateUp(float[] gateUp, int first, int count, int intermediate, int hidden, int rank, int ranks)
    {
        int ih = intermediate / ranks;
        var result = new float[(long)count * 2 * ih * hidden];
        for (int e = 0; e < count; e++)
            for (int half = 0; half < 2; half++)
            {
                long source = ((long)(first + e) * 2 * intermediate + (long)half * intermediate + (long)rank * ih) * hidden;
                long target = ((long)e * 2 * ih + (long)half * ih) * hidden;
                Array.Copy(gateUp, source, result, target, (long)ih * hidden);
            }
        return result;
    }

    /// <summary>Experts [first, first + count) of down [E, H, I], keeping columns [rank*I/N, (rank+1)*I/N).</summary>
    internal static float[] SliceDown(float[] down, int first, int count, int hidden, int intermediate, int rank, int ranks)
    {
        int ih = intermediate / ranks;
        var result = new float[(long)count * hidden * ih];
        for (int e = 0; e < count; e++)
            for (int row = 0; row < hidden; row++)
                Array.Copy(down, ((long)(first + e) * hidden + row) * intermediate + (long)rank * ih, result, ((long)e * hidden + row) * ih, ih);
        return result;
    }

    /// <summary>Uploads host floats converted to <paramref name="dtype"/>.</summary>
    public static MemoryBuffer UploadFloats(Accelerator accelerator, float[] values, DType dtype) => dtype switch
    {
        DType.F32 => accelerator.Upload<float>(values),
        DType.BF16 => accelerator.Upload<BFloat16>(values.Select(v => (BFloat16)v).ToArray()),
        DType.F16 => accelerator.Upload<Half>(values.Select(v => (Half)v).ToArray()),
        _ => throw new ArgumentException($"compute dtype {DTypes.Name(dtype)} is not f32, bf16 or f16", nameof(dtype)),
    };

    public long Bytes => new[] { RouterGate, GateUp, Down, Bias, SharedGateUp, SharedDown, SharedGate }.Sum(b => b?.LengthBytes ?? 0);

    public void Dispose()
    {
        foreach (var buffer in new[] { RouterGate, GateUp, Down, Bias, SharedGateUp, SharedDown, SharedGate })
            buffer?.Dispose();
    }
}
