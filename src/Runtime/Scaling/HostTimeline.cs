using MoeRuntime.Runtime.Parallel;

namespace MoeRuntime.Runtime.Scaling;

/// <summary>Who issues the ranks' work: one host thread for every rank (the in-process ExpertParallelMoe), or one per rank (one process per GPU).</summary>
public enum HostThreads
{
    /// <summary>One thread enqueues rank 0's phase, then rank 1's, ...: rank r starts after ranks 0..r-1 are enqueued.</summary>
    OneForAllRanks,
    /// <summary>Each rank's own thread (RankExpertParallelMoe, a process per GPU): no cross-rank serialisation, per-launch costs remain.</summary>
    OnePerRank,
}

/// <summary>
/// How an EP forward's work is issued, for the host enqueue term: by how many threads, with a per-phase timer's marks or
/// not, and whether the layer takes and returns host arrays (an input upload before the route, an output download after
/// the output phase) or keeps its hidden states on the devices between layers.
/// </summary>
public sealed record HostSchedule(HostThreads Threads, bool PhaseTimerMarks, bool HostArrays)
{
    /// <summary>
    /// How one thread for all ranks enqueues the experts phase (ExpertParallelMoe.EnqueueOrder; the runtime's default is
    /// interleaved, runs before it were ranked). No effect with <see cref="HostThreads.OnePerRank"/>.
    /// </summary>
    public EpEnqueueOrder Order { get; init; } = EpEnqueueOrder.Interleaved;

    /// <summary>`moe bench layer --parallel ep`: ExpertParallelMoe in one process, one thread for all ranks, event marks at every phase, host arrays in and out.</summary>
    public static readonly HostSchedule InProcessBench = new(HostThreads.OneForAllRanks, PhaseTimerMarks: true, HostArrays: true);

    /// <summary>A deployment at scale: one process per GPU, no timer, hidden states stay on the device between layers.</summary>
    public static readonly HostSchedule ProcessPerGpu = new(HostThreads.OnePerRank, PhaseTimerMarks: false, HostArrays: false);
}

/// <summary>The five phases of an EP layer, in microseconds.</summary>
public sealed record PhaseTimes(double RouteUs, double DispatchUs, double ExpertsUs, double CombineUs, double OutputUs)
{
    public double SumUs => RouteUs + DispatchUs + ExpertsUs + CombineUs + OutputUs;

    public static PhaseTimes Average(IReadOnlyList<PhaseTimes> items) => new(
        items.Average(t => t.RouteUs), items.Average(t => t.DispatchUs), items.Average(t => t.ExpertsUs), items.Average(t => t.CombineUs), items.Average(t => t.OutputUs));
}

/// <summary>
/// One rank's work in an EP layer forward: device time of its own phases (the all-to-alls are shared) and host time to
/// enqueue them (<see cref="EpHostOps"/> priced by <see cref="HostParams"/>). <see cref="ExpertsHostStepsUs"/>: the experts
/// phase's host time step by step (EpHostOps.ExpertSteps: permute, gate_up, down, un-permute), which an interleaved enqueue
/// issues across ranks step by step; null: one step of <see cref="ExpertsHostUs"/>. <see cref="ExpertsDeviceStepsUs"/>: the
/// phase's device time in the same steps (<see cref="ExpertDeviceSteps"/>; they sum to <see cref="ExpertsUs"/>), each run
/// once its host step is issued; null (or a different count of steps): the whole phase may run from its first step on.
/// </summary>
public sealed record RankWork(bool HasTokens, bool HasRows, double RouteUs, double ExpertsUs, double OutputUs,
                              double BeforeRouteHostUs = 0, double RouteHostUs = 0, double AfterRouteHostUs = 0,
                              double ExpertsHostUs = 0, double OutputHostUs = 0, double AfterOutputHostUs = 0,
                              IReadOnlyList<double>? ExpertsHostStepsUs = null, IReadOnlyList<double>? ExpertsDeviceStepsUs = null)
{
    /// <summary>The experts phase's host time per enqueue step (one step when not given by steps).</summary>
    public IReadOnlyList<double> ExpertsHostSteps => ExpertsHostStepsUs is { Count: > 0 } steps ? steps : [ExpertsHostUs];
}

/// <summary>
/// What <see cref="HostTimeline.Run"/> plays out: the critical and timed phases, and when each rank's experts begin and
/// end on its device (us from the forward's start; NaN for a rank without rows), what the EP bench's per-rank marks read.
/// </summary>
public sealed record Timeline(PhaseTimes Critical, PhaseTimes Timed, double[] ExpertsBeginUs, double[] ExpertsEndUs)
{
    public void Deconstruct(out PhaseTimes critical, out PhaseTimes timed) => (critical, timed) = (Critical, Timed);
}

/// <summary>
/// Plays an EP layer forward on a host clock and one device clock per rank, in the order the forward issues its work
/// (ExpertParallelMoe.Forward: every rank's route, a host wait for the dispatch sizes, the dispatch, every rank's
/// experts (interleaved: step by step across ranks; ranked: rank after rank), the combine, every rank's output):
/// <code>
/// a phase of rank r   begins on the device at max(device_r, host) (its stream is idle until the host gets there), the
///                     host then spends its enqueue time, and the phase ends at max(begin + device time, host): an eager
///                     phase cannot end before its last launch is issued (the floor max(device, host enqueue))
/// an all-to-all       the host issues rank r's share only once rank r's stream is idle (the op table upload synchronises
///                     it: CudaCollectiveBackend.Run), so it starts when every rank's share is issued after its previous
///                     work, and ends transfer later
/// host wait           after the route: host = max(host, every device)
/// experts of rank d   begin at max(device_d, host when its first step is issued), end at max(begin + device time, host
///                     when its last step is issued); the steps of all ranks are issued in the enqueue order. With device
///                     time per step, step s runs from max(step s-1's end, host when step s is issued): the GEMMs wait
///                     for the host to have planned and issued them, even where the GPU is otherwise free
/// </code>
/// With <see cref="HostThreads.OneForAllRanks"/> the host clock is shared: ranked, rank 1's experts start after rank 0's
/// whole phase is enqueued and rank 0's combine waits for them; interleaved, one step (rank 0's permute) after rank 0's.
/// With <see cref="HostThreads.OnePerRank"/> each rank has its own clock.
/// A per-phase timer's marks cost <c>eventUs</c> each on the host (0 without a timer). With no host costs this gives the
/// device-only model exactly: the critical path is the sum of each phase's slowest rank, and the timer's combine adds
/// the wait of the rank whose experts end first (slowest minus fastest experts).
/// Not modelled: the last kernel of a phase running after its launch is issued (so a host-bound phase may end a little
/// later than the host), and host work that is not an enqueue.
/// </summary>
public static class HostTimeline
{
    /// <summary>
    /// Critical: each phase's share of the layer's end-to-end time (route = until the host wait; dispatch, experts, combine:
    /// from the previous boundary to the slowest rank's end; output: to the last rank's end); sums to the layer time.
    /// Timed: what a per-rank phase timer reads, each phase on its slowest rank (begin mark to end mark on the device).
    /// </summary>
    public static Timeline Run(IReadOnlyList<RankWork> ranks, double dispatchUs, double combineUs,
                               double collectiveHostUsPerRank, double eventUs, HostThreads threads, EpEnqueueOrder order = EpEnqueueOrder.Interleaved)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        int n = ranks.Count;
        if (n < 1)
            throw new ArgumentException("no ranks", nameof(ranks));
        var host = new double[threads == HostThreads.OneForAllRanks ? 1 : n];
        var device = new double[n];
        var timed = new double[5];
        ref double Clock(int r) => ref host[threads == HostThreads.OneForAllRanks ? 0 : r];

        void Phase(int phase, int r, double deviceUs, double hostUs)
        {
            ref double h = ref Clock(r);
            h += eventUs;
            double begin = Math.Max(device[r], h);
            h += hostUs;
            double end = Math.Max(begin + deviceUs, h);
            h += eventUs;
            device[r] = end;
            timed[phase] = Math.Max(timed[phase], end - begin);
        }

        double AllToAll(int phase, double transferUs)
        {
            if (n == 1)
                return Math.Max(device[0], Clock(0)); // one GPU: nothing to exchange
            var begin = new double[n];
            for (int r = 0; r < n; r++)
            {
                Clock(r) += eventUs;
                begin[r] = Math.Max(device[r], Clock(r));
            }
            double start = 0;
            for (int r = 0; r < n; r++)
            {
                // Rank r's op table upload synchronises its stream: the host waits for rank r's earlier work first.
                Clock(r) = Math.Max(Clock(r), device[r]) + collectiveHostUsPerRank;
                start = Math.Max(start, Math.Max(device[r], Clock(r)));
            }
            double finish = start + transferUs;
            for (int r = 0; r < n; r++)
            {
                Clock(r) += eventUs;
                device[r] = finish;
                timed[phase] = Math.Max(timed[phase], finish - begin[r]);
            }
            return finish;
        }

        for (int r = 0; r < n; r++)
        {
            if (!ranks[r].HasTokens)
                continue;
            Clock(r) += ranks[r].BeforeRouteHostUs;
            Phase(0, r, ranks[r].RouteUs, ranks[r].RouteHostUs);
            Clock(r) += ranks[r].AfterRouteHostUs;
        }
        double routed = Math.Max(host.Max(), device.Max()); // the host waits for every rank's dispatch sizes
        Array.Fill(host, routed);
        double dispatched = AllToAll(1, dispatchUs);
        var expertsBegin = Enumerable.Repeat(double.NaN, n).ToArray();
        var expertsEnd = Enumerable.Repeat(double.NaN, n).ToArray();
        var stepsDone = new double[n]; // with device steps: when rank d's issued steps are done on its device
        foreach (var (d, step) in ExpertSteps(ranks, order))
        {
            var steps = ranks[d].ExpertsHostSteps;
            var deviceSteps = ranks[d].ExpertsDeviceStepsUs is { } ds && ds.Count == steps.Count ? ds : null;
            ref double h = ref Clock(d);
            if (step == 0)
            {
                h += eventUs;
                expertsBegin[d] = stepsDone[d] = Math.Max(device[d], h);
            }
            h += steps[step];
            if (deviceSteps is not null)
                stepsDone[d] = Math.Max(stepsDone[d], h) + deviceSteps[step]; // its kernels start once issued and the stream is free
            if (step == steps.Count - 1)
            {
                expertsEnd[d] = deviceSteps is not null ? stepsDone[d] : Math.Max(expertsBegin[d] + ranks[d].ExpertsUs, h);
                h += eventUs;
                device[d] = expertsEnd[d];
                timed[2] = Math.Max(timed[2], expertsEnd[d] - expertsBegin[d]);
            }
        }
        double expertsDone = Math.Max(device.Max(), dispatched);
        double combined = AllToAll(3, combineUs);
        for (int r = 0; r < n; r++)
        {
            if (!ranks[r].HasTokens)
                continue;
            Phase(4, r, ranks[r].OutputUs, ranks[r].OutputHostUs);
            Clock(r) += ranks[r].AfterOutputHostUs;
        }
        double end = Math.Max(device.Max(), combined);
        var critical = new PhaseTimes(routed, dispatched - routed, expertsDone - dispatched, combined - expertsDone, end - combined);
        return new Timeline(critical, new PhaseTimes(timed[0], timed[1], timed[2], timed[3], timed[4]), expertsBegin, expertsEnd);
    }

    /// <summary>(rank, step) of every rank with rows in the order the host issues them: step by step across ranks, or rank after rank.</summary>
    private static IEnumerable<(int Rank, int Step)> ExpertSteps(IReadOnlyList<RankWork> ranks, EpEnqueueOrder order)
    {
        var withRows = Enumerable.Range(0, ranks.Count).Where(d => ranks[d].HasRows).ToList();
        if (order == EpEnqueueOrder.Ranked)
            return withRows.SelectMany(d => Enumerable.Range(0, ranks[d].ExpertsHostSteps.Count).Select(s => (d, s)));
        int most = withRows.Select(d => ranks[d].ExpertsHostSteps.Count).DefaultIfEmpty(0).Max();
        return Enumerable.Range(0, most).SelectMany(s => withRows.Where(d => s < ranks[d].ExpertsHostSteps.Count).Select(d => (d, s)));
    }
}
