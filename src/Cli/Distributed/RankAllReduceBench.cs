using System.Diagnostics;
using System.Globalization;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Collectives.Nccl;

namespace MoeRuntime.Cli.Distributed;

/// <summary>
/// <c>moe bench allreduce</c> as one rank of a multi-process run: NCCL AllReduce (our algorithms are one-process
/// only) on verifiable data, timed like <see cref="AllReduceBench"/> on CUDA: <c>inner</c> AllReduces captured in a
/// CUDA graph on each rank, the median over samples of device-event time on rank 0, which prints the table.
/// Every rank checks its own output; the wrong-element column is the sum over ranks (an AllReduce of the counts).
/// </summary>
internal sealed class RankAllReduceBench(NcclProcessGroup group, DType dtype, int warmup, int samples, int inner, Action<string> log)
{
    public IEnumerable<AllReduceRow> Run(IReadOnlyList<long> sizes)
    {
        foreach (long bytes in sizes)
            yield return RunOne(bytes);
    }

    private AllReduceRow RunOne(long bytes)
    {
        var a = group.Accelerator;
        int n = group.Size, elementSize = DTypes.SizeOf(dtype);
        long count = Math.Max(1, bytes / elementSize);
        using var input = AllReduceBench.Upload(a, dtype, AllReduceBench.Verifiable(group.Rank, count));
        using var output = a.Allocate(dtype, count);
        group.AllReduce(input, output);
        long wrong = CountWrong(output, count);
        using (var wrongHere = a.Upload<float>([wrong]))
        {
            group.AllReduce(wrongHere, wrongHere);
            wrong = (long)wrongHere.ToArray()[0];
        }
        var (ms, timing) = Time(input, output);
        double algbw = count * elementSize / (ms / 1e3) / 1e9;
        return new AllReduceRow("Nccl", n, DTypes.Name(dtype), count * elementSize, count, ms * 1e3, algbw, algbw * 2.0 * (n - 1) / n, wrong, "Nccl", timing);
    }

    private (double Ms, string Timing) Time(MemoryBuffer input, MemoryBuffer output)
    {
        var a = group.Accelerator;
        var comm = group.Communicator;
        using var stream = (CudaStream)a.CreateStream();
        for (int i = 0; i < warmup; i++)
            comm.AllReduce(input, output, stream);
        stream.Synchronize();
        comm.ThrowIfAsyncError();
        CudaGraph? graph = null;
        string timing = "cuda-graph";
        try
        {
            stream.BeginCapture();
            for (int i = 0; i < inner; i++)
                comm.AllReduce(input, output, stream);
            graph = stream.EndCapture();
            graph.Instantiate();
        }
        catch (Exception e) when (e is AcceleratorException or InvalidOperationException)
        {
            // Every rank fails the same way here (same NCCL, same driver), so all fall back together.
            log($"Nccl: graph capture failed ({e.Message}); timing eager launches");
            try { stream.EndCapture().Dispose(); } catch (AcceleratorException) { }
            graph?.Dispose();
            graph = null;
            timing = "eager";
        }
        using var start = a.CreateEvent();
        using var end = a.CreateEvent();
        try
        {
            var times = new List<double>();
            for (int s = 0; s < samples; s++)
            {
                start.Record(stream);
                if (graph is not null)
                    graph.Launch(stream);
                else
                    for (int i = 0; i < inner; i++)
                        comm.AllReduce(input, output, stream);
                end.Record(stream);
                stream.Synchronize();
                comm.ThrowIfAsyncError();
                times.Add(end.ElapsedMillisecondsSince(start) / inner);
            }
            times.Sort();
            return (times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2, timing);
        }
        finally
        {
            graph?.Dispose();
        }
    }

    private long CountWrong(MemoryBuffer output, long count)
    {
        var expected = new float[count];
        for (int r = 0; r < group.Size; r++)
        {
            var part = AllReduceBench.Verifiable(r, count);
            for (long i = 0; i < count; i++)
                expected[i] += part[i];
        }
        float[] actual = output switch
        {
            MemoryBuffer<float> f => f.ToArray(),
            MemoryBuffer<BFloat16> b => b.ToArray().Select(x => (float)x).ToArray(),
            MemoryBuffer<Half> h => h.ToArray().Select(x => (float)x).ToArray(),
            _ => throw new InvalidOperationException(output.Describe()),
        };
        long wrong = 0;
        for (long i = 0; i < count; i++)
            if (actual[i] != expected[i])
                wrong++;
        return wrong;
    }

    /// <summary>The whole bench for one rank; rank 0 prints the table (and writes the files). Returns the exit code.</summary>
    public static int Execute(LaunchEnvironment launch, DType dtype, IReadOnlyList<long> sizes, int warmup, int samples, int inner,
                              string? csvPath, string? jsonPath, string? svgPath, TextWriter output, TextWriter errors, Action<string> log)
    {
        try
        {
            using var accelerator = RankDevice.Open(launch);
            using var group = NcclProcessGroup.Create(launch, accelerator, launch.RendezvousTimeout);
            bool lead = launch.Rank == 0;
            var bench = new RankAllReduceBench(group, dtype, warmup, samples, inner, lead ? log : _ => { });
            if (lead)
            {
                output.WriteLine($"# AllReduce over {launch.WorldSize} processes, NCCL {NcclLibrary.Version}, rank 0 on {accelerator.Name} ({accelerator.Info.Name}), {DTypes.Name(dtype)}; busbw = algbw * 2(N-1)/N");
                output.WriteLine();
                output.WriteLine("# Nccl");
                output.WriteLine($"{"size",10} {"count",12} {"type",5} {"time(us)",10} {"algbw(GB/s)",12} {"busbw(GB/s)",12} {"#wrong",8} {"picked",8} {"timing",10}");
            }
            var rows = new List<AllReduceRow>();
            foreach (var row in bench.Run(sizes))
            {
                rows.Add(row);
                if (lead)
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{row.Bytes,10} {row.Count,12} {row.DType,5} {row.TimeUs,10:F2} {row.AlgorithmGBs,12:F2} {row.BusGBs,12:F2} {row.WrongElements,8} {row.Picked,8} {row.Timing,10}"));
            }
            if (lead && csvPath is not null)
                File.WriteAllText(csvPath, Commands.BenchCommand.ToCsv(rows));
            if (lead && jsonPath is not null)
                File.WriteAllText(jsonPath, System.Text.Json.JsonSerializer.Serialize(new { device = accelerator.Info.Name, ranks = launch.WorldSize, processes = true, rows },
                    new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            if (lead && svgPath is not null)
                File.WriteAllText(svgPath, LatencyChart.Render($"NCCL AllReduce {DTypes.Name(dtype)}, {launch.WorldSize} processes x {accelerator.Info.Name}",
                    new Dictionary<string, IReadOnlyList<(long, double)>> { ["Nccl"] = rows.Select(r => (r.Bytes, r.TimeUs)).ToList() }));
            return rows.Any(r => r.WrongElements > 0) ? 1 : 0;
        }
        catch (Exception e) when (RankDevice.IsGroupFailure(e) || e is NotSupportedException)
        {
            errors.WriteLine($"moe bench allreduce: rank {launch.Rank} of {launch.WorldSize}: {e.Message}");
            return 1;
        }
    }
}
