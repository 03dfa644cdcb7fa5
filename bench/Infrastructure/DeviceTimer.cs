using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// Times device work the way docs/PERFORMANCE.md reports it: warm-up first, then the median of many
/// timed runs. On CUDA each sample is a pair of events around <c>inner</c> back-to-back launches
/// (optionally replayed from a CUDA graph, to take launch overhead out); on the CPU, a stopwatch.
/// </summary>
public static class DeviceTimer
{
    /// <summary>Median milliseconds of one call of <paramref name="enqueue"/>, which must enqueue its work on the given stream.</summary>
    public static double MedianMs(Accelerator accelerator, Action<AcceleratorStream> enqueue, int warmup = 5, int samples = 30, int inner = 10, bool useGraph = false)
    {
        var stream = accelerator.DefaultStream;
        for (int i = 0; i < warmup; i++)
            enqueue(stream);
        stream.Synchronize();
        var times = new double[samples];
        if (accelerator is CudaAccelerator && stream is CudaStream cudaStream)
        {
            CudaGraph? graph = null;
            if (useGraph)
            {
                cudaStream.BeginCapture();
                for (int i = 0; i < inner; i++)
                    enqueue(stream);
                graph = cudaStream.EndCapture();
                graph.Launch(cudaStream);
                stream.Synchronize();
            }
            using var start = accelerator.CreateEvent();
            using var end = accelerator.CreateEvent();
            try
            {
                for (int s = 0; s < samples; s++)
                {
                    start.Record(stream);
                    if (graph is not null)
                        graph.Launch(cudaStream);
                    else
                        for (int i = 0; i < inner; i++)
                            enqueue(stream);
                    end.Record(stream);
                    end.Synchronize();
                    times[s] = end.ElapsedMillisecondsSince(start) / inner;
                }
            }
            finally
            {
                graph?.Dispose();
            }
        }
        else
        {
            for (int s = 0; s < samples; s++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < inner; i++)
                    enqueue(stream);
                stream.Synchronize();
                times[s] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / inner;
            }
        }
        Array.Sort(times);
        return times[samples / 2];
    }
}
