using MoeRuntime.Collectives;
using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Parallel.Eplb;

namespace MoeRuntime.Cli.Bench;

/// <summary>One mode's row of <c>moe bench eplb</c>.</summary>
internal sealed record EplbBenchRow(
    string Mode, double Balance, double MaxBalance, double StepMs, double TokensPerSecond, double Speedup,
    int Migrations, long SlotCopies, double MigrationMs, double? StepMsWhileCopying, double StepMsOther, string Placement, int WarmupMigrations);

/// <summary>What <c>moe bench eplb</c> runs.</summary>
internal sealed record EplbBenchSettings
{
    public required string Preset { get; init; }
    public required ModelConfig Config { get; init; }
    public required DType DType { get; init; }
    public required int Tokens { get; init; }
    public required int Steps { get; init; }
    public required double Skew { get; init; }
    public int DriftPeriod { get; init; }
    public required int Redundant { get; init; }
    public int RebalanceEvery { get; init; } = 8;
    public int WindowForwards { get; init; } = 16;
    public int Groups { get; init; } = 1;
    public int Warmup { get; init; } = 2;
    public int Seed { get; init; } = 2026;
    public long[]? StaticLoads { get; init; }
}

/// <summary>
/// <c>moe bench eplb</c>: synthetic Zipf routing (hot set re-drawn every DriftPeriod steps with --drift) through the
/// expert-parallel layer with no balancer (contiguous experts), static EPLB (planned once from a load profile: the
/// routing of step 0, or --loads) and online EPLB (re-planned every K forwards from the device load window, weights
/// migrating on side streams). Per mode: balance = max / mean rows per device (per step, averaged), step time (median;
/// device events on CUDA, the slowest device), tokens/s, migrations and their copy time, and the step time of the
/// forwards that ran while a migration's copies were in flight (overlap: close to the others' means hidden).
/// Every mode sees the same routing and hidden states at every step, and the same random weights.
/// </summary>
internal sealed class EplbBench(IReadOnlyList<Accelerator> devices, EplbBenchSettings settings)
{
    public ZipfRouting Routing { get; } = new(settings.Config.NumExperts, settings.Config.TopK, settings.Skew, settings.Seed, settings.DriftPeriod);

    /// <summary>Tokens per expert of the routing of step 0 (<see cref="Warmup"/> forwards use it too): the static profile.</summary>
    public long[] ProfileOfStep(int step)
    {
        var (ids, _) = Routing.Generate(settings.Tokens, step);
        var loads = new long[settings.Config.NumExperts];
        foreach (int id in ids)
            loads[id]++;
        return loads;
    }

    /// <summary>Tokens per expert over all timed steps (what --save-loads writes).</summary>
    public long[] RunLoads()
    {
        var loads = new long[settings.Config.NumExperts];
        for (int step = 0; step < settings.Steps; step++)
        {
            var (ids, _) = Routing.Generate(settings.Tokens, step);
            foreach (int id in ids)
                loads[id]++;
        }
        return loads;
    }

    public EplbOptions Options(EplbMode mode) => mode switch
    {
        EplbMode.None => new EplbOptions { Mode = EplbMode.None },
        EplbMode.Static => new EplbOptions { Mode = EplbMode.Static, Redundant = settings.Redundant, Groups = settings.Groups, Loads = settings.StaticLoads ?? ProfileOfStep(0) },
        _ => new EplbOptions
        {
            Mode = EplbMode.Online, Redundant = settings.Redundant, RebalanceEvery = settings.RebalanceEvery, Groups = settings.Groups,
            WindowForwards = settings.WindowForwards, Loads = settings.StaticLoads,   // no profile: starts uniform, learns from the window
        },
    };

    public EplbBenchRow Run(EplbMode mode, double? noneStepMs)
    {
        int t = settings.Tokens, h = settings.Config.HiddenSize;
        var random = new Random(settings.Seed);
        var hidden = new float[(long)t * h];
        for (long i = 0; i < hidden.Length; i++)
            hidden[i] = 2 * random.NextSingle() - 1;
        using var communicator = Communicator.Create(devices, new CommunicatorOptions { CapacityBytes = ExpertParallelMoe.CommunicatorCapacity(settings.Config, t) });
        using var layer = ExpertParallelMoe.CreateRandom(devices, settings.Config, settings.DType, settings.Seed, Options(mode), communicator);
        var slots = layer.Eplb!;
        var output = new float[hidden.Length]; // kept across forwards, as a serving loop would
        var warm = Routing.Generate(t, 0);
        for (int i = 0; i < settings.Warmup; i++)
            layer.Forward(hidden, t, warm.Ids, warm.Weights, output);
        int migrationsBefore = slots.Migrations, timingsBefore = slots.MigrationMilliseconds.Count;
        long copiesBefore = slots.SlotCopies;
        var steps = new double[settings.Steps];
        var balances = new double[settings.Steps];
        var copying = new List<double>();
        var other = new List<double>();
        var starts = devices.Select(d => d.CreateEvent()).ToArray();
        var ends = devices.Select(d => d.CreateEvent()).ToArray();
        try
        {
            for (int step = 0; step < settings.Steps; step++)
            {
                var (ids, weights) = Routing.Generate(t, step);
                bool overlapped = slots.CopiesInFlight;
                double ms;
                if (devices[0].Kind == AcceleratorKind.Cuda)
                {
                    foreach (var e in starts)
                        e.Record();
                    layer.Forward(hidden, t, ids, weights, output);
                    ms = 0;
                    for (int d = 0; d < devices.Count; d++)
                    {
                        ends[d].Record();
                        ends[d].Synchronize();
                        ms = Math.Max(ms, ends[d].ElapsedMillisecondsSince(starts[d]));
                    }
                }
                else
                {
                    long start = Stopwatch.GetTimestamp();
                    layer.Forward(hidden, t, ids, weights, output);
                    ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
                steps[step] = ms;
                balances[step] = Balance(layer.LastRowsPerRank);
                (overlapped ? copying : other).Add(ms);
            }
        }
        finally
        {
            foreach (var e in starts.Concat(ends))
                e.Dispose();
        }
        double median = BenchMedian.Of(steps);
        var migrationMs = slots.MigrationMilliseconds.Skip(timingsBefore).ToList();
        return new EplbBenchRow(
            mode.ToString().ToLowerInvariant(), balances.Average(), balances.Max(), median, median > 0 ? t / (median / 1e3) : 0,
            noneStepMs is { } baseline && median > 0 ? baseline / median : 1.0,
            slots.Migrations - migrationsBefore, slots.SlotCopies - copiesBefore, migrationMs.Count == 0 ? 0 : migrationMs.Average(),
            copying.Count == 0 ? null : BenchMedian.Of(copying.ToArray()), other.Count == 0 ? 0 : BenchMedian.Of(other.ToArray()), slots.Current.ToString(),
            migrationsBefore);
    }

    internal static double Balance(long[] rowsPerDevice) =>
        rowsPerDevice.Length == 0 || rowsPerDevice.Sum() == 0 ? 1.0 : rowsPerDevice.Max() / rowsPerDevice.Average();
}
