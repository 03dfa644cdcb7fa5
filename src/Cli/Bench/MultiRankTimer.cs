using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Cli.Bench;

/// <summary>
/// Times work that every rank enqueues on its own CUDA stream (a collective, a tensor-parallel layer): the median of
/// <c>samples</c> samples of <c>inner</c> calls each, per call. Every rank starts after rank 0's start event and rank
/// 0's end event follows every rank's last call, so a sample covers all ranks' work, not only rank 0's. In graph mode
/// the <c>inner</c> calls are captured once into one graph per rank (the calls must be capturable: nothing read back
/// on the host) and each sample replays them; when the driver refuses the capture the calls run eagerly, and the
/// returned timing says which.
/// </summary>
internal sealed class MultiRankTimer(IReadOnlyList<CudaStream> streams, Action<string> log)
{
    /// <param name="enqueue">Enqueues one call on every rank's stream.</param>
    /// <param name="synchronize">Waits for every rank (and checks the callee's own errors, e.g. a communicator's).</param>
    public (double Ms, string Timing) Median(Action enqueue, Action synchronize, bool graph, int warmup, int samples, int inner)
    {
        for (int i = 0; i < warmup; i++)
            enqueue();
        SynchronizeAll(synchronize);
        var graphs = new List<CudaGraph>();
        try
        {
            string timing = graph && TryCapture(enqueue, inner, graphs) ? "cuda-graph" : "eager";
            void RunInner()
            {
                if (graphs.Count == streams.Count)
                {
                    for (int r = 0; r < streams.Count; r++)
                        graphs[r].Launch(streams[r]);
                }
                else
                {
                    for (int i = 0; i < inner; i++)
                        enqueue();
                }
            }
            // One untimed run: a graph's first launch uploads it.
            RunInner();
            SynchronizeAll(synchronize);
            var starts = streams.Select(s => s.Accelerator.CreateEvent()).ToList();
            var ends = streams.Select(s => s.Accelerator.CreateEvent()).ToList();
            try
            {
                var times = new List<double>();
                for (int s = 0; s < samples; s++)
                {
                    starts[0].Record(streams[0]);
                    for (int r = 1; r < streams.Count; r++)
                        streams[r].Wait(starts[0]);
                    RunInner();
                    for (int r = 1; r < streams.Count; r++)
                    {
                        ends[r].Record(streams[r]);
                        streams[0].Wait(ends[r]);
                    }
                    ends[0].Record(streams[0]);
                    SynchronizeAll(synchronize);
                    times.Add(ends[0].ElapsedMillisecondsSince(starts[0]) / inner);
                }
                return (BenchMedian.Of(times), timing);
            }
            finally
            {
                starts.ForEach(e => e.Dispose());
                ends.ForEach(e => e.Dispose());
            }
        }
        finally
        {
            graphs.ForEach(g => g.Dispose());
        }
    }

    /// <summary>
    /// Ranks without streams to time (CPU accelerators): the median by the host's clock of <paramref name="inner"/> calls
    /// and a <paramref name="wait"/> for every rank, per call.
    /// </summary>
    public static double HostMedian(Action enqueue, Action wait, int warmup, int samples, int inner)
    {
        for (int i = 0; i < warmup; i++)
            enqueue();
        wait();
        var times = new List<double>();
        for (int s = 0; s < samples; s++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < inner; i++)
                enqueue();
            wait();
            times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds / inner);
        }
        return BenchMedian.Of(times);
    }

    private void SynchronizeAll(Action synchronize)
    {
        synchronize();
        foreach (var stream in streams)
            stream.Synchronize();
    }

    /// <summary>
    /// Captures <paramref name="inner"/> calls on each rank's stream into one graph per rank, instantiated; false, with
    /// the graphs dropped and a warning logged, when the driver refuses.
    /// </summary>
    private bool TryCapture(Action enqueue, int inner, List<CudaGraph> graphs)
    {
        var capturing = new List<CudaStream>();
        try
        {
            foreach (var s in streams)
            {
                s.BeginCapture();
                capturing.Add(s);
            }
            for (int i = 0; i < inner; i++)
                enqueue();
            foreach (var s in streams)
            {
                capturing.Remove(s);
                graphs.Add(s.EndCapture());
            }
            foreach (var g in graphs)
                g.Instantiate();
            return true;
        }
        catch (Exception e) when (e is AcceleratorException or InvalidOperationException)
        {
            log($"graph capture failed ({e.Message.Split('\n')[0]}); timing eager launches");
            foreach (var s in capturing)
            {
                try { s.EndCapture().Dispose(); } catch (AcceleratorException) { }
            }
            graphs.ForEach(g => g.Dispose());
            graphs.Clear();
            return false;
        }
    }
}
