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
/// A shared expert of the routed experts' shape with no gate (DeepSeek-V3: one shared expert of I) is stored right
/// after them: <see cref="JoinedGateUp"/> [Eh + 1, 2Ih, H] and <see cref="JoinedDown"/> [Eh + 1, H, Ih] own the memory,
/// GateUp, Down, SharedGateUp and SharedDown are views of it, so one grouped GEMM can run the shared expert as expert Eh.
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

    /// <summary>The held experts then the shared expert, [Eh + 1, 2Ih, H], where it has their shape and no gate; else null.</summary>
    public MemoryBuffer? JoinedGateUp { get; private set; }

    /// <summary>[Eh + 1, H, Ih], as <see cref="JoinedGateUp"/>.</summary>
    public MemoryBuffer? JoinedDown { get; private set; }

    /// <summary>Whether the shared expert can run as one more expert of the routed GEMMs: one of I rows and no sigmoid gate.</summary>
    public static bool SharedJoinsRouted(ModelConfig config) =>
        config.SharedIntermediateSize == config.MoeIntermediateSize && !config.HasSharedExpertGate;

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
            bool join = weights.SharedGateUp is not null && weights.SharedDown is not null && SharedJoinsRouted(c);
            result.AllocateExperts(experts, join);
            CopyFloats(result.GateUp, SliceGateUp(gateUp, firstExpert, experts, i, h, tpRank, tpRanks));
            CopyFloats(result.Down, SliceDown(down, firstExpert, experts, h, i, tpRank, tpRanks));
            if (weights.ScoreCorrectionBias is { } bias)
                result.Bias = accelerator.Upload<float>(bias);
            if (weights.SharedGateUp is { } sgu && weights.SharedDown is { } sd)
            {
                int isFull = c.SharedIntermediateSize;
                var sharedGateUp = SliceGateUp(sgu.ToFloats(), 0, 1, isFull, h, tpRank, tpRanks);
                var sharedDown = SliceDown(sd.ToFloats(), 0, 1, h, isFull, tpRank, tpRanks);
                if (join)
                {
                    CopyFloats(result.SharedGateUp!, sharedGateUp);
                    CopyFloats(result.SharedDown!, sharedDown);
                }
                else
                {
                    result.SharedGateUp = UploadFloats(accelerator, sharedGateUp, weights.DType);
                    result.SharedDown = UploadFloats(accelerator, sharedDown, weights.DType);
                }
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
            bool join = ish > 0 && SharedJoinsRouted(config);
            result.AllocateExperts(held.Length, join);
            FillRandomBlocks(result.GateUp, held, 2L * i * h, h, seed, 1);
            FillRandomBlocks(result.Down, held, (long)h * i, i, seed, 2);
            if (config.HasScoreCorrectionBias)
            {
                var random = new Random(seed);
                result.Bias = accelerator.Upload<float>(Enumerable.Range(0, e).Select(_ => 0.2f * random.NextSingle() - 0.1f).ToArray());
            }
            if (ish > 0)
            {
                result.SharedGateUp ??= Allocate(accelerator, dtype, 2L * ish * h);
                result.SharedDown ??= Allocate(accelerator, dtype, (long)h * ish);
                FillRandomBlocks(result.SharedGateUp, [0], 2L * ish * h, h, seed, 3);
                FillRandomBlocks(result.SharedDown, [0], (long)h * ish, ish, seed, 4);
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
    private static MemoryBuffer RandomBlocks(Accelerator accelerator, DType dtype, int blocks, long blockElements, int fanIn, int seed, int tensor) =>
        RandomBlocks(accelerator, dtype, Enumerable.Range(0, blocks).ToArray(), blockElements, fanIn, seed, tensor);

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

    private static MemoryBuffer RandomBlocks(Accelerator accelerator, DType dtype, int[] blockIds, long blockElements, int fanIn, int seed, int tensor)
    {
        var buffer = Allocate(accelerator, dtype, blockIds.Length * blockElements);
        try
        {
            FillRandomBlocks(buffer, blockIds, blockElements, fanIn, seed, tensor);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Fills <paramref name="target"/> with blocks of random values; block b holds the values of block id <paramref name="blockIds"/>[b].</summary>
    private static void FillRandomBlocks(MemoryBuffer target, int[] blockIds, long blockElements, int fanIn, int seed, int tensor)
    {
        switch (target)
        {
            case MemoryBuffer<float> f: FillRandomBlocks(f, blockIds, blockElements, fanIn, seed, tensor, v => v); break;
            case MemoryBuffer<BFloat16> b: FillRandomBlocks(b, blockIds, blockElements, fanIn, seed, tensor, v => (BFloat16)v); break;
            case MemoryBuffer<Half> h: FillRandomBlocks(h, blockIds, blockElements, fanIn, seed, tensor, v => (Half)v); break;
            default: throw new ArgumentException($"random weights in {target.Describe()}: f32, bf16 or f16 only", nameof(target));
        }
    }

    private static void FillRandomBlocks<T>(MemoryBuffer<T> target, int[] blockIds, long blockElements, int fanIn, int seed, int tensor, Func<float, T> convert)
        where T : unmanaged
    {
        int blocks = blockIds.Length;
        if (blockElements > Array.MaxLength)
            throw new ArgumentException($"one expert holds {blockElements} elements, more than one host array can", nameof(blockElements));
        if (target.Length != blocks * blockElements)
            throw new ArgumentException($"{blocks} blocks of {blockElements} do not fill {target.Describe()}", nameof(target));
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
            target.CopyFrom(host, block * blockElements);
        }
    }

    /// <summary>
    /// Allocates GateUp and Down for <paramref name="experts"/> experts of this layer's shapes; with <paramref name="joinShared"/>,
    /// as views of <see cref="JoinedGateUp"/> and <see cref="JoinedDown"/>, one expert longer, whose last expert
    /// SharedGateUp and SharedDown view (the shared expert has the routed shape: <see cref="SharedJoinsRouted"/>).
    /// </summary>
    private void AllocateExperts(int experts, bool joinShared)
    {
        int h = Config.HiddenSize, ih = Intermediate;
        long gateUpBlock = 2L * ih * h, downBlock = (long)h * ih;
        if (!joinShared)
        {
            GateUp = Allocate(Accelerator, DType, experts * gateUpBlock);
            Down = Allocate(Accelerator, DType, experts * downBlock);
            return;
        }
        if (SharedIntermediate != ih)
            throw new InvalidOperationException($"a shared expert of {SharedIntermediate} rows cannot join routed experts of {ih}");
        JoinedGateUp = Allocate(Accelerator, DType, (experts + 1) * gateUpBlock);
        JoinedDown = Allocate(Accelerator, DType, (experts + 1) * downBlock);
        GateUp = Slice(JoinedGateUp, 0, experts * gateUpBlock);
        SharedGateUp = Slice(JoinedGateUp, experts * gateUpBlock, gateUpBlock);
        Down = Slice(JoinedDown, 0, experts * downBlock);
        SharedDown = Slice(JoinedDown, experts * downBlock, downBlock);
    }

    private static MemoryBuffer Allocate(Accelerator accelerator, DType dtype, long length) => dtype switch
    {
        DType.F32 => accelerator.Allocate<float>(length),
        DType.BF16 => accelerator.Allocate<BFloat16>(length),
        DType.F16 => accelerator.Allocate<Half>(length),
        _ => throw new ArgumentException($"compute dtype {DTypes.Name(dtype)} is not f32, bf16 or f16", nameof(dtype)),
    };

    private static MemoryBuffer Slice(MemoryBuffer buffer, long offset, long length) => buffer switch
    {
        MemoryBuffer<float> f => f.Slice(offset, length),
        MemoryBuffer<BFloat16> b => b.Slice(offset, length),
        MemoryBuffer<Half> h => h.Slice(offset, length),
        _ => throw new ArgumentException($"no view for {buffer.Describe()}", nameof(buffer)),
    };

    /// <summary>Copies host floats into <paramref name="target"/> (its whole length), converted to its dtype.</summary>
    private static void CopyFloats(MemoryBuffer target, float[] values)
    {
        if (target.Length != values.Length)
            throw new ArgumentException($"{values.Length} values for {target.Describe()}", nameof(values));
        switch (target)
        {
            case MemoryBuffer<float> f: f.CopyFrom(values); break;
            case MemoryBuffer<BFloat16> b: b.CopyFrom(values.Select(v => (BFloat16)v).ToArray()); break;
            case MemoryBuffer<Half> h: h.CopyFrom(values.Select(v => (Half)v).ToArray()); break;
            default: throw new ArgumentException($"weights in {target.Describe()}: f32, bf16 or f16 only", nameof(target));
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

    /// <summary>Device bytes held (the joined buffers are counted through their views).</summary>
    public long Bytes => new[] { RouterGate, GateUp, Down, Bias, SharedGateUp, SharedDown, SharedGate }.Sum(b => b?.LengthBytes ?? 0);

    public void Dispose()
    {
        foreach (var buffer in new[] { RouterGate, GateUp, Down, Bias, SharedGateUp, SharedDown, SharedGate, JoinedGateUp, JoinedDown })
            buffer?.Dispose();
    }
}
