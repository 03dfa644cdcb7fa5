using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Scaling;

/// <summary>How experts are placed on the GPUs of an EP group in a simulation.</summary>
public enum EplbMode
{
    /// <summary>Contiguous blocks of E/N experts (the runtime's ExpertParallelMoe), no replicas.</summary>
    None,
    /// <summary>EplbPlanner once, on the expected (skewed) load, with redundant slots; the step's sampled load may differ.</summary>
    Static,
    /// <summary>EplbPlanner on every step's own sampled load (an upper bound: re-planning and migration are free).</summary>
    Online,
}

/// <summary>
/// One MoE layer's time, phase by phase, in microseconds: each phase's share of the layer's critical path (with no host
/// term: its slowest GPU; see <see cref="HostTimeline"/>).
/// </summary>
public sealed record LayerBreakdown(double RouteUs, double DispatchUs, double ExpertsUs, double CombineUs, double OutputUs, double ExpertWeightUs)
{
    /// <summary>The layer's critical path: the all-to-alls synchronise the group, so each phase costs its slowest GPU.</summary>
    public double TotalUs => RouteUs + DispatchUs + ExpertsUs + CombineUs + OutputUs;
    public double AllToAllUs => DispatchUs + CombineUs;

    /// <summary>
    /// How much longer a per-GPU phase timer's combine reads than the critical path's combine: the GPU whose experts end
    /// first waits inside the combine all-to-all for the slowest one's rows (with no host term: slowest GPU's expert phase
    /// minus the fastest one's, a GPU without rows counting 0). Not part of <see cref="TotalUs"/> (the critical path counts
    /// the slowest GPU's experts once), but a per-phase timer counts it twice.
    /// </summary>
    public double ExpertSkewUs { get; init; }

    /// <summary>Microseconds the host enqueue term adds to <see cref="TotalUs"/> (0 when the params have no host part).</summary>
    public double HostUs { get; init; }

    /// <summary>What a per-GPU phase timer reads, each phase on its slowest GPU (null: derived from the critical path and the wait).</summary>
    public PhaseTimes? Timed { get; init; }

    /// <summary>
    /// When each GPU's experts begin and end on its device, us from the layer's start (NaN: no rows; null when averaged
    /// over steps): what the EP bench's per-rank marks read, to check the host timeline's enqueue order against them.
    /// </summary>
    public IReadOnlyList<double>? ExpertsBeginUs { get; init; }
    public IReadOnlyList<double>? ExpertsEndUs { get; init; }

    /// <summary>What a per-GPU phase timer reads as the sum of each phase's slowest GPU.</summary>
    public double TimedPhaseSumUs => Timed?.SumUs ?? TotalUs + ExpertSkewUs;

    /// <summary>The combine as the per-GPU phase timer reads it on its slowest GPU: the transfer plus the wait for the slowest experts.</summary>
    public double TimedCombineUs => Timed?.CombineUs ?? CombineUs + ExpertSkewUs;

    public static LayerBreakdown Average(IReadOnlyList<LayerBreakdown> items) => new(
        items.Average(b => b.RouteUs), items.Average(b => b.DispatchUs), items.Average(b => b.ExpertsUs),
        items.Average(b => b.CombineUs), items.Average(b => b.OutputUs), items.Average(b => b.ExpertWeightUs))
    {
        ExpertSkewUs = items.Average(b => b.ExpertSkewUs),
        HostUs = items.Average(b => b.HostUs),
        Timed = items.All(b => b.Timed is not null) ? PhaseTimes.Average(items.Select(b => b.Timed!).ToList()) : null,
    };
}

/// <summary>One (EP size, tokens per GPU) point of a simulation.</summary>
public sealed record SimPoint(int Ep, int TokensPerGpu, LayerBreakdown Layer, double MaxRowsPerGpu, double MeanRowsPerGpu, double MaxActiveExperts,
                              double TokensPerSecondPerGpu, double TokensPerSecondPerUser)
{
    /// <summary>Slowest GPU's expert rows over the mean (1 = perfectly balanced).</summary>
    public double Imbalance => MeanRowsPerGpu > 0 ? MaxRowsPerGpu / MeanRowsPerGpu : 1;
}

/// <summary>What to simulate: a model on a rack, the EP sizes and per-GPU batch sizes to sweep, and the load.</summary>
public sealed record SimulationOptions
{
    public required ModelConfig Model { get; init; }
    /// <summary>MoE layers per forward (DeepSeek-V3: 58 of its 61 layers; Qwen3-30B-A3B: all 48).</summary>
    public required int MoeLayers { get; init; }
    public required int Gpus { get; init; }
    public required IReadOnlyList<int> EpSizes { get; init; }
    public required IReadOnlyList<int> TokensPerGpu { get; init; }
    public required LinkPreset Link { get; init; }
    public EplbMode Eplb { get; init; } = EplbMode.None;
    /// <summary>Zipf exponent of the expert popularity (0 = uniform).</summary>
    public double ZipfS { get; init; }
    /// <summary>Redundant expert slots per EP group with EPLB (null: one per GPU).</summary>
    public int? RedundantSlots { get; init; }
    /// <summary>Sampled routing steps averaged per point.</summary>
    public int Steps { get; init; } = 8;
    public int Seed { get; init; } = 2026;
}

/// <summary>
/// The scale model: the MoE layer time of an EP group from measured parts (docs/SCALING.md).
/// <code>
/// route    = router GEMM + top-k routing + gather of the GPU's B tokens (x k)
/// dispatch = all-to-allv of the rows (bf16) bound for other GPUs: latency + busiest GPU's peer bytes / link bandwidth
/// experts  = slowest GPU: local permute + grouped GEMMs (launch + max(hit experts' weight bytes / BW, flops of whole 128-row tiles / rate)) + local un-permute
/// combine  = all-to-allv back (F32 rows, as the runtime sends them); a per-GPU phase timer also sees, on the GPU whose
///            experts end first, the wait for the slowest GPU's experts (ExpertSkewUs: counted by validation, not in the layer)
/// output   = shared experts GEMM + weighted sum over the k choices
/// host     = (params with a Host part) each phase floored by its host enqueue time, ranks started in the order their
///            host thread(s) issue them (HostTimeline; simulate: one thread per GPU, validation: one for all ranks, the
///            experts phase in the run's enqueue order; its steps' kernels, ExpertDeviceSteps, each run once issued)
/// </code>
/// The loads come from sampled routing: each of the B*N tokens of the group picks expert e with probability k*p_e
/// (p Zipf-skewed or uniform), experts placed contiguously or by <see cref="EplbPlanner"/>.
/// </summary>
public static class ScaleModel
{
    /// <summary>
    /// Predicted layer time of an N-rank EP group with the given per-rank tokens, expert rows and hit experts.
    /// <paramref name="tiledRowsPerRank"/>: the rows each rank's GEMMs compute, every expert's rows rounded up to whole tiles
    /// (from per-expert counts, when known); null: estimated from the totals (<see cref="Calibration.TiledRows"/>).
    /// With host parameters (<see cref="ScaleParams.Host"/>) each phase is floored by the host's enqueue time and, with one
    /// thread for all ranks, ranks start in the order it enqueues them (<see cref="HostTimeline"/>); <paramref name="schedule"/>
    /// says how the work is issued (default <see cref="HostSchedule.ProcessPerGpu"/>; the EP layer bench:
    /// <see cref="HostSchedule.InProcessBench"/>).
    /// </summary>
    public static LayerBreakdown Predict(ScaleParams p, ModelConfig c, LinkPreset link, IReadOnlyList<double> tokensPerRank,
                                         IReadOnlyList<double> rowsPerRank, IReadOnlyList<double> activePerRank,
                                         IReadOnlyList<double>? tiledRowsPerRank = null, HostSchedule? schedule = null)
    {
        int n = tokensPerRank.Count;
        if (rowsPerRank.Count != n || activePerRank.Count != n || (tiledRowsPerRank is not null && tiledRowsPerRank.Count != n))
            throw new ArgumentException($"per-rank lists differ in length: tokens {n}, rows {rowsPerRank.Count}, active {activePerRank.Count}, tiled rows {tiledRowsPerRank?.Count}");
        double h = c.HiddenSize, e = c.NumExperts, k = c.TopK, shared = c.SharedIntermediateSize;
        double expertBytes = Calibration.ExpertBytes(c);
        var sharedGemm = p.GemmFor(c.HiddenSize, c.SharedIntermediateSize);
        var host = p.Host;
        schedule ??= HostSchedule.ProcessPerGpu;
        var hostArrays = schedule.HostArrays ? host : null; // the input upload and output download exist only with host arrays
        int heldExperts = Math.Max(1, c.NumExperts / n);
        double weights = 0, dispatchPeer = 0, combinePeer = 0;
        double peerShare = n > 1 ? (n - 1.0) / n : 0;
        var work = new RankWork[n];
        for (int r = 0; r < n; r++)
        {
            double t = tokensPerRank[r], rows = rowsPerRank[r], active = activePerRank[r];
            double route = 0, output = 0, rankExperts = 0; // a GPU without tokens (rows) skips those phases
            double[]? expertsDevice = null;
            if (t > 0)
            {
                // Router and shared expert: single-matrix calls, from their measured curve when the params have one.
                double RouterFit(double rows) => p.Gemm.Us(e * h * 2, 2 * rows * e * h);
                double router = p.DenseGemmUs(c.NumExperts, c.HiddenSize, false, t, RouterFit) ?? RouterFit(t);
                route = router + p.Routing.Us(4 * t * e + 8 * t * k + 4 * e) + p.Movement.Us(t * k * h * 2 * 2);
                double GateUpFit(double rows) => sharedGemm.Us(2 * h * shared * 2, 2 * rows * 2 * h * shared);
                double DownFit(double rows) => sharedGemm.Us(h * shared * 2, 2 * rows * h * shared);
                double sharedUs = shared <= 0 ? 0
                    : p.DenseGemmUs(2 * c.SharedIntermediateSize, c.HiddenSize, true, t, GateUpFit) is { } gateUp
                      && p.DenseGemmUs(c.HiddenSize, c.SharedIntermediateSize, false, t, DownFit) is { } downUs
                        ? gateUp + downUs
                        : sharedGemm.Us(3 * h * shared * 2, 2 * t * 3 * h * shared);
                output = sharedUs + p.Movement.Us(t * k * h * 4 + t * h * 4 * 2);
            }
            if (rows > 0)
            {
                double tiled = tiledRowsPerRank?[r] ?? Calibration.TiledRows(rows, active);
                var expertGemm = p.ExpertGemmFor(c.HiddenSize, c.MoeIntermediateSize, rows, heldExperts); // the GEMV's fit where the runtime takes it
                expertsDevice = ExpertDeviceSteps.Us(expertGemm, active * expertBytes, 2 * tiled * 3.0 * h * c.MoeIntermediateSize,
                    p.Movement.Us(rows * h * 2 * 2), p.Movement.Us(rows * h * 4 * 2));
                rankExperts = expertsDevice.Sum();
                weights = Math.Max(weights, active * expertBytes / (expertGemm.WeightGBs * 1e9) * 1e6);
            }
            int tokens = (int)Math.Round(t), received = (int)Math.Round(rows);
            var expertSteps = EpHostOps.ExpertStepsUs(host, received, heldExperts);
            work[r] = new RankWork(t > 0, rows > 0, route, rankExperts, output,
                EpHostOps.BeforeRoute.Us(hostArrays), EpHostOps.RouteUs(host, c, tokens, afterUpload: schedule.HostArrays), EpHostOps.AfterRoute.Us(host),
                expertSteps.Sum(), EpHostOps.Output(c, tokens).Us(host), EpHostOps.AfterOutput.Us(hostArrays), expertSteps, expertsDevice);
            dispatchPeer = Math.Max(dispatchPeer, peerShare * Math.Max(t * k, rows) * h * 2);
            combinePeer = Math.Max(combinePeer, peerShare * Math.Max(t * k, rows) * h * 4);
        }
        double dispatch = n > 1 ? link.AllToAllUs(p, n, dispatchPeer) : 0;
        double combine = n > 1 ? link.AllToAllUs(p, n, combinePeer, f32: true) : 0;
        double collectiveHost = host?.CollectivePerRankUs ?? 0, eventUs = schedule.PhaseTimerMarks ? host?.EventUs ?? 0 : 0;
        var threads = schedule.Threads;
        var timeline = HostTimeline.Run(work, dispatch, combine, collectiveHost, eventUs, threads, schedule.Order);
        var (critical, timed) = timeline;
        double deviceOnly = host is null ? critical.SumUs
            : HostTimeline.Run(work.Select(w => new RankWork(w.HasTokens, w.HasRows, w.RouteUs, w.ExpertsUs, w.OutputUs)).ToList(), dispatch, combine, 0, 0, threads).Critical.SumUs;
        return new LayerBreakdown(critical.RouteUs, critical.DispatchUs, critical.ExpertsUs, critical.CombineUs, critical.OutputUs, weights)
        {
            ExpertSkewUs = n > 1 ? Math.Max(0, timed.CombineUs - critical.CombineUs) : 0,
            HostUs = critical.SumUs - deviceOnly,
            Timed = timed,
            ExpertsBeginUs = timeline.ExpertsBeginUs,
            ExpertsEndUs = timeline.ExpertsEndUs,
        };
    }

    public static IReadOnlyList<SimPoint> Simulate(ScaleParams p, SimulationOptions o)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(o);
        var c = o.Model;
        int experts = c.NumExperts;
        if (o.EpSizes.Count == 0 || o.TokensPerGpu.Count == 0)
            throw new ArgumentException("no EP sizes or no token counts to simulate");
        foreach (int ep in o.EpSizes)
            if (ep < 1 || ep > o.Gpus)
                throw new ArgumentException($"--ep {ep}: an EP group needs 1 to --gpus {o.Gpus} GPUs");
        foreach (int b in o.TokensPerGpu)
            if (b < 1)
                throw new ArgumentException($"--tokens-per-gpu {b}: must be >= 1");
        if (o.MoeLayers < 1 || o.Steps < 1)
            throw new ArgumentException($"MoE layers {o.MoeLayers} and steps {o.Steps} must be >= 1");
        var popularity = Popularity(experts, o.ZipfS, o.Seed);
        var points = new List<SimPoint>();
        foreach (int ep in o.EpSizes)
        {
            int slotsPerGpu = o.Eplb == EplbMode.None ? 0 : (experts + (o.RedundantSlots ?? ep) + ep - 1) / ep;
            int[][] placement = o.Eplb == EplbMode.Static
                ? EplbPlanner.Plan(popularity, ep, slotsPerGpu).ToSlotTable()
                : Contiguous(experts, ep);
            foreach (int b in o.TokensPerGpu)
            {
                var random = new Random(unchecked(o.Seed * 1000003 + ep * 7919 + b)); // reproducible run to run (HashCode is salted per process)
                var steps = new List<LayerBreakdown>();
                double maxRows = 0, meanRows = 0, maxActive = 0;
                for (int s = 0; s < o.Steps; s++)
                {
                    var counts = SampleCounts(random, popularity, (long)b * ep, c.TopK);
                    var slots = o.Eplb == EplbMode.Online
                        ? EplbPlanner.Plan(counts.Select(x => (double)x).ToArray(), ep, slotsPerGpu).ToSlotTable()
                        : placement;
                    var (rows, active) = Loads(counts, slots);
                    var tokens = Enumerable.Repeat((double)b, ep).ToArray();
                    steps.Add(Predict(p, c, o.Link, tokens, rows, active, TiledRows(counts, slots)));
                    maxRows += rows.Max() / o.Steps;
                    meanRows += rows.Average() / o.Steps;
                    maxActive += active.Max() / o.Steps;
                }
                var layer = LayerBreakdown.Average(steps);
                double stepSeconds = o.MoeLayers * layer.TotalUs * 1e-6;
                points.Add(new SimPoint(ep, b, layer, maxRows, meanRows, maxActive, b / stepSeconds, 1 / stepSeconds));
            }
        }
        return points;
    }

    /// <summary>The points no other point beats in both tokens/s per GPU and tokens/s per user, fastest per user first.</summary>
    public static IReadOnlyList<SimPoint> Pareto(IEnumerable<SimPoint> points)
    {
        var sorted = points.OrderByDescending(x => x.TokensPerSecondPerUser).ThenByDescending(x => x.TokensPerSecondPerGpu).ToList();
        var frontier = new List<SimPoint>();
        double best = double.NegativeInfinity;
        foreach (var x in sorted)
        {
            if (x.TokensPerSecondPerGpu > best)
            {
                frontier.Add(x);
                best = x.TokensPerSecondPerGpu;
            }
        }
        return frontier;
    }

    /// <summary>Per-expert probability of being among a token's choices (before x k): Zipf(s) over a fixed shuffle of the experts.</summary>
    public static double[] Popularity(int experts, double s, int seed)
    {
        if (s < 0)
            throw new ArgumentOutOfRangeException(nameof(s), s, "Zipf exponent must be >= 0");
        var order = Enumerable.Range(0, experts).ToArray();
        new Random(seed).Shuffle(order);
        var p = new double[experts];
        for (int rank = 0; rank < experts; rank++)
            p[order[rank]] = 1 / Math.Pow(rank + 1, s);
        double sum = p.Sum();
        for (int i = 0; i < experts; i++)
            p[i] /= sum;
        return p;
    }

    /// <summary>Expert rows of one step: tokens each pick expert e with probability min(1, k p_e), independently.</summary>
    public static long[] SampleCounts(Random random, double[] popularity, long tokens, int topK)
    {
        var counts = new long[popularity.Length];
        for (int e = 0; e < popularity.Length; e++)
            counts[e] = Binomial(random, tokens, Math.Min(1, topK * popularity[e]));
        return counts;
    }

    /// <summary>Rows and hit experts per GPU: an expert's rows are split evenly over its replicas.</summary>
    public static (double[] Rows, double[] Active) Loads(long[] counts, int[][] slots)
    {
        var rows = new double[slots.Length];
        var active = new double[slots.Length];
        foreach (var (g, share) in Shares(counts, slots))
        {
            rows[g] += share;
            active[g] += share > 0 ? 1 : 0;
        }
        return (rows, active);
    }

    /// <summary>Rows each GPU's expert GEMMs compute: each slot's rows rounded up to whole <see cref="Calibration.GemmTileRows"/> tiles.</summary>
    public static double[] TiledRows(long[] counts, int[][] slots)
    {
        var tiled = new double[slots.Length];
        foreach (var (g, share) in Shares(counts, slots))
            tiled[g] += Calibration.TiledRows(share, share > 0 ? 1 : 0);
        return tiled;
    }

    /// <summary>(GPU, rows) of every slot: an expert's rows split evenly over its replicas, in slot order.</summary>
    private static IEnumerable<(int Gpu, long Rows)> Shares(long[] counts, int[][] slots)
    {
        var replicas = new int[counts.Length];
        foreach (var gpu in slots)
            foreach (int e in gpu)
                replicas[e]++;
        var seen = new int[counts.Length];
        for (int g = 0; g < slots.Length; g++)
        {
            foreach (int e in slots[g])
            {
                int j = seen[e]++;
                yield return (g, (counts[e] + replicas[e] - 1 - j) / replicas[e]);
            }
        }
    }

    /// <summary>GPU g holds experts [g*E/N, (g+1)*E/N) (blocks differ by at most one when N does not divide E).</summary>
    public static int[][] Contiguous(int experts, int gpus) =>
        Enumerable.Range(0, gpus).Select(g => Enumerable.Range((int)((long)g * experts / gpus), (int)((long)(g + 1) * experts / gpus - (long)g * experts / gpus)).ToArray()).ToArray();

    private static long Binomial(Random random, long n, double q)
    {
        if (q <= 0 || n == 0)
            return 0;
        if (q >= 1)
            return n;
        double mean = n * q;
        if (n <= 64)
        {
            long hits = 0;
            for (long i = 0; i < n; i++)
                hits += random.NextDouble() < q ? 1 : 0;
            return hits;
        }
        if (mean < 30)
        {
            // Poisson(mean) by multiplication (Knuth), clamped to n.
            double limit = Math.Exp(-mean), product = random.NextDouble();
            long x = 0;
            while (product > limit)
            {
                x++;
                product *= random.NextDouble();
            }
            return Math.Min(x, n);
        }
        double z = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        return Math.Clamp((long)Math.Round(mean + z * Math.Sqrt(mean * (1 - q))), 0, n);
    }
}
