using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Parallel;

namespace MoeRuntime.Cli.Bench;

/// <summary>One row of <c>moe bench layer --parallel ep</c>: the median time of each phase (slowest rank) and the loads behind it.</summary>
internal sealed record EpLayerRow(string Preset, int Ranks, int Tokens, double TotalUs, Dictionary<string, double> PhaseUs,
                                  double[] TokensPerRank, double[] RowsPerRank, double[] ActiveExpertsPerRank)
{
    public double PhaseSumUs => PhaseUs.Values.Sum();

    /// <summary>[rank][held expert]: rows each held expert received (the last forward; the routing is the same every sample).</summary>
    public long[][] RowsPerHeldExpert { get; init; } = [];

    /// <summary>Each rank's phases on one clock (median over the samples): what the slowest-rank sums above hide.</summary>
    public List<EpRankPhase> PerRank { get; init; } = [];
}

/// <summary>
/// One phase of one rank, in microseconds from the start of the forward: on the device (its begin and end marks, against an
/// event recorded on each rank's idle stream as the forward starts, so ranks share one clock to within a launch latency)
/// and on the host (when the one host thread issued the marks, stopwatch). Device begin later than host begin: the stream
/// was still busy; device end later than host end: the device, not the host, set the phase's end.
/// </summary>
internal sealed record EpRankPhase(string Phase, int Rank, double DeviceBeginUs, double DeviceEndUs, double HostBeginUs, double HostEndUs);

/// <summary>
/// Device events at each phase boundary of an <see cref="ExpertParallelMoe"/> forward, on each rank's default stream
/// (where the forward enqueues its work). A phase's time is its slowest rank's; a rank that skips a phase counts 0.
/// </summary>
internal sealed class EventPhaseTimer : IExpertParallelPhaseTimer, IDisposable
{
    private readonly IReadOnlyList<Accelerator> _ranks;
    private readonly Dictionary<(ExpertParallelPhase, int), (AcceleratorEvent Start, AcceleratorEvent End, bool Recorded)> _events = new();
    private readonly Dictionary<(ExpertParallelPhase, int), (double BeginUs, double EndUs)> _host = new();
    private AcceleratorEvent[]? _origins;
    private long _hostOrigin;

    public EventPhaseTimer(IReadOnlyList<Accelerator> ranks) => _ranks = ranks;

    public void Begin(ExpertParallelPhase phase, int rank)
    {
        var key = (phase, rank);
        if (!_events.TryGetValue(key, out var pair))
            pair = (_ranks[rank].CreateEvent(), _ranks[rank].CreateEvent(), false);
        _host[key] = (HostUs(), 0);
        pair.Start.Record(_ranks[rank].DefaultStream);
        _events[key] = pair with { Recorded = false };
    }

    public void End(ExpertParallelPhase phase, int rank)
    {
        var pair = _events[(phase, rank)];
        pair.End.Record(_ranks[rank].DefaultStream);
        _host[(phase, rank)] = (_host[(phase, rank)].BeginUs, HostUs());
        _events[(phase, rank)] = pair with { Recorded = true };
    }

    /// <summary>
    /// Forgets the last forward's marks (call before each forward, with every rank idle): records each rank's origin event
    /// and starts the host clock, the zero of <see cref="ReadRanks"/>.
    /// </summary>
    public void Reset()
    {
        foreach (var key in _events.Keys.ToList())
            _events[key] = _events[key] with { Recorded = false };
        _origins ??= _ranks.Select(r => r.CreateEvent()).ToArray();
        _hostOrigin = Stopwatch.GetTimestamp();
        for (int r = 0; r < _ranks.Count; r++)
            _origins[r].Record(_ranks[r].DefaultStream);
    }

    private double HostUs() => Stopwatch.GetElapsedTime(_hostOrigin).TotalMicroseconds;

    /// <summary>Each recorded phase of each rank in the last forward, device and host marks from the forward's start (after <see cref="Read"/>).</summary>
    public List<EpRankPhase> ReadRanks()
    {
        var result = new List<EpRankPhase>();
        if (_origins is null)
            return result;
        foreach (var ((phase, rank), pair) in _events.OrderBy(e => e.Key.Item1).ThenBy(e => e.Key.Item2))
        {
            if (!pair.Recorded)
                continue;
            pair.End.Synchronize();
            var (hostBegin, hostEnd) = _host[(phase, rank)];
            result.Add(new EpRankPhase(phase.ToString(), rank, pair.Start.ElapsedMillisecondsSince(_origins[rank]) * 1e3,
                pair.End.ElapsedMillisecondsSince(_origins[rank]) * 1e3, hostBegin, hostEnd));
        }
        return result;
    }

    /// <summary>Microseconds of each phase in the last forward: its slowest rank.</summary>
    public Dictionary<ExpertParallelPhase, double> Read()
    {
        var result = Enum.GetValues<ExpertParallelPhase>().ToDictionary(p => p, _ => 0.0);
        foreach (var ((phase, _), pair) in _events)
        {
            if (!pair.Recorded)
                continue;
            pair.End.Synchronize();
            result[phase] = Math.Max(result[phase], pair.End.ElapsedMillisecondsSince(pair.Start) * 1e3);
        }
        return result;
    }

    public void Dispose()
    {
        foreach (var pair in _events.Values)
        {
            pair.Start.Dispose();
            pair.End.Dispose();
        }
        foreach (var origin in _origins ?? [])
            origin.Dispose();
    }
}

/// <summary>
/// <c>moe bench layer --parallel ep</c>: an expert-parallel MoE layer over N ranks, each rank holding only its block of random
/// experts at the preset's real shapes, timed per token count: median per phase (device events) and median host wall
/// time of the forward (which also counts host work the phases do not: the input's conversion and upload, the dispatch-size
/// read-back, the output's download into a kept host array).
/// </summary>
internal sealed class EpLayerBench(IReadOnlyList<Accelerator> ranks, int warmup, int samples)
{
    /// <summary>
    /// Untimed forwards (the warm-up count) at every token count: before an A/B of enqueue orders, so that neither order
    /// is timed on code .NET's tiered JIT has not yet optimised (the host enqueue is what the orders differ in).
    /// </summary>
    public void Warm(ExpertParallelMoe layer, IEnumerable<int> tokenCounts)
    {
        int h = layer.Config.HiddenSize;
        foreach (int tokens in tokenCounts)
        {
            var random = new Random(tokens); // the inputs Run times
            var hidden = new float[(long)tokens * h];
            for (long i = 0; i < hidden.Length; i++)
                hidden[i] = 2 * random.NextSingle() - 1;
            var output = new float[hidden.Length];
            for (int i = 0; i < warmup; i++)
                layer.Forward(hidden, tokens, output);
        }
    }

    public IEnumerable<EpLayerRow> Run(string preset, ExpertParallelMoe layer, IEnumerable<int> tokenCounts)
    {
        using var timer = new EventPhaseTimer(ranks);
        int h = layer.Config.HiddenSize;
        foreach (int tokens in tokenCounts)
        {
            var random = new Random(tokens);
            var hidden = new float[(long)tokens * h];
            for (long i = 0; i < hidden.Length; i++)
                hidden[i] = 2 * random.NextSingle() - 1;
            var output = new float[hidden.Length]; // kept across forwards, as a serving loop would
            layer.PhaseTimer = null;
            for (int i = 0; i < warmup; i++)
                layer.Forward(hidden, tokens, output);
            layer.PhaseTimer = timer;
            var phases = Enum.GetValues<ExpertParallelPhase>().ToDictionary(p => p, _ => new List<double>());
            var totals = new List<double>();
            var perRank = new List<List<EpRankPhase>>();
            for (int s = 0; s < samples; s++)
            {
                timer.Reset();
                long t0 = Stopwatch.GetTimestamp();
                layer.Forward(hidden, tokens, output);
                foreach (var a in ranks)
                    a.Synchronize();
                totals.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
                foreach (var (phase, us) in timer.Read())
                    phases[phase].Add(us);
                perRank.Add(timer.ReadRanks());
            }
            layer.PhaseTimer = null;
            yield return new EpLayerRow(preset, ranks.Count, tokens, BenchMedian.Of(totals), phases.ToDictionary(p => p.Key.ToString(), p => BenchMedian.Of(p.Value)),
                layer.LastTokensPerRank.Select(t => (double)t).ToArray(), layer.LastRowsPerRank.Select(r => (double)r).ToArray(),
                layer.LastActiveExpertsPerRank.Select(a => (double)a).ToArray()) { PerRank = MedianPerRank(perRank), RowsPerHeldExpert = layer.LastRowsPerHeldExpert };
        }
    }

    /// <summary>Per (phase, rank), the median of each mark over the samples that recorded it.</summary>
    private static List<EpRankPhase> MedianPerRank(List<List<EpRankPhase>> samples) =>
        samples.SelectMany(x => x).GroupBy(x => (x.Phase, x.Rank)).Select(g => new EpRankPhase(g.Key.Phase, g.Key.Rank,
            BenchMedian.Of(g.Select(x => x.DeviceBeginUs).ToList()), BenchMedian.Of(g.Select(x => x.DeviceEndUs).ToList()),
            BenchMedian.Of(g.Select(x => x.HostBeginUs).ToList()), BenchMedian.Of(g.Select(x => x.HostEndUs).ToList()))).ToList();
}
