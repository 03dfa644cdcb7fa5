using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Runtime.Eplb;

namespace MoeRuntime.Benchmarks.Eplb;

/// <summary>
/// <c>eplb_balance</c>: balance (max GPU load / mean GPU load) with no balancer (E/G contiguous experts per GPU) and
/// with the static plan, for Zipf(1.2) expert loads, and the planner's host run time (the time column; the plan
/// is host work whatever the device). Hot experts sit at random expert ids (fixed seed); "hot first" puts them at
/// ids 0, 1, ..., the worst case for contiguous placement.
/// </summary>
internal static class EplbBalanceSweep
{
    private const long TokensPerForward = 8192L * 8;   // T = 8192 tokens, top-8

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        _ = accelerator;
        var rows = new List<SweepRow>();
        foreach (var (experts, gpus, slots, groups) in new[] { (64, 4, 20, 1), (256, 8, 40, 1), (256, 8, 40, 2) })
        {
            foreach (bool hotFirst in new[] { false, true })
            {
                var loads = ZipfLoads(experts, 1.2, hotFirst ? null : new Random(42));
                string shape = $"E={experts} G={gpus} S={slots}" + (groups > 1 ? $" nodes={groups}" : "") + (hotFirst ? " hot first" : "");
                double none = Placement.Contiguous(experts, gpus).Balance(loads);
                Placement? planned = null;
                double ms = MedianMs(() => planned = EplbPlanner.Plan(loads, gpus, slots, groups));
                int replicated = Enumerable.Range(0, experts).Count(e => planned!.ReplicaCounts[e] > 1);
                rows.Add(new SweepRow("eplb plan zipf1.2", shape, ms, 0, 0, 0,
                    $"balance none {none:F3} -> planned {planned!.Balance(loads):F3}; {replicated} experts replicated"));
            }
        }
        return rows;
    }

    /// <summary>Tokens per expert for Zipf(<paramref name="exponent"/>) routing, ranks shuffled by <paramref name="shuffle"/> (or hot first).</summary>
    internal static double[] ZipfLoads(int experts, double exponent, Random? shuffle)
    {
        var weights = Enumerable.Range(1, experts).Select(r => 1.0 / Math.Pow(r, exponent)).ToArray();
        double total = weights.Sum();
        var loads = weights.Select(w => Math.Round(TokensPerForward * w / total)).ToArray();
        if (shuffle is not null)
            shuffle.Shuffle(loads);
        return loads;
    }

    private static double MedianMs(Action action, int warmup = 3, int samples = 21)
    {
        for (int i = 0; i < warmup; i++)
            action();
        var times = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[samples / 2];
    }
}
