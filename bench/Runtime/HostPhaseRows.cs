using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// The host_launch sweep's whole-phase rows: host time to enqueue one EP rank's route and experts phase as the layer
/// issues them, one call per sample on an idle stream (as in a forward: each phase is enqueued once, so a reused host
/// stage never waits for an earlier copy), by stopwatch. The per-op rows time one op repeated; in the EP layer the same
/// ops take 1.5-3x longer (docs/SCALING.md, "Qwen3's remaining miss"), and the route's enqueue grows with the tokens.
/// <code>
/// host route phase     "T=t phase=route"      MoeLayer.RouteAndPermute on t tokens (router GEMM, top-k, permute)
/// host experts phase   "R=r phase=experts"    the local id fill on the host, then ReceivedRowsWorkspace.Run (id upload,
///                                             permute by local expert, gate_up, down, un-permute), as
///                                             ExpertParallelMoe.RunExpertsOnRanks issues one rank's phase
/// </code>
/// Shapes: one rank of Qwen3-30B-A3B over 2 ranks (64 held experts), at a rank's tokens and rows of the EP layer bench's
/// batches (T = 2..4096 split over 2 ranks); these rows are a bench of their own, the EP runs stay the validation.
/// <c>moe simulate --calibrate</c> fits fixed + per-unit cost per phase (ScaleParams.Host.RoutePhase, ExpertsPhase).
/// </summary>
internal static class HostPhaseRows
{
    private static readonly int[] GpuTokens = [1, 8, 64, 512, 2048];
    private static readonly int[] GpuRows = [4, 64, 512, 4096, 16384];
    private static readonly int[] CpuTokens = [1, 4];
    private static readonly int[] CpuRows = [2, 8];

    public static IEnumerable<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        var config = LayerPresets.Get("qwen3-30b-a3b");
        if (cpu) // the CPU twins at tiny shapes: the code path runs, the figures mean nothing for a GPU
            config = config with { HiddenSize = 64, MoeIntermediateSize = 96, NumExperts = 8, TopK = 2 };
        int ranks = 2, held = config.NumExperts / ranks, samples = cpu ? 3 : 40;
        int[] tokens = cpu ? CpuTokens : GpuTokens, rowCounts = cpu ? CpuRows : GpuRows;
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 11, firstExpert: 0, expertCount: held);
        var layer = new MoeLayer(weights);
        var random = new Random(11);
        var rows = new List<SweepRow>();
        SweepRow Row(string name, string shape, Action enqueue)
        {
            double us = HostLaunchSweep.HostUsPerCall(accelerator, _ => enqueue(), calls: 1, samples);
            return new SweepRow(name, shape, us * 1e-3, 0, 0, 0, $"host stopwatch, median of {samples} single calls on an idle stream");
        }

        int h = config.HiddenSize;
        foreach (int t in tokens)
        {
            using var input = accelerator.Upload<BFloat16>(Enumerable.Range(0, t * h).Select(_ => (BFloat16)(random.NextSingle() - 0.5f)).ToArray());
            using var workspace = new MoeWorkspace(weights, t);
            rows.Add(Row("host route phase", $"T={t} phase=route", () => layer.RouteAndPermute(input, workspace, null)));
        }
        using var received = new ReceivedRowsWorkspace(weights, held);
        foreach (int r in rowCounts)
        {
            received.Reserve(r, r);
            rows.Add(Row("host experts phase", $"R={r} phase=experts", () =>
            {
                var localIds = received.LocalIds(r); // filled row by row, as ExpertParallelMoe.FillLocalIds did before the seventh session (kept: comparable rows)
                for (int row = 0; row < r; row++)
                    localIds[row] = (int)((long)row * held / r);
                received.Run(layer, weights.GateUp, weights.Down, r);
            }));
        }
        return rows;
    }
}
