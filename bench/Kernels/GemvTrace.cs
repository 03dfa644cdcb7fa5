using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// MOE_GROUPED_GEMM_GEMV_TRACE=1 in <c>sweep grouped_gemm</c>: after a GEMV row, one more call of it (the traced build,
/// eager, after the row's replays) and, relative to the earliest block past its wait, the min / median / max over blocks of
/// each %globaltimer stamp of <c>grouped_gemm_gemv.cu</c> and the span to the last block's end. Where the call's time
/// goes: waiting, finding the tile, the first W round trip, streaming, the write.
/// </summary>
internal static class GemvTrace
{
    private static readonly string[] StampNames = ["after wait", "tile found", "first W arrived", "loop end", "after write"];
    private const long BufferBlocks = 1 << 19;

    /// <summary>Prints the trace of one call of <paramref name="enqueue"/> (a GEMV call) when the trace is on.</summary>
    public static void Print(Accelerator accelerator, string label, Action<AcceleratorStream> enqueue)
    {
        if (!GroupedGemmGemv.TraceRequested || accelerator.Kind != AcceleratorKind.Cuda)
            return;
        var buffer = GroupedGemmGemv.TraceBuffer ?? throw new InvalidOperationException("GemvTrace.Attach first");
        var stream = accelerator.DefaultStream;
        buffer.Clear(stream);
        enqueue(stream);
        var stamps = buffer.ToArray(stream);
        long blocks = GroupedGemmGemv.TracedBlocks;
        const int s = GroupedGemmGemv.TraceStamps;
        var withTile = Enumerable.Range(0, (int)blocks).Where(b => stamps[b * s + 1] != 0).ToList();
        StampTable.Print($"gemv trace {label}: {blocks} blocks, {withTile.Count} with a tile; us from the earliest block past its wait (globaltimer)",
            stamps, (int)blocks, StampNames, withTile);
    }

    /// <summary>Gives the traced build a buffer (when the trace is on) until the result is disposed.</summary>
    public static IDisposable? Attach(Accelerator accelerator) =>
        TraceBufferLease.When(GroupedGemmGemv.TraceRequested, accelerator, BufferBlocks * GroupedGemmGemv.TraceStamps, buffer => GroupedGemmGemv.TraceBuffer = buffer);
}
