using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.Decode;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// MOE_DECODE_TRACE=1 in <c>sweep moe_layer</c>: after a row whose forward runs the fused decode kernel, one more eager
/// forward with its traced build, and the min / median / max over blocks of each phase's %globaltimer stamp from the
/// earliest block past its wait: where the launch's time goes (router, barriers, routing, gate_up, down). The traced
/// build runs <see cref="Forwards"/> forwards; the first one's stamps and the last one's are shown. The first launch of
/// a freshly loaded build fetches its code cold, which the timed rows (graph replays of warm code) never pay.
/// </summary>
internal static class DecodeTrace
{
    private static readonly string[] StampNames = ["after wait", "router done", "after barrier 1", "routed", "gate_up done", "prefetch asked", "after barrier 2", "down done"];
    private const int BufferBlocks = 1 << 14;
    private const int Forwards = 8; // two rounds of a 4-layer cycle: the traced one is a cold layer with warm code

    /// <summary>
    /// Which SMs hold <paramref name="blocks"/> (the trace's last value a block, %smid): how many SMs, and how many of them
    /// hold 1, 2, ... of these blocks. Phase work on blocks 0 .. n - 1 is spread only as far as the hardware put those blocks.
    /// </summary>
    private static void PrintSms(string what, long[] stamps, IEnumerable<int> blocks)
    {
        var perSm = blocks.GroupBy(b => SmOf(stamps, b)).Select(g => g.Count()).ToList();
        string spread = string.Join(", ", perSm.GroupBy(c => c).OrderBy(g => g.Key).Select(g => $"{g.Count()} SMs x {g.Key}"));
        Console.WriteLine($"  SMs of {what}: {perSm.Count} ({spread})");
    }

    /// <summary>A block's SM: the last value it wrote (not a time).</summary>
    private static long SmOf(long[] stamps, int block) => stamps[block * MoeDecode.TraceStamps + MoeDecode.TraceStamps - 1];

    /// <summary>Prints the trace of one <paramref name="forward"/> (a layer forward that runs the fused kernel) when the trace is on.</summary>
    public static void Print(Accelerator accelerator, string label, Action<AcceleratorStream> forward)
    {
        if (!MoeDecode.TraceRequested || accelerator.Kind != AcceleratorKind.Cuda)
            return;
        using var buffer = accelerator.Allocate<long>((long)BufferBlocks * MoeDecode.TraceStamps);
        MoeDecode.TraceBuffer = buffer;
        try
        {
            var stream = accelerator.DefaultStream;
            buffer.Clear(stream);
            for (int i = 1; i <= Forwards; i++) // every launch writes every stamp of every block: the last one's remain
            {
                forward(stream);
                if (i == 1 || i == Forwards)
                {
                    var stamps = buffer.ToArray(stream);
                    int blocks = MoeDecode.TracedBlocks;
                    string code = i == 1 ? "the build's first launch, code cold" : "code warm";
                    const int stride = MoeDecode.TraceStamps;
                    StampTable.Print($"decode trace {label}: {blocks} blocks, forward {i} of {Forwards} ({code}); us from the earliest block past its wait (globaltimer)",
                        stamps, blocks, StampNames, Enumerable.Range(0, blocks).ToList(), stride);
                    if (i == Forwards) // the medians above mix blocks with and without work in a phase: each kind alone
                    {
                        var (router, gateUp) = MoeDecode.TracedWorkingBlocks;
                        StampTable.Print($"  the same, the {router} blocks with a router item", stamps, blocks, StampNames, Enumerable.Range(0, router).ToList(), stride);
                        StampTable.Print($"  the same, the {gateUp} blocks with a gate_up item", stamps, blocks, StampNames, Enumerable.Range(0, gateUp).ToList(), stride);
                        if (gateUp < blocks)
                            StampTable.Print($"  the same, the {blocks - gateUp} blocks without one", stamps, blocks, StampNames, Enumerable.Range(gateUp, blocks - gateUp).ToList(), stride);
                        PrintSms("every block", stamps, Enumerable.Range(0, blocks));
                        Console.WriteLine($"  SM of blocks 0 ..: {string.Join(" ", Enumerable.Range(0, Math.Min(blocks, 40)).Select(b => SmOf(stamps, b)))}");
                        PrintSms($"the {router} router blocks", stamps, Enumerable.Range(0, router));
                        PrintSms($"the {gateUp} gate_up blocks", stamps, Enumerable.Range(0, gateUp));
                    }
                }
            }
        }
        finally
        {
            MoeDecode.TraceBuffer = null;
        }
    }
}
