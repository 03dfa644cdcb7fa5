namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// Host time to enqueue one operation of the runtime (microseconds of the thread that issues it), fitted from the
/// <c>host_launch</c> sweep (bench/Runtime/HostLaunchSweep.cs), which times the enqueue on the host with a stopwatch:
/// <list type="bullet">
/// <item><see cref="LaunchUs"/>: one kernel launch through the runtime's ops (validation, planning, cuLaunchKernel),
///   fitted over the ops the EP forward calls (routing, permute, combine, sigmoid; grouped GEMM too in files without
///   <see cref="GemmCallUs"/>) per launch they issue.</item>
/// <item><see cref="CopyUs"/>: one asynchronous copy through a page-locked host stage (the id upload, the offsets and
///   output downloads).</item>
/// <item><see cref="EventUs"/>: one event record (a per-phase timer's mark).</item>
/// <item><see cref="CollectivePerRankUs"/>: one rank's share of an all-to-allv call (its op table upload and its launch).</item>
/// </list>
/// When the device is idle, an eager phase cannot end before its host has issued its last launch: the scale model takes
/// max(device time, host enqueue time) per phase, and with one host thread for all ranks rank r starts after ranks
/// 0..r-1 are enqueued (<see cref="HostTimeline"/>).
/// </summary>
public sealed record HostParams(double LaunchUs, double CopyUs, double EventUs, double CollectivePerRankUs)
{
    /// <summary>
    /// One grouped GEMM call (GroupedGemm.Run: validation, the kernel and split choice, the launch), fitted from the sweep's
    /// GEMM rows apart from the other launches (its planning costs about twice a plain launch: 13.5-14.9 against 5.5-7.7 us
    /// on H200); null in files before it: a GEMM call costs <see cref="LaunchUs"/>, and LaunchUs is fitted over every launch.
    /// </summary>
    public double? GemmCallUs { get; init; }

    /// <summary>
    /// A rank's route (router GEMM, top-k, permute) timed whole on the host per token count (the host_launch sweep's
    /// "phase=route" rows); null in files before it: the route is priced op by op (<see cref="EpHostOps.Route"/>).
    /// </summary>
    public HostPhaseCost? RoutePhase { get; init; }

    /// <summary>
    /// A rank's experts phase (local id fill and upload, permute, gate_up, down, un-permute) timed whole on the host per
    /// received rows ("phase=experts" rows); null in files before it: priced op by op (<see cref="EpHostOps.Experts"/>).
    /// </summary>
    public HostPhaseCost? ExpertsPhase { get; init; }

    /// <summary>
    /// A rank's route timed right after its input upload (HostInputStage.Upload: the conversion and a copy still in flight),
    /// as the EP forward with host arrays issues it (the host_launch sweep's "phase=route after=upload" rows); null in files
    /// before it: <see cref="RoutePhase"/> (an idle stream) or op by op. Used only where the layer uploads its input
    /// (<see cref="HostSchedule.HostArrays"/>); hidden states already on the device take the idle row. Calibrated from the EP
    /// layer's own host marks instead when an ep_layer run is among the files (<see cref="LayerHostMarks"/>).
    /// </summary>
    public HostPhaseCost? RoutePhaseAfterUpload { get; init; }

    /// <summary>
    /// A rank's experts phase timed behind a kernel still running on its stream, as every EP forward issues it (the experts
    /// follow the dispatch's kernel): the sweep's "phase=experts after=kernel" rows, or the EP layer's own host marks when an
    /// ep_layer run is among the files (<see cref="LayerHostMarks"/>); null in files before it: <see cref="ExpertsPhase"/> (an
    /// idle stream) or op by op.
    /// </summary>
    public HostPhaseCost? ExpertsPhaseBusy { get; init; }
}
