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

    /// <summary>
    /// Random weights at <paramref name="config"/>'s real shapes, generated straight into device buffers one
    /// expert at a time (a host chunk per expert, filled in parallel, then uploaded), so a layer larger than
    /// host memory can be benchmarked without a download: uniform in +-1/sqrt(fan_in), all experts, no TP slice.
    /// DeepSeek-style configs get a correction bias; shared experts (and qwen2_moe's gate) when the config has them.
    /// </summary>
    public static DeviceMoeWeights CreateRandom(Accelerator accelerator, ModelConfig config, DType dtype, int seed) =>
        CreateRandom(accelerator, config, dtype, seed, null);

    /// <summary>
    /// As above, holding only the experts <paramref name="experts"/> (their values as in the full layer; all when null),
    /// e.g. one expert on each rank of an EPLB layer whose experts live in slot stores.
    /// </summary>
    public static DeviceMoeWeights CreateRandom(Accelerator accelerator, ModelConfig config, DType dtype, int seed, int[]? experts) =>
        CreateRandom(accelerator, config, dtype, seed, experts, 0);

    /// <summary>
    /// Random weights of experts [<paramref name="firstExpert"/>, + <paramref name="expertCount"/>) only (an expert-parallel
    /// rank's block; router, bias and shared experts in full): the same values those experts get from the full
    /// <see cref="CreateRandom(Accelerator, ModelConfig, DType, int)"/>, so EP ranks built this way run the same layer.
    /// </summary>
    public static DeviceMoeWeights CreateRandom(Accelerator accelerator, ModelConfig config, DType dtype, int seed, int firstExpert, int expertCount)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (firstExpert < 0 || expertCount < 1 || firstExpert + expertCount > config.NumExperts)
            throw new ArgumentOutOfRangeException(nameof(firstExpert), $"experts [{firstExpert}, {firstExpert + expertCount}) of {config.NumExperts}");
        return CreateRandom(accelerator, config, dtype, seed, Enumerable.Range(firstExpert, expertCount).ToArray(), firstExpert);
    }

    private static DeviceMoeWeights CreateRandom(Accelerator accelerator, ModelConfig config, DType dtype, int seed, int[]? experts, int firstExpert)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(config);
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"compute dtype {DTypes.Name(dtype)} is not f32, bf16 or f16", nameof(dtype));
        int h = config.HiddenSize, i = config.MoeIntermediateSize, e = config.NumExperts, ish = config.SharedIntermediateSize;
        if (h < 1 || i < 1 || e < 1 || ish < 0)
            throw new ArgumentException($"config shapes H {h}, I {i}, E {e}, shared I {ish} must be positive", nameof(config));
        var held = experts ?? Enumerable.Range(0, e).ToArray();
        if (held.Length == 0 || held.Any(x => (uint)x >= (uint)e))
            throw new ArgumentException($"experts must be 1 or more ids in [0, {e})", nameof(experts));
        var result = new DeviceMoeWeights(accelerator, config, dtype, firstExpert, held.Length, i, ish);
        try
        {
            result.RouterGate = RandomBlocks(accelerator, dtype, 1, (long)e * h, h, seed, 0);
            (result.GateUp, result.Down) = RandomExperts(accelerator, config, dtype, seed, held);
            if (config.HasScoreCorrectionBias)
            {
                var random = new Random(seed);
                result.Bias = accelerator.Upload<float>(Enumerable.Range(0, e).Select(_ => 0.2f * random.NextSingle() - 0.1f).ToArray());
            }
            if (ish > 0)
            {
                result.SharedGateUp = RandomBlocks(accelerator, dtype, 1, 2L * ish * h, h, seed, 3);
                result.SharedDown = RandomBlocks(accelerator, dtype, 1, (long)h * ish, ish, seed, 4);
                if (config.HasSharedExpertGate)
                    result.SharedGate = RandomBlocks(accelerator, dtype, 1, h, h, seed, 5);
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>A device buffer of <paramref name="blocks"/> blocks of <paramref name="blockElements"/> random values, uploaded block by block.</summary>
    private static MemoryBuffer RandomBlocks(Accelerator accelerator, DType dtype, int blocks, long blockElements, int fanIn, int seed, int tensor) => dtype switch
    {
        DType.F32 => RandomBlocks<float>(accelerator, blocks, blockElements, fanIn, seed, tensor, v => v),
        DType.BF16 => RandomBlocks<BFloat16>(accelerator, blocks, blockElements, fanIn, seed, tensor, v => (BFloat16)v),
        _ => RandomBlocks<Half>(accelerator, blocks, blockElements, fanIn, seed, tensor, v => (Half)v),
    };

    /// <summary>
    /// The random experts <paramref name="experts"/> (ids, repeats allowed) of <see cref="CreateRandom"/>, stacked:
    /// gate_up [n, 2I, H] and down [n, H, I], each expert's values the same as in a <see cref="CreateRandom"/> of the
    /// same seed (an EPLB slot store filled without a full copy of the layer).
    /// </summary>
    internal static (MemoryBuffer GateUp, MemoryBuffer Down) RandomExperts(Accelerator accelerator, ModelConfig config, DType dtype, int seed, int[] experts)
    {
        int h = config.HiddenSize, i = config.MoeIntermediateSize;
        var gateUp = RandomBlocks(accelerator, dtype, experts, 2L * i * h, h, seed, 1);
        try
        {
            return (gateUp, RandomBlocks(accelerator, dtype, experts, (long)h * i, i, seed, 2));
        }
        catch
        {
            gateUp.Dispose();
            throw;
        }
    }

    private static MemoryBuffer RandomBlocks(Accelerator accelerator, DType dtype, int[] blockIds, long blockElements, int fanIn, int seed, int tensor) => dtype switch
    {
        DType.F32 => RandomBlocks<float>(accelerator, blockIds, blockElements, fanIn, seed, tensor, v => v),
        DType.BF16 => RandomBlocks<BFloat16>(accelerator, blockIds, blockElements, fanIn, seed, tensor, v => (BFloat16)v),
        _ => RandomBlocks<Half>(accelerator, blockIds, blockElements, fanIn, seed, tensor, v => (Half)v),
    };

    private static MemoryBuffer<T> RandomBlocks<T>(Accelerator accelerator, int blocks, long blockElements, int fanIn, int seed, int tensor, Func<float, T> convert)
        where T : unmanaged =>
        RandomBlocks(accelerator, Enumerable.Range(0, blocks).ToArray(), blockElements, fanIn, seed, tensor, convert);

    /// <summary>Blocks of random values; block b holds the values of block id <paramref name="blockIds"/>[b].</summary>
    private static MemoryBuffer<T> RandomBlocks<T>(Accelerator accelerator, int[] blockIds, long blockElements, int fanIn, int seed, int tensor, Func<float, T> convert)
        where T : unmanaged
    {
        int blocks = blockIds.Length;
        if (blockElements > Array.MaxLength)
            throw new ArgumentException($"one expert holds {blockElements} elements, more than one host array can", nameof(blockElements));
        var buffer = accelerator.Allocate<T>(blocks * blockElements);
        try
        {
            var host = new T[blockElements];
            float bound = 1f / MathF.Sqrt(fanIn);
            const int Chunk = 1 << 16;
            int chunks = (int)((blockElements + Chunk - 1) / Chunk);
            for (int block = 0; block < blocks; block++)
            {
                ulong id = (ulong)blockIds[block];
                System.Threading.Tasks.Parallel.For(0, chunks, chunk =>
                {
                    // A SplitMix64 stream per (seed, tensor, block, chunk): reproducible whatever the thread count.
                    ulong state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ ((ulong)tensor << 56) ^ (id << 28) ^ (ulong)chunk;
                    long end = Math.Min(blockElements, (long)(chunk + 1) * Chunk);
                    for (long index = (long)chunk * Chunk; index < end; index++)
                    {
                        state += 0x9E3779B97F4A7C15UL;
                        ulong z = state;
                        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                        z ^= z >> 31;
                        float unit = (z >> 40) * (1f / (1 << 24));
                        host[index] = convert(bound * (2 * unit - 1));
                    }
                });
                buffer.CopyFrom(host, block * blockElements);
            }
            return buffer;
        }
        catch
        {
            buffer.Dispose();
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
