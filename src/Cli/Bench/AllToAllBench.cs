using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.Nccl;

namespace MoeRuntime.Cli.Bench;

/// <summary>One row of <c>moe bench alltoall</c>: bytes each rank sends (in all, and to other ranks) and the time of one all-to-allv.</summary>
internal sealed record AllToAllRow(string Algorithm, int Ranks, string DType, long BytesPerRank, long PeerBytesPerRank, double TimeUs,
                                   double PeerGBs, long WrongElements, string Timing);

/// <summary>
/// The all-to-allv benchmark: dispatch-like traffic, every rank sending S/N bytes to every rank (itself included), as
/// uniformly routed tokens do. For each size: one checked run on verifiable data (small integers per (source,
/// destination, element), exact in every dtype), then the median over samples of <c>inner</c> back-to-back calls,
/// timed on the host between full synchronisations (all-to-allv takes host-side counts, so it is not graph-captured).
/// Peer bandwidth = bytes sent to other ranks / time, per rank: what the scale model's link fit uses.
/// </summary>
internal sealed class AllToAllBench(IReadOnlyList<Accelerator> ranks, DType dtype, int warmup, int samples, int inner)
{
    public const string Ours = "ours";
    public const string Nccl = "nccl";

    public IEnumerable<AllToAllRow> Run(string algorithm, IReadOnlyList<long> sizes, Communicator communicator, NcclGroup? nccl)
    {
        foreach (long bytes in sizes)
            yield return RunOne(algorithm, bytes, communicator, nccl);
    }

    private AllToAllRow RunOne(string algorithm, long bytes, Communicator communicator, NcclGroup? nccl)
    {
        int n = ranks.Count, width = DTypes.SizeOf(dtype);
        long perPeer = Math.Max(1, bytes / width / n);
        var counts = new long[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                counts[i, j] = perPeer;
        var send = new List<MemoryBuffer>();
        var receive = new List<MemoryBuffer>();
        var streams = new List<AcceleratorStream>();
        try
        {
            for (int r = 0; r < n; r++)
            {
                var values = new float[perPeer * n];
                for (int j = 0; j < n; j++)
                    for (long x = 0; x < perPeer; x++)
                        values[j * perPeer + x] = Value(r, j, x);
                send.Add(DeviceUpload(ranks[r], values));
                receive.Add(ranks[r].Allocate(dtype, perPeer * n));
                if (algorithm == Nccl)
                    streams.Add(ranks[r].CreateStream());
            }
            void Call()
            {
                if (algorithm == Nccl)
                    nccl!.AllToAllV(send, counts, receive, streams);
                else
                    communicator.AllToAllV(send, counts, receive);
            }
            void Wait()
            {
                foreach (var s in streams)
                    s.Synchronize();
                foreach (var a in ranks)
                    a.Synchronize();
            }
            Call();
            Wait();
            long wrong = CountWrong(receive, perPeer);
            for (int i = 0; i < warmup; i++)
                Call();
            Wait();
            var times = new double[samples];
            for (int s = 0; s < samples; s++)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < inner; i++)
                    Call();
                Wait();
                times[s] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds / inner;
            }
            Array.Sort(times);
            double us = times[samples / 2];
            long sent = perPeer * n * width, peer = perPeer * (n - 1) * width;
            return new AllToAllRow(algorithm, n, DTypes.Name(dtype), sent, peer, us, us > 0 ? peer / (us * 1e-6) / 1e9 : 0, wrong, "host clock, synchronised");
        }
        finally
        {
            foreach (var b in send.Concat(receive))
                b.Dispose();
            foreach (var s in streams)
                s.Dispose();
        }
    }

    /// <summary>Element x of the segment rank <paramref name="source"/> sends to <paramref name="destination"/>: an integer in [-30, 30].</summary>
    internal static float Value(int source, int destination, long x) => (float)((source * 31L + destination * 7L + x) % 61 - 30);

    private MemoryBuffer DeviceUpload(Accelerator accelerator, float[] values) => dtype switch
    {
        DType.F32 => accelerator.Upload<float>(values),
        DType.BF16 => accelerator.Upload<BFloat16>(values.Select(v => (BFloat16)v).ToArray()),
        DType.F16 => accelerator.Upload<Half>(values.Select(v => (Half)v).ToArray()),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "f32, bf16 or f16"),
    };

    private long CountWrong(List<MemoryBuffer> receive, long perPeer)
    {
        long wrong = 0;
        for (int d = 0; d < receive.Count; d++)
        {
            float[] actual = receive[d] switch
            {
                MemoryBuffer<float> f => f.ToArray(),
                MemoryBuffer<BFloat16> b => b.ToArray().Select(x => (float)x).ToArray(),
                MemoryBuffer<Half> h => h.ToArray().Select(x => (float)x).ToArray(),
                _ => throw new InvalidOperationException(receive[d].Describe()),
            };
            for (int source = 0; source < receive.Count; source++)
                for (long x = 0; x < perPeer; x++)
                    if (actual[source * perPeer + x] != Value(source, d, x))
                        wrong++;
        }
        return wrong;
    }
}
