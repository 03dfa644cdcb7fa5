namespace MoeRuntime.Runtime.Parallel;

/// <summary>The phases of an expert-parallel forward, in order (see <see cref="ExpertParallelMoe"/>).</summary>
public enum ExpertParallelPhase
{
    /// <summary>Router GEMM, top-k routing, permute (gather) of the rank's own tokens.</summary>
    RouteAndPermute,
    /// <summary>All-to-allv of the gathered rows to the ranks that hold their experts.</summary>
    Dispatch,
    /// <summary>Local permute by held expert, the two grouped GEMMs, local un-permute.</summary>
    Experts,
    /// <summary>All-to-allv of the expert outputs back (F32 rows).</summary>
    Combine,
    /// <summary>Shared experts and the weighted sum over the k choices.</summary>
    SharedAndUnpermute,
}

/// <summary>
/// Hook told, from the host thread that enqueues the work, where each phase starts and ends on each rank
/// (work is enqueued on the rank's default stream; collectives are marked on every rank). A benchmark records
/// device events here; nothing else changes. With the interleaved experts enqueue (<see cref="EpEnqueueOrder"/>) the
/// ranks' experts marks nest (every Begin, then every End): a rank's device events still bracket only its own stream's work,
/// but the host time between its marks includes the other ranks' steps.
/// </summary>
public interface IExpertParallelPhaseTimer
{
    void Begin(ExpertParallelPhase phase, int rank);
    void End(ExpertParallelPhase phase, int rank);
}
