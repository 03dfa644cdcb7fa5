using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// The host_launch sweep's two-device rows: what it costs one host thread to drive two GPUs in turn, as the in-process
/// <c>ExpertParallelMoe</c> does (each op binds its device's context, <see cref="CudaAccelerator.Bind"/>, which switches only
/// when the thread's current context is another's). Each row has a one-device control timed the same way, so the
/// difference is the alternation alone:
/// <code>
/// host context switch               "devices=2 switches=1"   Bind of the other device, alternately (cuCtxSetCurrent)
/// host launch, one device           "devices=1 ops=1"        a sigmoid launch, 16 back to back on one device
/// host launch, alternating devices  "devices=2 ops=1"        the same launch, 16 alternating between the two devices
/// host route phase, one rank twice  "T=t phase=route devices=1"  MoeLayer.RouteAndPermute twice on one device, per call
/// host route phase, two ranks in turn "T=t phase=route devices=2" rank 0's route then rank 1's, per rank (the EP forward's order)
/// </code>
/// Shapes: one rank of Qwen3-30B-A3B over 2 ranks, t tokens a rank. The shapes name no launches/copies/events/ranks count
/// and no bare "phase=route" shape, so <c>moe simulate --calibrate</c> does not fit them (the host term's launch price
/// stays the one-device sweep's). Needs two CUDA devices: on one, or on the CPU, it prints why it skips them.
/// </summary>
internal static class HostSwitchRows
{
    private static readonly int[] Tokens = [1, 64, 512];
    private const int Calls = 16, Samples = 40;

    public static IEnumerable<SweepRow> Run(Accelerator accelerator)
    {
        if (accelerator is not CudaAccelerator first)
        {
            Console.WriteLine("host two-device rows: skipped (not a CUDA accelerator)");
            return [];
        }
        if (CudaRuntimeInfo.DeviceCount < 2)
        {
            Console.WriteLine($"host two-device rows: skipped ({CudaRuntimeInfo.DeviceCount} CUDA device: they need 2)");
            return [];
        }
        using var second = CudaAccelerator.Open(first.Id.Index == 0 ? 1 : 0);
        return RunOn(first, second);
    }

    private static List<SweepRow> RunOn(CudaAccelerator a, CudaAccelerator b)
    {
        var rows = new List<SweepRow>();
        var both = new Accelerator[] { a, b };
        SweepRow Row(string name, string shape, int perSample, Action enqueue)
        {
            double us = MedianUs(both, enqueue, Samples) / perSample;
            return new SweepRow(name, shape, us * 1e-3, 0, 0, 0, $"host stopwatch, median of {Samples} samples, {a.Name} and {b.Name}");
        }

        rows.Add(Row("host context switch", "devices=2 switches=1", Calls, () =>
        {
            for (int c = 0; c < Calls; c += 2)
            {
                b.Bind();
                a.Bind();
            }
        }));
        using var valuesA = a.Upload<float>(new float[256]);
        using var valuesB = b.Upload<float>(new float[256]);
        rows.Add(Row("host launch, one device", "devices=1 ops=1", Calls, () =>
        {
            for (int c = 0; c < Calls; c++)
                Sigmoid.Run(valuesA);
        }));
        rows.Add(Row("host launch, alternating devices", "devices=2 ops=1", Calls, () =>
        {
            for (int c = 0; c < Calls; c += 2)
            {
                Sigmoid.Run(valuesA);
                Sigmoid.Run(valuesB);
            }
        }));

        var config = LayerPresets.Get("qwen3-30b-a3b");
        int held = config.NumExperts / 2, h = config.HiddenSize;
        using var weightsA = DeviceMoeWeights.CreateRandom(a, config, DType.BF16, seed: 11, firstExpert: 0, expertCount: held);
        using var weightsB = DeviceMoeWeights.CreateRandom(b, config, DType.BF16, seed: 11, firstExpert: held, expertCount: held);
        var layerA = new MoeLayer(weightsA);
        var layerB = new MoeLayer(weightsB);
        var random = new Random(11);
        foreach (int t in Tokens)
        {
            var input = Enumerable.Range(0, t * h).Select(_ => (BFloat16)(random.NextSingle() - 0.5f)).ToArray();
            using var inputA = a.Upload<BFloat16>(input);
            using var inputB = b.Upload<BFloat16>(input);
            using var workspaceA = new MoeWorkspace(weightsA, t);
            using var workspaceB = new MoeWorkspace(weightsB, t);
            rows.Add(Row("host route phase, one rank twice", $"T={t} phase=route devices=1", 2, () =>
            {
                layerA.RouteAndPermute(inputA, workspaceA, null);
                layerA.RouteAndPermute(inputA, workspaceA, null);
            }));
            rows.Add(Row("host route phase, two ranks in turn", $"T={t} phase=route devices=2", 2, () =>
            {
                layerA.RouteAndPermute(inputA, workspaceA, null);
                layerB.RouteAndPermute(inputB, workspaceB, null);
            }));
        }
        return rows;
    }

    /// <summary>Median host microseconds of one <paramref name="enqueue"/>, every device synchronised between samples (idle streams, as in a forward).</summary>
    private static double MedianUs(IReadOnlyList<Accelerator> devices, Action enqueue, int samples, int warmup = 3)
    {
        for (int w = 0; w < warmup; w++)
            enqueue();
        foreach (var d in devices)
            d.DefaultStream.Synchronize();
        var times = new double[samples];
        for (int s = 0; s < samples; s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            enqueue();
            times[s] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            foreach (var d in devices)
                d.DefaultStream.Synchronize();
        }
        Array.Sort(times);
        return samples % 2 == 1 ? times[samples / 2] : (times[samples / 2 - 1] + times[samples / 2]) / 2;
    }
}
