using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// Kernel launches and asynchronous host-stage copies one host thread issues for a stretch of work; <see cref="GemmCalls"/>
/// of the launches are grouped GEMM calls (each GroupedGemm.Run: its first launch, which carries the call's planning).
/// </summary>
public readonly record struct HostOps(int Launches, int Copies, int GemmCalls = 0)
{
    /// <summary>
    /// Host microseconds to issue them (0 without host parameters): a GEMM call at <see cref="HostParams.GemmCallUs"/> (when
    /// measured, else a launch), every other launch (a split GEMM's second included) at <see cref="HostParams.LaunchUs"/>.
    /// </summary>
    public double Us(HostParams? p) => p is null ? 0
        : (Launches - GemmCalls) * p.LaunchUs + GemmCalls * (p.GemmCallUs ?? p.LaunchUs) + Copies * p.CopyUs;

    public static HostOps operator +(HostOps a, HostOps b) => new(a.Launches + b.Launches, a.Copies + b.Copies, a.GemmCalls + b.GemmCalls);
}

/// <summary>
/// What the host issues, phase by phase and rank by rank, in <see cref="Parallel.ExpertParallelMoe"/>'s forward over
/// contiguous expert blocks (counted from the code; docs/SCALING.md lists them). Per rank r, in the order one host thread
/// issues them (every rank's route, a host wait, the dispatch, every rank's experts, the combine, every rank's output):
/// <code>
/// before route   input upload (1 copy)
/// route          router GEMM (1; 2 on the skinny split-K kernel with MOE_SKINNY_REDUCE=kernel, 1 on the GEMV at up to 4 tokens with W within 1 MiB: GroupedGemm.SingleMatrixLaunches) + top-k routing (1; its count workspace spares the memset) + permute by global expert
///                (Permute.Launches(t, k, E, gather): one kernel at one chunk of slots, else count, offsets+scatter fused or as two, gather = 3 or 4)
/// after route    expert offsets download (1 copy); then the host waits for every rank (the dispatch sizes)
/// dispatch       all-to-allv: per rank its op table upload and its launch (HostParams.CollectivePerRankUs)
/// experts        local id upload (1 copy) + permute by local expert (Permute.Launches(R, 1, E/N, gather) = 1, 3 or 4)
///                + gate_up with SiLU (1) + down (1) + un-permute (Combine, 1)      (only on a rank that received rows;
///                four steps, issued step by step across ranks by default: ExpertSteps, ExpertParallelMoe.EnqueueOrder)
/// combine        all-to-allv back, as the dispatch
/// output         shared expert gate_up [+ shared gate GEMM + sigmoid (1), qwen2_moe] + down (each GEMM 1, or 2 as above) when the model
///                has shared experts, + weighted sum (Combine, 1)
/// after output   output download (1 copy)
/// </code>
/// Not counted: host work that is not an enqueue (the input's F32 to bf16 conversion before the route, the per-row fill
/// of the local expert ids before the experts' upload, the dispatch-size arithmetic while the devices are idle anyway);
/// the id fill, and whatever else the layer's route and experts phase cost beyond these ops, are priced when the params
/// time those phases whole (<see cref="RouteUs"/>, <see cref="ExpertStepsUs"/>: HostParams.RoutePhase, ExpertsPhase).
/// The EPLB slot path (ForwardOverSlots) issues a few more launches (replica routing, slot counts), not counted here.
/// </summary>
public static class EpHostOps
{
    /// <summary>Before a rank's route: its input upload.</summary>
    public static HostOps BeforeRoute => new(0, 1);

    /// <summary>A rank's route phase at <paramref name="tokens"/> tokens (nothing when it has none).</summary>
    public static HostOps Route(ModelConfig c, int tokens) =>
        tokens <= 0 ? default
            : new HostOps(GroupedGemm.SingleMatrixLaunches(tokens, c.NumExperts, c.HiddenSize) + 1 + Permute.Launches(tokens, c.TopK, c.NumExperts, gather: true), 0, GemmCalls: 1);

    /// <summary>After a rank's route: the download of its expert offsets (the dispatch sizes).</summary>
    public static HostOps AfterRoute => new(0, 1);

    /// <summary>A rank's experts phase on <paramref name="rows"/> received rows over its <paramref name="heldExperts"/> (nothing without rows).</summary>
    public static HostOps Experts(int rows, int heldExperts) => ExpertSteps(rows, heldExperts).Aggregate(default(HostOps), (a, b) => a + b);

    /// <summary>
    /// The experts phase step by step, as ReceivedRowsWorkspace.RunStep issues it (Runtime.Layers.ReceivedRowsStep order):
    /// local id upload + permute by local expert, gate_up with SiLU (one GEMM call), down (one GEMM call), un-permute (Combine);
    /// an interleaved forward issues each step for every rank before the next step. Empty without rows.
    /// </summary>
    public static HostOps[] ExpertSteps(int rows, int heldExperts) =>
        rows <= 0 ? []
            : [new HostOps(Permute.Launches(rows, 1, heldExperts, gather: true), 1), new HostOps(1, 0, GemmCalls: 1), new HostOps(1, 0, GemmCalls: 1), new HostOps(1, 0)];

    /// <summary>
    /// Host microseconds of a rank's route: the sweep's whole-phase measurement when the params have one, issued as the
    /// layer issues it (<paramref name="afterUpload"/>: right after the rank's input upload, <see cref="HostParams.RoutePhaseAfterUpload"/>
    /// when measured) or on an idle stream (<see cref="HostParams.RoutePhase"/>), else its ops priced one by one.
    /// </summary>
    public static double RouteUs(HostParams? p, ModelConfig c, int tokens, bool afterUpload = false) =>
        tokens <= 0 ? 0
            : ((afterUpload ? p?.RoutePhaseAfterUpload : null) ?? p?.RoutePhase) is { } phase ? phase.Us(tokens) : Route(c, tokens).Us(p);

    /// <summary>
    /// Host microseconds of a rank's experts phase per enqueue step (<see cref="ExpertSteps"/>): the ops priced one by one,
    /// or, with a whole-phase measurement, that total shared over the steps in proportion to their op-by-op prices (evenly
    /// when those are 0), so an interleaved enqueue still issues it step by step. The measurement behind a running kernel
    /// (<see cref="HostParams.ExpertsPhaseBusy"/>) when there is one, since the phase always follows the dispatch's kernel on
    /// its stream, else the idle-stream one (<see cref="HostParams.ExpertsPhase"/>).
    /// </summary>
    public static double[] ExpertStepsUs(HostParams? p, int rows, int heldExperts)
    {
        var steps = ExpertSteps(rows, heldExperts).Select(step => step.Us(p)).ToArray();
        if (steps.Length == 0 || (p?.ExpertsPhaseBusy ?? p?.ExpertsPhase) is not { } phase)
            return steps;
        double total = phase.Us(rows), priced = steps.Sum();
        return steps.Select(us => priced > 0 ? total * us / priced : total / steps.Length).ToArray();
    }

    /// <summary>A rank's output phase (shared experts and the weighted sum; nothing when it has no tokens).</summary>
    public static HostOps Output(ModelConfig c, int tokens) =>
        tokens <= 0 ? default : new HostOps(SharedExpertLaunches(c, tokens) + 1, 0, SharedExpertGemmCalls(c));

    /// <summary>The shared experts' GEMM calls: gate_up, [the sigmoid gate's,] down (none without shared experts).</summary>
    private static int SharedExpertGemmCalls(ModelConfig c) => c.SharedIntermediateSize <= 0 ? 0 : c.HasSharedExpertGate ? 3 : 2;

    /// <summary>The shared experts' launches: gate_up with SiLU, [the sigmoid gate's GEMM and sigmoid,] down; each GEMM 1 (2 with MOE_SKINNY_REDUCE=kernel: GroupedGemm.SingleMatrixLaunches).</summary>
    private static int SharedExpertLaunches(ModelConfig c, int tokens)
    {
        if (c.SharedIntermediateSize <= 0)
            return 0;
        int h = c.HiddenSize, ish = c.SharedIntermediateSize;
        int gate = c.HasSharedExpertGate ? GroupedGemm.SingleMatrixLaunches(tokens, 1, h) + 1 : 0;
        return GroupedGemm.SingleMatrixLaunches(tokens, 2 * ish, h, fusedSiluAndMul: true) + gate + GroupedGemm.SingleMatrixLaunches(tokens, h, ish);
    }

    /// <summary>After a rank's output: the download of its output rows.</summary>
    public static HostOps AfterOutput => new(0, 1);
}
