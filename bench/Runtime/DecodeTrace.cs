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
                    StampTable.Print($"decode trace {label}: {blocks} blocks, forward {i} of {Forwards} ({code}); us from the earliest block past its wait (globaltimer)",
                        stamps, blocks, StampNames, Enumerable.Range(0, blocks).ToList());
                    if (i == Forwards) // the medians above mix blocks with and without work in a phase: each kind alone
                    {
                        var (router, gateUp) = MoeDecode.TracedWorkingBlocks;
                        StampTable.Print($"  the same, the {router} blocks with a router item", stamps, blocks, StampNames, Enumerable.Range(0, router).ToList());
                        StampTable.Print($"  the same, the {gateUp} blocks with a gate_up item", stamps, blocks, StampNames, Enumerable.Range(0, gateUp).ToList());
                        if (gateUp < blocks)
                            StampTable.Print($"  the same, the {blocks - gateUp} blocks without one", stamps, blocks, StampNames, Enumerable.Range(gateUp, blocks - gateUp).ToList());
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
