using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Routing;

namespace MoeRuntime.Kernels.Decode;

/// <summary>
/// The routed half of an MoE layer for a few tokens in one launch (moe_decode.cu): router logits, top-k routing,
/// gate_up with SiLU-and-mul, down, and the weighted combine (plus an optional residual, the shared experts' output).
/// On CUDA it gives the bits of the op chain it replaces (GroupedGemm's dense GEMV router, TopKRouting, the decode
/// GEMV's gate_up and down, Combine) for the same kSplit rules; the CPU twin runs the same steps as plain loops.
/// Example (Qwen3-30B-A3B, T = 1): one kernel instead of six; its time is the two weight streams (75 MB) and two grid
/// barriers, instead of six kernels' starts and waits.
/// </summary>
public static class MoeDecode
{
    /// <summary>Tokens a launch routes (MD_MAX_TOKENS: a warp each).</summary>
    public const int MaxTokens = 8;

    /// <summary>Choices per token (MD_MAX_K).</summary>
    public const int MaxTopK = 16;

    /// <summary>Experts (16 slots a lane of the routing warp).</summary>
    public const int MaxExperts = 512;

    internal const int Warps = 8;      // MD_WARPS
    private const int MaxQuads = 8;    // MD_MAX_QUADS

    /// <summary>The down rows' bytes the blocks prefetch into L2 at most, before the down phase (a share of the 50-60 MB L2).</summary>
    internal const long PrefetchBudgetBytes = 32L << 20;

    private static readonly Lazy<KernelSource> Source = new(() => KernelSource.FromResource(typeof(MoeDecode).Assembly, "moe_decode.cu"));

    /// <summary>Why a layer of these shapes cannot run here (a sentence), or null when it can.</summary>
    public static string? Unsupported(DType dtype, int tokens, int experts, int topK, int hidden, int intermediate) =>
        dtype is not (DType.BF16 or DType.F16) ? $"{DTypes.Name(dtype)} (bf16 or f16 only)"
        : tokens is < 1 or > MaxTokens ? $"{tokens} tokens (1..{MaxTokens})"
        : experts is < 1 or > MaxExperts ? $"{experts} experts (1..{MaxExperts})"
        : topK < 1 || topK > MaxTopK || topK > experts ? $"top-{topK} of {experts} experts (k 1..{MaxTopK})"
        : hidden < 8 || hidden % 8 != 0 ? $"hidden size {hidden} (a multiple of 8)"
        : intermediate < 8 || intermediate % 8 != 0 ? $"intermediate size {intermediate} (a multiple of 8)"
        : null;

    /// <summary>
    /// <paramref name="output"/> [T, H] F32 = residual + sum over the k choices of weight x down(silu(gate . x) * (up . x)).
    /// Writes <paramref name="logits"/> [T, E], <paramref name="ids"/> and <paramref name="weights"/> [T, k],
    /// <paramref name="counts"/> [E] as the router GEMM and TopKRouting do; <paramref name="activation"/> [T * k, I] is
    /// scratch (slot order). <paramref name="barrier"/>: one int, zero, left zero (CUDA only; the CPU ignores it).
    /// </summary>
    public static void Run(MemoryBuffer hidden, MemoryBuffer router, MemoryBuffer gateUp, MemoryBuffer down, int tokens, int hiddenSize,
        int intermediate, int experts, TopKRoutingOptions routing, MemoryBuffer<float> logits, MemoryBuffer<int> ids, MemoryBuffer<float> weights,
        MemoryBuffer<int> counts, MemoryBuffer activation, MemoryBuffer<float> output, MemoryBuffer<int> barrier, MemoryBuffer<float>? residual = null,
        AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(routing);
        var accelerator = hidden.Accelerator;
        int k = routing.TopK;
        if (Unsupported(hidden.DType, tokens, experts, k, hiddenSize, intermediate) is { } why)
            throw new ArgumentException($"the fused decode layer does not take {why}", nameof(hidden));
        long slots = (long)tokens * k;
        HostRows.Check(hidden, accelerator, (long)tokens * hiddenSize, nameof(hidden));
        HostRows.Check(router, accelerator, (long)experts * hiddenSize, nameof(router));
        HostRows.Check(gateUp, accelerator, (long)experts * 2 * intermediate * hiddenSize, nameof(gateUp));
        HostRows.Check(down, accelerator, (long)experts * hiddenSize * intermediate, nameof(down));
        HostRows.CheckDType(router, hidden.DType, nameof(router));
        HostRows.CheckDType(gateUp, hidden.DType, nameof(gateUp));
        HostRows.CheckDType(down, hidden.DType, nameof(down));
        HostRows.CheckDType(activation, hidden.DType, nameof(activation));
        TopKRouting.Validate(logits, tokens, experts, routing, ids, weights, counts);
        HostRows.Check(activation, accelerator, slots * intermediate, nameof(activation));
        HostRows.Check(output, accelerator, (long)tokens * hiddenSize, nameof(output));
        HostRows.Check(barrier, accelerator, 1, nameof(barrier));
        if (residual is not null)
            HostRows.Check(residual, accelerator, (long)tokens * hiddenSize, nameof(residual));
        var s = stream ?? accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, accelerator))
            throw new ArgumentException($"stream of {s.Accelerator.Name} used with hidden on {accelerator.Name}", nameof(stream));

        if (accelerator is CudaAccelerator cuda)
        {
            CheckAligned(hidden, nameof(hidden));
            CheckAligned(router, nameof(router));
            CheckAligned(gateUp, nameof(gateUp));
            CheckAligned(down, nameof(down));
            CheckAligned(activation, nameof(activation));
            Launch(cuda, (CudaStream)s, hidden, router, gateUp, down, residual, tokens, hiddenSize, intermediate, experts, routing, logits, ids, weights,
                counts, activation, output, barrier);
        }
        else
        {
            s.Synchronize();
            MoeDecodeCpu.Run(hidden, router, gateUp, down, residual, tokens, hiddenSize, intermediate, experts, routing, logits, ids, weights, counts,
                activation, output);
        }
    }

    private static void CheckAligned(MemoryBuffer buffer, string name)
    {
        if (buffer.Pointer % 16 != 0)
            throw new ArgumentException($"{name} must be 16-byte aligned (the kernel reads 16-byte chunks of its rows)", name);
    }

    /// <summary>The kernel's splits and shapes for a call: what the op chain it stands for would use.</summary>
    internal readonly record struct Plan(int RouterSplit, int GateUpSplit, int DownSplit, int DownQuads, int PrefetchLines, int PerLane, bool Contiguous,
                                         int Unroll = 1, bool EarlyPrefetch = false)
    {
        /// <summary>
        /// The build's compile options for <paramref name="dtype"/>'s entry alone (<see cref="DTypeBuilds.One"/>), made once
        /// per build (a launch looks them up: no strings on the call path).
        /// </summary>
        public string[] BuildOptions(DType dtype, bool traced) =>
            s_buildOptions.GetOrAdd((dtype, PerLane, Contiguous, Unroll, EarlyPrefetch, traced), b =>
            [
                .. DTypeBuilds.One("MD", b.DType),
                $"-DMD_PER_LANE={b.PerLane}", $"-DMD_CONTIGUOUS={(b.Contiguous ? 1 : 0)}", $"-DMD_UNROLL={b.Unroll}",
                .. b.Early ? (string[])["-DMD_EARLY_PREFETCH"] : [], .. b.Traced ? (string[])["-DMD_TRACE"] : [],
            ]);

        private static readonly System.Collections.Concurrent.ConcurrentDictionary<(DType DType, int PerLane, bool Contiguous, int Unroll, bool Early, bool Traced), string[]> s_buildOptions = new();
    }

    /// <summary>
    /// MOE_DECODE_TRACE=1: launches take the -DMD_TRACE build, which writes <see cref="TraceStamps"/> %globaltimer stamps a
    /// block into <see cref="TraceBuffer"/> (a diagnostic: where a launch's time goes; set the buffer first).
    /// </summary>
    public static bool TraceRequested { get; } = Environment.GetEnvironmentVariable("MOE_DECODE_TRACE") == "1";

    /// <summary>
    /// Values a block of the traced build writes (MD_TRACE_STAMPS): the times after the wait, router, barrier 1, routing,
    /// gate_up, prefetch, barrier 2, down; then the block's SM (%smid).
    /// </summary>
    public const int TraceStamps = 9;

    /// <summary>Where traced launches write: [blocks, <see cref="TraceStamps"/>] (at least that long), or null: no trace.</summary>
    public static MemoryBuffer<long>? TraceBuffer { get; set; }

    /// <summary>Blocks of the last traced launch.</summary>
    public static int TracedBlocks { get; private set; }

    /// <summary>Of those, the blocks with a router item (blocks 0 ..), and the blocks with a gate_up item (blocks 0 ..).</summary>
    public static (int Router, int GateUp) TracedWorkingBlocks { get; private set; }

    /// <param name="residentBlocks">The blocks of the grid the device holds at once (0: not known, gate_up keeps the chain's split).</param>
    internal static Plan PlanFor(MemoryBuffer logits, int tokens, int hiddenSize, int intermediate, int experts, TopKRoutingOptions routing, int? prefetchLines = null,
                                 int residentBlocks = 0)
    {
        // The router takes the dense GEMV's split, gate_up and down the grouped GEMV's (GroupedGemmDenseGemv, GroupedGemmGemv),
        // gate_up's raised where its items would leave most of the grid idle (GateUpSplitFor).
        int routerSplit = GroupedGemmGemv.KSplitFor(hiddenSize, GroupedGemmDenseGemv.WarpK);
        int warpK = GroupedGemmGemv.WarpKFromEnvironment();
        int gateUpSplit = SwitchedGateUpSplit(tokens * routing.TopK, hiddenSize, intermediate, GroupedGemmGemv.KSplitFor(hiddenSize, warpK), residentBlocks);
        int downSplit = GroupedGemmGemv.KSplitFor(intermediate, warpK);
        int downQuads = Math.Clamp(Warps / downSplit / routing.TopK, 1, MaxQuads);
        int perLane = 1;
        while (perLane * 32 < experts)
            perLane *= 2;
        bool contiguous = TopKRouting.UsesContiguousLayout(logits, experts, perLane, routing);
        return new Plan(routerSplit, gateUpSplit, downSplit, downQuads, prefetchLines ?? PrefetchLinesFor(tokens, routing.TopK, hiddenSize, intermediate),
            perLane, contiguous, MoeDecodeSwitch.Unroll, MoeDecodeSwitch.Prefetch == DecodePrefetch.Early);
    }

    /// <summary>
    /// Gate_up's split (warps a dot product): the chain's GEMV split, doubled while the phase would have items for at most
    /// half of <paramref name="residentBlocks"/> and each warp's share of H stays at least <see cref="MinRaisedWarpK"/>. Only
    /// a short gate_up has so few items: a tensor-parallel rank's slice of Qwen3-30B-A3B (I = 384, 8 slots) has 192 items for
    /// 512 blocks at split 1 and 384 at 2. 2 x H200, 2026-12-01, the slice alone on one GPU, 4 layers cycled: 22.0 / 22.1 ->
    /// 20.2 us; the whole layer (384 items) lost at split 2 (29.3 -> 31.2 us) and keeps 1. Where the split is raised the
    /// kernel's sums are not the chain's bits (its GEMV keeps the lower split); they agree within rounding.
    /// </summary>
    internal static int GateUpSplitFor(int slots, int hiddenSize, int intermediate, int chainSplit, int residentBlocks)
    {
        long units = (long)slots * ((intermediate + 1) / 2);
        long ItemsAt(int split) => (units + Warps / split - 1) / (Warps / split);
        int splitNow = chainSplit;
        while (splitNow < Warps && 2 * ItemsAt(splitNow) <= residentBlocks && hiddenSize / (2 * splitNow) >= MinRaisedWarpK)
            splitNow *= 2;
        return splitNow;
    }

    /// <summary><see cref="GateUpSplitFor"/> under MOE_DECODE_GATE_UP_SPLIT=auto (the default); the chain's split under chain.</summary>
    private static int SwitchedGateUpSplit(int slots, int hiddenSize, int intermediate, int chainSplit, int residentBlocks) =>
        MoeDecodeSwitch.RaiseGateUpSplit ? GateUpSplitFor(slots, hiddenSize, intermediate, chainSplit, residentBlocks) : chainSplit;

    /// <summary>The least elements of H a warp's share may hold when <see cref="GateUpSplitFor"/> raises the split.</summary>
    internal const int MinRaisedWarpK = 512;

    /// <summary>
    /// 128-byte lines of each down row (bf16/f16: 2 bytes an element) to prefetch: the chosen experts' whole rows, or as many
    /// of each as <see cref="PrefetchBudgetBytes"/> holds; 0 under MOE_DECODE_PREFETCH=off.
    /// </summary>
    internal static int PrefetchLinesFor(int tokens, int topK, int hiddenSize, int intermediate)
    {
        if (MoeDecodeSwitch.Prefetch == DecodePrefetch.Off)
            return 0;
        long rows = (long)tokens * topK * hiddenSize;
        int rowLines = (intermediate * 2 + 127) / 128;
        return (int)Math.Clamp(PrefetchBudgetBytes / (rows * 128), 0, rowLines);
    }

    /// <summary>Tests: the plan of this thread's last CUDA launch.</summary>
    internal static Plan? LastPlan => t_lastPlan;

    [ThreadStatic] private static Plan? t_lastPlan;

    private static void Launch(CudaAccelerator cuda, CudaStream stream, MemoryBuffer hidden, MemoryBuffer router, MemoryBuffer gateUp, MemoryBuffer down,
        MemoryBuffer<float>? residual, int tokens, int hiddenSize, int intermediate, int experts, TopKRoutingOptions routing, MemoryBuffer<float> logits,
        MemoryBuffer<int> ids, MemoryBuffer<float> weights, MemoryBuffer<int> counts, MemoryBuffer activation, MemoryBuffer<float> output, MemoryBuffer<int> barrier)
    {
        // The build depends on the routing's layout only, so the grid's size is known before the splits are chosen.
        var layout = PlanFor(logits, tokens, hiddenSize, intermediate, experts, routing);
        var trace = TraceRequested ? TraceBuffer : null;
        var kernel = cuda.LoadKernel(Source.Value, $"moe_decode_{HostRows.Suffix(hidden.DType)}", layout.BuildOptions(hidden.DType, trace is not null));
        // Every block resident (the barriers wait for all of them), and no more blocks than the largest phase has items.
        int perSm = kernel.MaxActiveBlocksPerSm(Warps * 32);
        if (MoeDecodeSwitch.BlocksPerSm > 0)
            perSm = Math.Min(perSm, MoeDecodeSwitch.BlocksPerSm);
        int resident = perSm * cuda.Info.MultiprocessorCount;
        if (resident < 1)
            throw new InvalidOperationException($"moe_decode: the device holds no block of {Warps * 32} threads of it");
        var plan = layout with { GateUpSplit = SwitchedGateUpSplit(tokens * routing.TopK, hiddenSize, intermediate, layout.GateUpSplit, resident) };
        t_lastPlan = plan;
        long gateUpItems = ((long)tokens * routing.TopK * ((intermediate + 1) / 2) + Warps / plan.GateUpSplit - 1) / (Warps / plan.GateUpSplit);
        long downItems = (long)tokens * ((hiddenSize + 4 * plan.DownQuads - 1) / (4 * plan.DownQuads));
        long routerItems = ((long)experts + Warps / plan.RouterSplit - 1) / (Warps / plan.RouterSplit);
        int blocks = (int)Math.Clamp(Math.Max(Math.Max(gateUpItems, downItems), routerItems), 1, resident);
        bool grouped = routing.Kind == RoutingKind.DeepSeekGrouped;
        if (trace is not null && trace.Length < (long)blocks * TraceStamps)
            throw new InvalidOperationException($"MoeDecode.TraceBuffer holds {trace.Length} stamps; {blocks} blocks need {(long)blocks * TraceStamps}");
        Span<KernelArg> args = [hidden, router, grouped ? routing.CorrectionBias : null, gateUp, down, residual, logits, ids, weights, counts, activation, output, barrier,
            tokens, hiddenSize, intermediate, experts, routing.TopK, routing.Renormalize ? 1 : 0, grouped ? 1 : 0,
            grouped ? routing.GroupCount : 1, grouped ? routing.TopKGroups : 1, routing.RoutedScalingFactor,
            plan.RouterSplit, plan.GateUpSplit, plan.DownSplit, plan.DownQuads, plan.PrefetchLines, trace];
        kernel.LaunchCooperative(stream, new Dim3((uint)blocks, 1, 1), new Dim3(Warps * 32, 1, 1), 0, trace is null ? args[..^1] : args);
        if (trace is not null)
        {
            TracedBlocks = blocks;
            TracedWorkingBlocks = ((int)Math.Min(blocks, routerItems), (int)Math.Min(blocks, gateUpItems));
        }
    }
}
