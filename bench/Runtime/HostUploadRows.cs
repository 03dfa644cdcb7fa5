using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// The host_launch sweep's rows for the route as the EP forward issues it: right after the rank's input upload. In the EP
/// layer the route's enqueue grows with the tokens (45 -> 154 us, 1 -> 512 tokens a rank) where the route alone on an idle
/// stream does not (19.5 us + 0.001 us a token); what comes just before it in the layer and not in the sweep is the upload:
/// the F32 -> bf16 conversion (a parallel loop above 64K values) and an asynchronous copy of T x H values still running.
/// Only the route is timed (stopwatch), the upload untimed just before it:
/// <code>
/// host route phase, busy stream    "T=t phase=route after=kernel"   a long kernel (sigmoid over 128 MB, ~100 us) still running
/// host route phase, after copy     "T=t phase=route after=copy"     a page-locked copy of the rank's bf16 input, then the route
/// host route phase, after upload   "T=t phase=route after=upload"   HostInputStage.Upload (conversion + copy), then the route
/// host experts phase, busy stream  "R=r phase=experts after=kernel" the experts phase behind the same long kernel (in the
///                                                                   layer it follows the dispatch's kernel on the stream)
/// </code>
/// Against "host route phase" "T=t phase=route" and "host experts phase" "R=r phase=experts" (HostPhaseRows, an idle
/// stream): the per-op rows (16 calls back to back, so a busy stream) cost about twice the idle whole-phase rows, so the
/// stream's state is a candidate in itself. One rank of Qwen3-30B-A3B over 2 ranks. <c>moe simulate --calibrate</c> fits
/// the "after=upload" route rows and the "after=kernel" experts rows (HostParams.RoutePhaseAfterUpload, ExpertsPhaseBusy:
/// how the EP forward issues those phases); the route after a copy or a kernel alone is for comparison, not fitted.
/// </summary>
internal static class HostUploadRows
{
    private static readonly int[] GpuTokens = [1, 64, 512, 2048];
    private static readonly int[] CpuTokens = [1, 4];
    private static readonly int[] GpuRows = [512, 4096];
    private static readonly int[] CpuRows = [8];

    public static IEnumerable<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        var config = LayerPresets.Get("qwen3-30b-a3b");
        if (cpu) // the CPU twins at tiny shapes: the code path runs, the figures mean nothing for a GPU
            config = config with { HiddenSize = 64, MoeIntermediateSize = 96, NumExperts = 8, TopK = 2 };
        int held = config.NumExperts / 2, h = config.HiddenSize, samples = cpu ? 3 : 40;
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 11, firstExpert: 0, expertCount: held);
        var layer = new MoeLayer(weights);
        var random = new Random(11);
        var rows = new List<SweepRow>();
        // The long kernel that keeps the stream busy: sigmoid over 32M floats (read and written: ~100 us on an H200).
        using var busy = accelerator.Allocate<float>(cpu ? 256 : 32L << 20);
        busy.Clear();
        void Busy() => MoeRuntime.Kernels.Activation.Sigmoid.Run(busy);
        foreach (int t in cpu ? CpuTokens : GpuTokens)
        {
            var values = Enumerable.Range(0, t * h).Select(_ => random.NextSingle() - 0.5f).ToArray();
            using var input = accelerator.Allocate<BFloat16>((long)t * h);
            using var workspace = new MoeWorkspace(weights, t);
            using var copyStage = new HostStage<BFloat16>(accelerator);
            var staged = copyStage.Reserve(values.Length);
            for (int i = 0; i < values.Length; i++)
                staged[i] = (BFloat16)values[i];
            using var inputStage = new HostInputStage(accelerator);
            SweepRow Row(string name, string after, Action upload)
            {
                double us = RouteAfter(accelerator, upload, () => layer.RouteAndPermute(input, workspace, null), samples);
                return new SweepRow(name, $"T={t} phase=route after={after}", us * 1e-3, 0, 0, 0,
                    $"host stopwatch around the route only, median of {samples}, what after= names enqueued untimed just before");
            }
            rows.Add(Row("host route phase, busy stream", "kernel", Busy));
            rows.Add(Row("host route phase, after copy", "copy", () => copyStage.Upload(input)));
            rows.Add(Row("host route phase, after upload", "upload", () => inputStage.Upload(values, input)));
        }
        using var received = new ReceivedRowsWorkspace(weights, held);
        foreach (int r in cpu ? CpuRows : GpuRows)
        {
            received.Reserve(r, r);
            double us = RouteAfter(accelerator, Busy, () =>
            {
                var localIds = received.LocalIds(r);
                for (int local = 0; local < held; local++) // blocks of rows per local expert, filled as the layer does
                    localIds[(int)((long)local * r / held)..(int)((long)(local + 1) * r / held)].Fill(local);
                received.Run(layer, weights.GateUp, weights.Down, r);
            }, samples);
            rows.Add(new SweepRow("host experts phase, busy stream", $"R={r} phase=experts after=kernel", us * 1e-3, 0, 0, 0,
                $"host stopwatch around the phase only, median of {samples}, a long kernel enqueued untimed just before"));
        }
        return rows;
    }

    /// <summary>Median host microseconds of <paramref name="route"/> (a phase) issued right after <paramref name="upload"/> (untimed), the stream idle before each sample.</summary>
    private static double RouteAfter(Accelerator accelerator, Action upload, Action route, int samples, int warmup = 3)
    {
        var stream = accelerator.DefaultStream;
        var times = new double[samples];
        for (int s = -warmup; s < samples; s++)
        {
            upload();
            long t0 = Stopwatch.GetTimestamp();
            route();
            double us = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            stream.Synchronize();
            if (s >= 0)
                times[s] = us;
        }
        Array.Sort(times);
        return samples % 2 == 1 ? times[samples / 2] : (times[samples / 2 - 1] + times[samples / 2]) / 2;
    }
}
