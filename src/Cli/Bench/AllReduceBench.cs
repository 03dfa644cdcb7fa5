using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;

namespace MoeRuntime.Cli.Bench;

/// <summary>How CUDA runs are timed: replays of a captured CUDA graph (launch overhead hidden, as in a model), or eager launches.</summary>
internal enum AllReduceTiming
{
    Graph,
    Eager,
}

/// <summary>One row of the AllReduce table (nccl-tests' columns).</summary>
internal sealed record AllReduceRow(string Algorithm, int Ranks, string DType, long Bytes, long Count, double TimeUs,
                                    double AlgorithmGBs, double BusGBs, long WrongElements, string Picked, string Timing);

/// <summary>
/// The AllReduce benchmark harness: for each algorithm and size, a checked run on verifiable data (small integers,
/// so the sum is exact and every wrong element counts), then the median time of many runs. On CUDA, by default,
/// <c>inner</c> calls are captured into one graph per rank (our kernels and NCCL are stream-ordered) and each sample
/// replays them, timed by events (per-call time = sample / inner); <see cref="AllReduceTiming.Eager"/> launches the
/// calls one by one instead. On CPU accelerators a stopwatch. Bus bandwidth = algbw * 2(N-1)/N (nccl-tests' factor).
/// </summary>
internal sealed class AllReduceBench(IReadOnlyList<Accelerator> ranks, DType dtype, int warmup, int samples, int inner, Action<string> log,
                                     AllReduceTiming mode = AllReduceTiming.Graph)
{
    public IEnumerable<AllReduceRow> Run(AllReduceAlgorithm algorithm, IReadOnlyList<long> sizes, Communicator communicator)
    {
        foreach (long bytes in sizes)
            yield return RunOne(algorithm, bytes, communicator);
    }

    private AllReduceRow RunOne(AllReduceAlgorithm algorithm, long bytes, Communicator communicator)
    {
        int n = ranks.Count;
        int elementSize = DTypes.SizeOf(dtype);
        long count = Math.Max(1, bytes / elementSize);
        var inputs = new List<MemoryBuffer>();
        var outputs = new List<MemoryBuffer>();
        try
        {
            for (int r = 0; r < n; r++)
            {
                inputs.Add(Upload(ranks[r], dtype, Verifiable(r, count)));
                outputs.Add(ranks[r].Allocate(dtype, count));
            }
            communicator.AllReduce(inputs, outputs, algorithm);
            // "TwoShot(ll)": the call ran on the low-latency transport.
            string picked = communicator.LastAllReduceAlgorithm + (communicator.LastAllReduceLowLatency ? "(ll)" : "");
            long wrong = CountWrong(outputs, count);
            var (ms, timing) = Time(communicator, algorithm, inputs, outputs);
            double seconds = ms / 1e3;
            double algbw = count * elementSize / seconds / 1e9;
            return new AllReduceRow(algorithm.ToString(), n, DTypes.Name(dtype), count * elementSize, count, ms * 1e3,
                algbw, algbw * 2.0 * (n - 1) / n, wrong, picked, timing);
        }
        finally
        {
            foreach (var b in inputs.Concat(outputs))
                b.Dispose();
        }
    }

    /// <summary>Median milliseconds of one AllReduce, and how it was timed.</summary>
    private (double Ms, string Timing) Time(Communicator communicator, AllReduceAlgorithm algorithm, List<MemoryBuffer> inputs, List<MemoryBuffer> outputs)
    {
        if (ranks[0] is not CudaAccelerator)
        {
            return (MultiRankTimer.HostMedian(() => communicator.AllReduce(inputs, outputs, algorithm), communicator.Synchronize, warmup, samples, inner), "stopwatch");
        }
        var streams = ranks.Select(a => (CudaStream)a.CreateStream()).ToList();
        try
        {
            return new MultiRankTimer(streams, m => log($"{algorithm}: {m}")).Median(
                () => communicator.AllReduce(inputs, outputs, algorithm, streams), communicator.Synchronize,
                graph: mode == AllReduceTiming.Graph, warmup, samples, inner);
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
        }
    }

    /// <summary>Rank r, element i: an integer in [-8, 8]; sums of up to 8 ranks are exact in every dtype.</summary>
    internal static float[] Verifiable(int rank, long count)
    {
        var data = new float[count];
        for (long i = 0; i < count; i++)
            data[i] = (float)((rank * 7919L + i * 131L) % 17 - 8);
        return data;
    }

    internal static MemoryBuffer Upload(Accelerator accelerator, DType dtype, float[] values) => dtype switch
    {
        DType.F32 => accelerator.Upload<float>(values),
        DType.BF16 => accelerator.Upload<BFloat16>(values.Select(v => (BFloat16)v).ToArray()),
        DType.F16 => accelerator.Upload<Half>(values.Select(v => (Half)v).ToArray()),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "f32, bf16 or f16"),
    };

    private long CountWrong(List<MemoryBuffer> outputs, long count)
    {
        var expected = new float[count];
        for (int r = 0; r < ranks.Count; r++)
        {
            var part = Verifiable(r, count);
            for (long i = 0; i < count; i++)
                expected[i] += part[i];
        }
        long wrong = 0;
        foreach (var output in outputs)
        {
            float[] actual = output switch
            {
                MemoryBuffer<float> f => f.ToArray(),
                MemoryBuffer<BFloat16> b => b.ToArray().Select(x => (float)x).ToArray(),
                MemoryBuffer<Half> h => h.ToArray().Select(x => (float)x).ToArray(),
                _ => throw new InvalidOperationException(output.Describe()),
            };
            for (long i = 0; i < count; i++)
                if (actual[i] != expected[i])
                    wrong++;
        }
        return wrong;
    }
}
