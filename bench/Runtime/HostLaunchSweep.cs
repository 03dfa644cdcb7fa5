using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Collectives;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Runtime.Layers;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// Sweep <c>host_launch</c>: host time to enqueue the operations an expert-parallel forward issues, one at a time, with a
/// stopwatch on the host (not device events: what is measured is how long the issuing thread is busy, which is what holds
/// back an idle device in an eager forward). Each row: the median over samples of (time to enqueue N calls) / N, the
/// device synchronised between samples so the launch queue never fills (a full queue would make the host wait for the
/// device). Shapes: Qwen3-30B-A3B's layer on one of two EP ranks at 128 tokens (64 tokens a rank, k 8, E 128, H 2048;
/// 512 received rows over 64 held experts, I 768), where the EP layer's phases are a few kernels of microseconds each.
/// <code>
/// host sigmoid / topk_routing / router gemm / permute / permute local / grouped_gemm gate_up / down / combine
///                              kernel launches through the runtime's ops ("launches=L": what one call issues)
/// host upload / download       one asynchronous copy through a page-locked HostStage ("copies=1")
/// host event record            one event record, a phase timer's mark ("events=1")
/// host alltoallv               one all-to-allv call over this device alone ("ranks=1": its op table upload and launch)
/// host route / experts phase   one rank's whole phase as the layer issues it ("T=t phase=route", "R=r phase=experts";
///                              HostPhaseRows: single calls on an idle stream, at a rank's tokens and rows of the EP bench)
/// host route phase, after ...  the route right after what "after=" names, the experts phase behind a kernel (HostUploadRows;
///                              --calibrate fits "after=upload" routes and "after=kernel" experts phases, as the EP forward issues them)
/// host ... devices=2           one thread driving two GPUs in turn against one (HostSwitchRows: context switch, launch,
///                              route phase; 2 CUDA devices, else skipped; not fitted by --calibrate)
/// </code>
/// <c>moe simulate --calibrate</c> fits the scale model's host part (<c>ScaleParams.Host</c>) from these rows. Not the EP
/// layer itself, so validating against EP layer runs stays independent. On the CPU (kernels run when enqueued) the rows
/// time the CPU twins at tiny shapes and mean nothing for a GPU.
/// </summary>
internal static class HostLaunchSweep
{
    private sealed record Shapes(int Tokens, int TopK, int Experts, int Hidden, int Intermediate, int HeldExperts, int ReceivedRows);

    private static readonly Shapes Gpu = new(64, 8, 128, 2048, 768, 64, 512);
    private static readonly Shapes Cpu = new(4, 2, 8, 64, 96, 4, 8);

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        var z = cpu ? Cpu : Gpu;
        int calls = cpu ? 2 : 16, samples = cpu ? 3 : 40;
        var rows = new List<SweepRow>();
        var random = new Random(7);
        void Row(string name, string shape, Action<AcceleratorStream> enqueue)
        {
            double us = HostUsPerCall(accelerator, enqueue, calls, samples);
            rows.Add(new SweepRow(name, shape, us * 1e-3, 0, 0, 0, $"host stopwatch, median of {samples} x {calls} calls"));
        }

        int t = z.Tokens, k = z.TopK, e = z.Experts, h = z.Hidden, i = z.Intermediate, held = z.HeldExperts, r = z.ReceivedRows;
        // Route: router GEMM, top-k routing, permute by global expert with the gather (as MoeLayer.RouteAndPermute).
        using var hidden = accelerator.Upload<BFloat16>(Enumerable.Range(0, t * h).Select(_ => (BFloat16)(random.NextSingle() - 0.5f)).ToArray());
        using var router = accelerator.Upload<BFloat16>(Enumerable.Range(0, e * h).Select(_ => (BFloat16)(0.1f * (random.NextSingle() - 0.5f))).ToArray());
        using var routerOffsets = accelerator.Upload<int>([0, t]);
        using var logits = accelerator.Allocate<float>((long)t * e);
        var plain = new GroupedGemmOptions { ValidateOffsets = false };
        Row("host router gemm", $"T={t} N={e} K={h} launches=1", s => GroupedGemm.Run(accelerator, hidden, router, routerOffsets, logits, e, h, plain, s));
        using var ids = accelerator.Allocate<int>((long)t * k);
        using var weights = accelerator.Allocate<float>((long)t * k);
        using var counts = accelerator.Allocate<int>(e);
        using var routingWorkspace = accelerator.Upload<int>(new int[TopKRouting.WorkspaceElements(e)]);
        var softmax = TopKRoutingOptions.Softmax(k);
        GroupedGemm.Run(accelerator, hidden, router, routerOffsets, logits, e, h, plain);
        Row("host topk_routing", $"T={t} E={e} k={k} launches=1", s => TopKRouting.Run(logits, t, e, softmax, ids, weights, counts, s, routingWorkspace));
        using var offsets = accelerator.Allocate<int>(e + 1);
        using var rowOfSlot = accelerator.Allocate<int>((long)t * k);
        using var tokenOfRow = accelerator.Allocate<int>((long)t * k);
        using var gathered = accelerator.Allocate<BFloat16>((long)t * k * h);
        using var permuteWorkspace = accelerator.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(t, k, e)));
        Row("host permute", $"T={t} k={k} E={e} H={h} launches={Permute.Launches(t, k, e, gather: true)}",
            s => Permute.Run(ids, t, k, e, 1, counts, offsets, rowOfSlot, tokenOfRow, hidden, h, gathered, permuteWorkspace, s));

        // Experts of one rank: permute by local expert, gate_up + SiLU, down into F32, un-permute (as ReceivedRowsWorkspace.Run).
        using var localIds = accelerator.Upload<int>(Enumerable.Range(0, r).Select(x => x * held / r).ToArray());
        using var received = accelerator.Upload<BFloat16>(Enumerable.Range(0, r * h).Select(_ => (BFloat16)(random.NextSingle() - 0.5f)).ToArray());
        using var localCounts = accelerator.Allocate<int>(held);
        using var localOffsets = accelerator.Allocate<int>(held + 1);
        using var localRowOfSlot = accelerator.Allocate<int>(r);
        using var localTokenOfRow = accelerator.Allocate<int>(r);
        using var sorted = accelerator.Allocate<BFloat16>((long)r * h);
        using var localWorkspace = accelerator.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(r, 1, held)));
        Row("host permute local", $"R={r} k=1 E={held} H={h} launches={Permute.Launches(r, 1, held, gather: true)}",
            s => Permute.Run(localIds, r, 1, held, 1, localCounts, localOffsets, localRowOfSlot, localTokenOfRow, received, h, sorted, localWorkspace, s));
        using var gateUp = accelerator.Allocate<BFloat16>((long)held * 2 * i * h);
        using var down = accelerator.Allocate<BFloat16>((long)held * h * i);
        gateUp.Fill((BFloat16)0.01f);
        down.Fill((BFloat16)(-0.02f));
        using var activation = accelerator.Allocate<BFloat16>((long)r * i);
        using var expertOut = accelerator.Allocate<float>((long)r * h);
        using var splitK = GroupedGemmWorkspace.For(accelerator, new GroupedGemmShape(r, 2 * i, h, held, Fused: true), new GroupedGemmShape(r, h, i, held));
        var fused = new GroupedGemmOptions { ValidateOffsets = false, FusedSiluAndMul = true, SplitKWorkspace = splitK };
        var plainSplit = new GroupedGemmOptions { ValidateOffsets = false, SplitKWorkspace = splitK };
        Row("host grouped_gemm gate_up", $"R={r} E={held} N={2 * i} K={h} launches=1", s => GroupedGemm.Run(accelerator, sorted, gateUp, localOffsets, activation, 2 * i, h, fused, s));
        Row("host grouped_gemm down", $"R={r} E={held} N={h} K={i} launches=1", s => GroupedGemm.Run(accelerator, activation, down, localOffsets, expertOut, h, i, plainSplit, s));
        using var ones = accelerator.Upload<float>(Enumerable.Repeat(1f, r).ToArray());
        using var returned = accelerator.Allocate<float>((long)r * h);
        Row("host combine", $"T={r} k=1 H={h} launches=1", s => Combine.Run(expertOut, localRowOfSlot, ones, r, 1, h, returned, null, s));
        using var small = accelerator.Upload<float>(new float[256]);
        Row("host sigmoid", "n=256 launches=1", s => Sigmoid.Run(small, s));

        // Copies through page-locked stages (the id upload, the offsets and output downloads) and a phase timer's mark.
        using var stage = new HostStage<int>(accelerator);
        stage.Reserve(r).Fill(1);
        Row("host upload", $"ints={r} copies=1", _ => stage.Upload(localIds));
        using var downloadStage = new HostStage<int>(accelerator);
        Row("host download", $"ints={e + 1} copies=1", _ => downloadStage.Download(offsets));
        using var mark = accelerator.CreateEvent();
        Row("host event record", "events=1", s => mark.Record(s));

        // One rank's share of an all-to-allv: a communicator over this device alone, rows sent to itself.
        try
        {
            using var communicator = Communicator.Create([accelerator]);
            using var send = accelerator.Allocate<BFloat16>((long)r * h);
            using var receive = accelerator.Allocate<BFloat16>((long)r * h);
            var sendCounts = new long[1, 1];
            sendCounts[0, 0] = (long)r * h;
            Row("host alltoallv", $"ranks=1 rows={r} H={h}", s => communicator.AllToAllV([send], sendCounts, [receive], [s]));
            communicator.Synchronize();
        }
        catch (Exception ex) // a backend that takes no one-rank communicator: the model then prices the collective at 0
        {
            Console.WriteLine($"host alltoallv: skipped ({ex.Message})");
        }
        rows.AddRange(HostPhaseRows.Run(accelerator)); // whole phases as the EP layer issues them
        rows.AddRange(HostUploadRows.Run(accelerator)); // the route right after its input upload, as the EP forward issues it
        rows.AddRange(HostSwitchRows.Run(accelerator)); // one thread driving two devices in turn (2 GPUs; skipped otherwise)
        return rows;
    }

    /// <summary>Median host microseconds per call of <paramref name="enqueue"/>, enqueued <paramref name="calls"/> times back to back per sample.</summary>
    internal static double HostUsPerCall(Accelerator accelerator, Action<AcceleratorStream> enqueue, int calls, int samples, int warmup = 3)
    {
        var stream = accelerator.DefaultStream;
        for (int w = 0; w < warmup; w++)
            enqueue(stream);
        stream.Synchronize();
        var times = new double[samples];
        for (int s = 0; s < samples; s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int c = 0; c < calls; c++)
                enqueue(stream);
            times[s] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds / calls;
            stream.Synchronize();
        }
        Array.Sort(times);
        return samples % 2 == 1 ? times[samples / 2] : (times[samples / 2 - 1] + times[samples / 2]) / 2;
    }
}
