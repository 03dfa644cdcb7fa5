using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// The MoE block on one accelerator:
/// <code>
/// hidden [T, H] --router GEMM--> logits [T, E] F32 --TopKRouting--> ids, weights [T, k], counts [E]
///   --Permute--> expertOffsets [E + 1], rowOfSlot [T*k], gathered rows [T*k, H] in expert order
///   --[dispatch: expert parallelism, see ExpertParallelMoe]
///   --GroupedGemm gate_up with SiLU-and-mul (fused, or its own kernel: FusedSiluRule)--> activation [T*k, I]
///   --GroupedGemm down (F32 out)--> expertOutput [T*k, H]
///   --[combine: expert parallelism]
///   --Combine (weighted sum over the k choices, + shared experts as the residual)--> output [T, H] F32
/// </code>
/// The steps are public so the parallel layers can put communication between them. Everything is
/// enqueued on one stream; nothing is read back to the host, so a forward can be captured in a CUDA graph.
/// </summary>
public sealed class MoeLayer
{
    public MoeLayer(DeviceMoeWeights weights)
    {
        Weights = weights ?? throw new ArgumentNullException(nameof(weights));
        var c = weights.Config;
        Routing = c.ScoringFunction == ScoringFunction.Sigmoid
            ? TopKRoutingOptions.DeepSeek(c.TopK, c.NumGroups, c.TopKGroups, (float)c.RoutedScalingFactor, weights.Bias, c.NormTopKProb)
            : new TopKRoutingOptions(RoutingKind.Softmax, c.TopK, c.NormTopKProb, RoutedScalingFactor: (float)c.RoutedScalingFactor);
        if (c.HiddenAct is not ("silu" or "swish"))
            throw new NotSupportedException($"hidden_act '{c.HiddenAct}': the fused expert epilogue computes SiLU(gate) * up");
    }

    public DeviceMoeWeights Weights { get; }
    public TopKRoutingOptions Routing { get; }
    private Accelerator Accelerator => Weights.Accelerator;
    private ModelConfig Config => Weights.Config;
    private static readonly GroupedGemmOptions Plain = new() { ValidateOffsets = false };
    private static readonly GroupedGemmOptions FusedSilu = new() { ValidateOffsets = false, FusedSiluAndMul = true };

    /// <summary>Optional: told where each phase of a forward starts and ends (benchmarks; null costs nothing).</summary>
    public IMoeLayerPhaseTimer? PhaseTimer { get; set; }

    private void Begin(MoeLayerPhase phase, AcceleratorStream? stream) => PhaseTimer?.Begin(phase, stream ?? Accelerator.DefaultStream);
    private void End(MoeLayerPhase phase, AcceleratorStream? stream) => PhaseTimer?.End(phase, stream ?? Accelerator.DefaultStream);

    /// <summary>The whole block: <paramref name="output"/> [T, H] F32 = MoE(<paramref name="hidden"/> [T, H], compute dtype).</summary>
    public void Forward(MemoryBuffer hidden, MemoryBuffer<float> output, MoeWorkspace workspace, AcceleratorStream? stream = null)
    {
        CheckActivations(hidden, output, workspace);
        if (workspace.Tokens == 0)
            return;
        if (RunsFusedDecode(workspace))
        {
            ForwardFusedDecode(hidden, output, workspace, stream);
            return;
        }
        // The shared experts on their own stream when the workspace has one (not under a phase timer: phases are
        // timed one after another on one stream).
        var side = PhaseTimer is null ? workspace.SharedStream : null;
        MemoryBuffer<float>? residual = null;
        var main = stream ?? Accelerator.DefaultStream;
        if (side is not null)
        {
            side.InputReady.Record(main);
            side.Stream.Wait(side.InputReady);
            residual = RunSharedExperts(hidden, workspace, side.Stream, side.SplitK);
            side.SharedReady.Record(side.Stream);
        }
        ForwardThrough(MoeLayerPhase.ExpertsDown, hidden, output, workspace, null, stream);
        if (side is not null)
            main.Wait(side.SharedReady);
        else
            residual = RunSharedExperts(hidden, workspace, stream);
        RunCombine(output, workspace, residual, stream);
    }

    /// <summary>
    /// The forward's main-stream phases up to and including <paramref name="last"/> (TopKRouting: the router GEMM and the
    /// routing; Permute; ExpertsGateUp; ExpertsDown; Combine, adding <paramref name="residual"/>), as <see cref="Forward"/>
    /// enqueues them, without the shared experts. Forward runs it through ExpertsDown; benchmarks cut a forward with it
    /// (sweep moe_layer's prefix rows). No argument checks: callers pass what Forward would.
    /// </summary>
    internal void ForwardThrough(MoeLayerPhase last, MemoryBuffer hidden, MemoryBuffer<float> output, MoeWorkspace ws, MemoryBuffer<float>? residual,
                                 AcceleratorStream? stream)
    {
        if (last is MoeLayerPhase.RouterGemm or MoeLayerPhase.SharedExperts)
            throw new ArgumentException($"{last} is not where a forward's main stream can stop (TopKRouting, Permute, ExpertsGateUp, ExpertsDown, Combine)", nameof(last));
        if (last == MoeLayerPhase.TopKRouting)
        {
            Route(hidden, ws, stream);
            return;
        }
        RouteAndPermute(hidden, ws, stream);
        if (last == MoeLayerPhase.Permute)
            return;
        RunRoutedGateUp(ws, stream);
        if (last == MoeLayerPhase.ExpertsGateUp)
            return;
        RunRoutedDown(ws, stream);
        if (last == MoeLayerPhase.Combine)
            RunCombine(output, ws, residual, stream);
    }

    /// <summary>The routed experts' gate_up on the rows the workspace's permute gathered, as the forward calls it.</summary>
    internal void RunRoutedGateUp(MoeWorkspace ws, AcceleratorStream? stream) =>
        RunExpertsGateUp(Weights.GateUp, ws.Gathered, ws.ExpertOffsets, ws.Activation, stream, ws.SplitK, ws.GateUpOutput, GemvTileMap(ws), ws.Tokens);

    /// <summary>The routed experts' down on the workspace's activation, as the forward calls it.</summary>
    internal void RunRoutedDown(MoeWorkspace ws, AcceleratorStream? stream)
    {
        var map = GemvTileMap(ws);
        RunExpertsDown(Weights.Down, ws.Activation, ws.ExpertOffsets, ws.ExpertOutput, stream, ws.SplitK, map, ws.GemvPrefetch && map is not null, ws.Tokens);
    }

    private void RunCombine(MemoryBuffer<float> output, MoeWorkspace ws, MemoryBuffer<float>? residual, AcceleratorStream? stream)
    {
        Begin(MoeLayerPhase.Combine, stream);
        Combine.Run(ws.ExpertOutput, ws.RowOfSlot, ws.RoutingWeights, ws.Tokens, Config.TopK, Config.HiddenSize, output, residual, stream);
        End(MoeLayerPhase.Combine, stream);
    }

    /// <summary>
    /// Whether a forward with <paramref name="ws"/> runs the routed experts as the one-launch decode kernel (<see cref="MoeDecode"/>):
    /// the workspace allows its token count, no phase timer is listening (it times the six kernels), this layer holds every expert,
    /// and the chain it stands for fuses SiLU-and-mul into gate_up (the workspace has no separate gate_up output). The
    /// workspace's limit is 0 where the kernel does not take the layer's shapes.
    /// </summary>
    public bool RunsFusedDecode(MoeWorkspace ws) =>
        ws.DecodeBarrier is not null && ws.Tokens >= 1 && ws.Tokens <= ws.FusedDecodeMaxTokens && PhaseTimer is null
        && Weights.ExpertCount == Config.NumExperts && ws.GateUpOutput is null;

    /// <summary>
    /// The forward as one decode kernel plus the shared experts: on their own stream they run beside nothing now (the kernel
    /// adds their output in its last phase, so it waits for them), else first on the forward's stream.
    /// </summary>
    private void ForwardFusedDecode(MemoryBuffer hidden, MemoryBuffer<float> output, MoeWorkspace ws, AcceleratorStream? stream)
    {
        var main = stream ?? Accelerator.DefaultStream;
        MemoryBuffer<float>? residual;
        if (ws.SharedStream is { } side && Weights.SharedGateUp is not null)
        {
            side.InputReady.Record(main);
            side.Stream.Wait(side.InputReady);
            residual = RunSharedExperts(hidden, ws, side.Stream, side.SplitK);
            side.SharedReady.Record(side.Stream);
            main.Wait(side.SharedReady);
        }
        else
            residual = RunSharedExperts(hidden, ws, stream);
        MoeDecode.Run(hidden, Weights.RouterGate, Weights.GateUp, Weights.Down, ws.Tokens, Config.HiddenSize, Weights.Intermediate, Config.NumExperts,
            Routing, ws.Logits, ws.Ids, ws.RoutingWeights, ws.RoutedCounts, ws.Activation, output, ws.DecodeBarrier!, residual, stream);
    }

    /// <summary>Router GEMM, top-k routing and permute: fills the workspace's ids, weights, counts, offsets and gathered rows.</summary>
    public void RouteAndPermute(MemoryBuffer hidden, MoeWorkspace ws, AcceleratorStream? stream)
    {
        int t = ws.Tokens, e = Config.NumExperts, h = Config.HiddenSize, k = Config.TopK;
        Route(hidden, ws, stream);
        Begin(MoeLayerPhase.Permute, stream);
        Permute.Run(ws.Ids, t, k, e, 1, ws.PermutedCounts, ws.ExpertOffsets, ws.RowOfSlot, ws.TokenOfRow,
            hidden, h, ws.Gathered, ws.PermuteWorkspace, stream, GemvTileMap(ws));
        End(MoeLayerPhase.Permute, stream);
    }

    /// <summary>
    /// The workspace's m-tile map when either routed expert GEMM (T*k rows over E experts) runs the decode GEMV, which reads
    /// it; else null (Permute then writes none). A call on another kernel ignores it.
    /// </summary>
    private MemoryBuffer<int>? GemvTileMap(MoeWorkspace ws)
    {
        int rows = ws.Tokens * Config.TopK, e = Config.NumExperts, h = Config.HiddenSize, ih = Weights.Intermediate;
        return ws.TileMap is { } map && (GroupedGemm.RunsGemv(Accelerator, Weights.DType, rows, e, 2 * ih, h) || GroupedGemm.RunsGemv(Accelerator, Weights.DType, rows, e, h, ih))
            ? map : null;
    }

    /// <summary>Router GEMM and top-k routing only: fills the workspace's logits, ids, weights and routed counts.</summary>
    public void Route(MemoryBuffer hidden, MoeWorkspace ws, AcceleratorStream? stream)
    {
        int t = ws.Tokens, e = Config.NumExperts, h = Config.HiddenSize;
        Begin(MoeLayerPhase.RouterGemm, stream);
        GroupedGemm.Run(Accelerator, hidden, Weights.RouterGate, ws.RouterOffsets, ws.Logits, e, h, Plain with { SplitKWorkspace = ws.SplitK }, stream);
        End(MoeLayerPhase.RouterGemm, stream);
        Begin(MoeLayerPhase.TopKRouting, stream);
        TopKRouting.Run(ws.Logits, t, e, Routing, ws.Ids, ws.RoutingWeights, ws.RoutedCounts, stream, ws.RoutingWorkspace);
        End(MoeLayerPhase.TopKRouting, stream);
    }

    /// <summary>
    /// The held experts on rows sorted by expert: <paramref name="expertOffsets"/> [Eh + 1] delimit each held
    /// expert's rows of <paramref name="rows"/> [R, H]; output [R, H] F32 (rows past the last offset untouched).
    /// With <paramref name="splitK"/> (sized for these calls), GEMMs with too few tiles to fill the device split K.
    /// </summary>
    public void RunExperts(MemoryBuffer rows, MemoryBuffer<int> expertOffsets, MemoryBuffer activation, MemoryBuffer<float> expertOutput, AcceleratorStream? stream,
                           GroupedGemmWorkspace? splitK = null) =>
        RunExperts(Weights.GateUp, Weights.Down, rows, expertOffsets, activation, expertOutput, stream, splitK);

    /// <summary>
    /// As above with other expert weights of this layer's shapes, <paramref name="gateUp"/> [n, 2Ih, H] and
    /// <paramref name="down"/> [n, H, Ih] (e.g. the expert slots of an EPLB placement); offsets [n + 1].
    /// With <paramref name="gateUpOutput"/> [R, 2Ih] the gate_up GEMM writes gate | up there and SiLU-and-mul runs as its
    /// own kernel (<see cref="FusedSiluRule"/>); without it, in the GEMM's epilogue.
    /// </summary>
    /// With <paramref name="tileMap"/> (the m-tile map of these offsets, Permute.TileMapElements) the decode GEMVs read their
    /// tiles from it (GroupedGemmOptions.TileMap), and with <paramref name="prefetchDown"/> the down GEMV prefetches its W
    /// rows before it waits for gate_up (GroupedGemmOptions.PrefetchBeforeWait: the map was written before gate_up).
    /// <paramref name="maxRowsPerExpert"/>: a bound on any expert's rows (the tokens: a token's experts are distinct), for
    /// the decode GEMV (GroupedGemmOptions.MaxRowsPerExpert).
    public void RunExperts(MemoryBuffer gateUp, MemoryBuffer down, MemoryBuffer rows, MemoryBuffer<int> expertOffsets, MemoryBuffer activation, MemoryBuffer<float> expertOutput, AcceleratorStream? stream,
                           GroupedGemmWorkspace? splitK = null, MemoryBuffer? gateUpOutput = null, MemoryBuffer<int>? tileMap = null, bool prefetchDown = false,
                           int? maxRowsPerExpert = null)
    {
        RunExpertsGateUp(gateUp, rows, expertOffsets, activation, stream, splitK, gateUpOutput, tileMap, maxRowsPerExpert);
        RunExpertsDown(down, activation, expertOffsets, expertOutput, stream, splitK, tileMap, prefetchDown && tileMap is not null, maxRowsPerExpert);
    }

    /// <summary>
    /// The first half of <see cref="RunExperts(MemoryBuffer, MemoryBuffer, MemoryBuffer, MemoryBuffer{int}, MemoryBuffer, MemoryBuffer{float}, AcceleratorStream?, GroupedGemmWorkspace?, MemoryBuffer?, MemoryBuffer{int}?, bool, int?)"/>:
    /// gate_up and SiLU-and-mul into <paramref name="activation"/> [R, Ih] (an expert-parallel forward enqueues it for every
    /// rank before any rank's down, so the ranks start together).
    /// </summary>
    public void RunExpertsGateUp(MemoryBuffer gateUp, MemoryBuffer rows, MemoryBuffer<int> expertOffsets, MemoryBuffer activation, AcceleratorStream? stream,
                                 GroupedGemmWorkspace? splitK = null, MemoryBuffer? gateUpOutput = null, MemoryBuffer<int>? tileMap = null, int? maxRowsPerExpert = null)
    {
        int h = Config.HiddenSize, ih = Weights.Intermediate;
        Begin(MoeLayerPhase.ExpertsGateUp, stream);
        var options = Plain with { SplitKWorkspace = splitK, TileMap = tileMap, MaxRowsPerExpert = maxRowsPerExpert };
        if (gateUpOutput is null)
            GroupedGemm.Run(Accelerator, rows, gateUp, expertOffsets, activation, 2 * ih, h, options with { FusedSiluAndMul = true }, stream);
        else
        {
            GroupedGemm.Run(Accelerator, rows, gateUp, expertOffsets, gateUpOutput, 2 * ih, h, options, stream);
            GatedActivation.Run(GatedActivationKind.Silu, gateUpOutput, checked((int)(gateUpOutput.Length / (2L * ih))), ih, activation, stream);
        }
        End(MoeLayerPhase.ExpertsGateUp, stream);
    }

    /// <summary>
    /// The second half: down from <paramref name="activation"/> [R, Ih] into <paramref name="expertOutput"/> [R, H] F32. With
    /// <paramref name="prefetch"/> (needs <paramref name="tileMap"/>, written before the kernel before this call) the decode
    /// GEMV prefetches its W rows before it waits for that kernel.
    /// </summary>
    public void RunExpertsDown(MemoryBuffer down, MemoryBuffer activation, MemoryBuffer<int> expertOffsets, MemoryBuffer<float> expertOutput, AcceleratorStream? stream,
                               GroupedGemmWorkspace? splitK = null, MemoryBuffer<int>? tileMap = null, bool prefetch = false, int? maxRowsPerExpert = null)
    {
        int h = Config.HiddenSize, ih = Weights.Intermediate;
        Begin(MoeLayerPhase.ExpertsDown, stream);
        GroupedGemm.Run(Accelerator, activation, down, expertOffsets, expertOutput, h, ih,
            Plain with { SplitKWorkspace = splitK, TileMap = tileMap, PrefetchBeforeWait = prefetch, MaxRowsPerExpert = maxRowsPerExpert }, stream);
        End(MoeLayerPhase.ExpertsDown, stream);
    }

    /// <summary>
    /// Shared experts on every token (qwen2_moe: scaled by sigmoid(gate . x)); returns their F32 output or null.
    /// <paramref name="splitK"/>: the split-K scratch to use (default: the workspace's; another stream needs its own).
    /// </summary>
    public MemoryBuffer<float>? RunSharedExperts(MemoryBuffer hidden, MoeWorkspace ws, AcceleratorStream? stream, GroupedGemmWorkspace? splitK = null)
    {
        if (Weights.SharedGateUp is null || ws.SharedActivation is null || ws.SharedOutput is null)
            return null;
        int h = Config.HiddenSize, ish = Weights.SharedIntermediate;
        splitK ??= ws.SplitK;
        Begin(MoeLayerPhase.SharedExperts, stream);
        var plain = Plain with { SplitKWorkspace = splitK };
        GroupedGemm.Run(Accelerator, hidden, Weights.SharedGateUp, ws.RouterOffsets, ws.SharedActivation, 2 * ish, h, FusedSilu with { SplitKWorkspace = splitK }, stream);
        var options = plain;
        if (Weights.SharedGate is not null && ws.SharedGateScale is not null)
        {
            GroupedGemm.Run(Accelerator, hidden, Weights.SharedGate, ws.RouterOffsets, ws.SharedGateScale, 1, h, plain, stream);
            Sigmoid.Run(ws.SharedGateScale, stream);
            options = plain with { RowScale = ws.SharedGateScale };
        }
        GroupedGemm.Run(Accelerator, ws.SharedActivation, Weights.SharedDown!, ws.RouterOffsets, ws.SharedOutput, h, ish, options, stream);
        End(MoeLayerPhase.SharedExperts, stream);
        return ws.SharedOutput;
    }

    private void CheckActivations(MemoryBuffer hidden, MemoryBuffer<float> output, MoeWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(workspace);
        long expected = (long)workspace.Tokens * Config.HiddenSize;
        if (hidden.DType != Weights.DType)
            throw new ArgumentException($"hidden is {hidden.Describe()}; the layer computes in {DTypes.Name(Weights.DType)}", nameof(hidden));
        if (hidden.Length != expected)
            throw new ArgumentException($"hidden is {hidden.Describe()}; [T={workspace.Tokens}, H={Config.HiddenSize}] needs {expected}", nameof(hidden));
        if (output.Length != expected)
            throw new ArgumentException($"output is {output.Describe()}; [T={workspace.Tokens}, H={Config.HiddenSize}] needs {expected}", nameof(output));
        if (!ReferenceEquals(hidden.Accelerator, Accelerator) || !ReferenceEquals(output.Accelerator, Accelerator))
            throw new ArgumentException($"hidden and output must live on {Accelerator.Name}, where the weights are");
    }
}
