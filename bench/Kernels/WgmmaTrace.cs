using System.Globalization;
using System.Text;
using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// MOE_GROUPED_GEMM_WGMMA_TRACE=1 in <c>sweep grouped_gemm</c>: after a wgmma row, one more call of it (the traced build,
/// eager) and its work items as a CSV, one line an item: when its first copy was issued, its consumers began, its last
/// wgmma and its epilogue ended (us from the earliest issue), the SM and block that ran it, its expert, rows and column
/// tile. Written to MOE_SWEEP_TRACE_DIR (default: the current folder), named after the row. What the two schedules
/// (MOE_GROUPED_GEMM_WGMMA_SCHEDULE) do with the same items.
/// </summary>
internal static class WgmmaTrace
{
    private const long BufferItems = 1 << 18;

    /// <summary>Traces one call of <paramref name="enqueue"/> (a wgmma call) when the trace is on.</summary>
    public static void Write(Accelerator accelerator, string label, Action<AcceleratorStream> enqueue)
    {
        if (!GroupedGemmWgmma.TraceRequested || accelerator.Kind != AcceleratorKind.Cuda)
            return;
        var buffer = GroupedGemmWgmma.TraceBuffer ?? throw new InvalidOperationException("WgmmaTrace.Attach first");
        var stream = accelerator.DefaultStream;
        buffer.Clear(stream);
        enqueue(stream);
        var values = buffer.ToArray(stream);
        const int v = GroupedGemmWgmma.TraceValues;
        var items = Enumerable.Range(0, (int)Math.Min(GroupedGemmWgmma.TracedItems, BufferItems)).Where(t => values[t * v] != 0).ToList();
        if (items.Count == 0)
        {
            Console.WriteLine($"wgmma trace {label}: no items traced");
            return;
        }
        long origin = items.Min(t => values[t * v]);
        double Us(long ns) => (ns - origin) / 1e3;
        var csv = new StringBuilder("item,issued_us,start_us,loop_end_us,end_us,sm,block,expert,rows,column_tile\n");
        foreach (int t in items)
        {
            long where = values[t * v + 4], what = values[t * v + 5];
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{t},{Us(values[t * v]):F3},{Us(values[t * v + 1]):F3},{Us(values[t * v + 2]):F3},{Us(values[t * v + 3]):F3}," +
                $"{where >> 32},{where & 0xffffffffL},{what >> 40},{(what >> 20) & 0xfffffL},{what & 0xfffffL}"));
        }
        string folder = Environment.GetEnvironmentVariable("MOE_SWEEP_TRACE_DIR") is { Length: > 0 } dir ? dir : ".";
        string name = new string(label.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '=' ? c : '_').ToArray());
        string path = Path.Combine(folder, $"wgmma-trace-{name}.csv");
        File.WriteAllText(path, csv.ToString());
        var tiles = items.Select(t => Us(values[t * v + 3]) - Us(values[t * v + 1])).Order().ToList();
        Console.WriteLine($"wgmma trace {label}: {items.Count} items, span {items.Max(t => Us(values[t * v + 3])):F1} us, " +
            $"a tile's consumers {tiles[tiles.Count / 2]:F2} us (median), {tiles[^1]:F2} (max); {path}");
    }

    /// <summary>Gives the traced build a buffer (when the trace is on) until the result is disposed.</summary>
    public static IDisposable? Attach(Accelerator accelerator) =>
        TraceBufferLease.When(GroupedGemmWgmma.TraceRequested, accelerator, BufferItems * GroupedGemmWgmma.TraceValues, buffer => GroupedGemmWgmma.TraceBuffer = buffer);
}
