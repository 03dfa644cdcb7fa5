using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// AllReduce by every algorithm of ours, on 2, 3 and 4 CPU accelerators (and CUDA groups when present), every
/// dtype and awkward size, in place and out of place: exact answers from verifiable data, zero wrong elements.
/// </summary>
public class AllReduceTests
{
    public static readonly AllReduceAlgorithm[] OurAlgorithms = [AllReduceAlgorithm.Ring, AllReduceAlgorithm.TwoShot, AllReduceAlgorithm.OneShot];

    public static TheoryData<string, int, AllReduceAlgorithm, DType, string, bool> Cases()
    {
        var data = new TheoryData<string, int, AllReduceAlgorithm, DType, string, bool>();
        foreach (var kind in new[] { "cpu", "cuda" })
            foreach (int ranks in RankCounts)
            {
                if (kind == "cuda" && ranks == 3)
                    continue; // GPU machines come with 2, 4 or 8
                foreach (var algorithm in OurAlgorithms)
                    foreach (var dtype in AllDTypes)
                        foreach (var size in AwkwardSizes)
                            foreach (bool inPlace in new[] { false, true })
                                data.Add(kind, ranks, algorithm, dtype, size, inPlace);
            }
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void SumsExactly(string kind, int ranks, AllReduceAlgorithm algorithm, DType dtype, string sizeName, bool inPlace)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        long count = Size(sizeName, ranks);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, count)).ToArray();
        var expected = new float[count];
        for (long i = 0; i < count; i++)
            for (int r = 0; r < ranks; r++)
                expected[i] += inputs[r][i];

        using var communicator = Communicator.Create(group, Options());
        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
        var output = inPlace ? input : Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
        try
        {
            communicator.AllReduce(input, output, algorithm);
            Assert.Equal(algorithm, communicator.LastAllReduceAlgorithm);
            for (int r = 0; r < ranks; r++)
                Compare.Exact<float>(expected, Download(output[r]), $"{algorithm} {DTypes.Name(dtype)} x{count} on rank {r} of {ranks} (seed {seed}, in place {inPlace})");
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    public static TheoryData<string, int, AllReduceAlgorithm, DType> BitIdentityCases()
    {
        var data = new TheoryData<string, int, AllReduceAlgorithm, DType>();
        foreach (var kind in new[] { "cpu", "cuda" })
            foreach (int ranks in new[] { 2, 4 })
                foreach (var algorithm in OurAlgorithms)
                    foreach (var dtype in AllDTypes)
                        data.Add(kind, ranks, algorithm, dtype);
        return data;
    }

    /// <summary>
    /// Random non-integer data: every rank's result has the same bits, run after run; one-shot and two-shot equal the
    /// host's F32 sum in rank order rounded once to the dtype; the ring (its own fixed order per chunk) is close to it.
    /// </summary>
    [Theory, MemberData(nameof(BitIdentityCases))]
    public void EveryRankGetsTheSameBits(string kind, int ranks, AllReduceAlgorithm algorithm, DType dtype)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        const int count = 4099;
        var random = TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(_ => Uniform(dtype, random, count)).ToArray();
        var rankOrderSum = new float[count];
        for (int i = 0; i < count; i++)
        {
            float sum = inputs[0][i];
            for (int r = 1; r < ranks; r++)
                sum += inputs[r][i];
            rankOrderSum[i] = Round(dtype, sum);
        }
        using var communicator = Communicator.Create(group, Options());
        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
        var output = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
        try
        {
            communicator.AllReduce(input, output, algorithm);
            var first = Bits(output[0]);
            for (int r = 1; r < ranks; r++)
                Assert.True(first.AsSpan().SequenceEqual(Bits(output[r])), $"rank {r} differs from rank 0 (seed {seed})");
            communicator.AllReduce(input, output, algorithm);
            Assert.True(first.AsSpan().SequenceEqual(Bits(output[0])), $"a second run differs (seed {seed})");
            var actual = Download(output[0]);
            if (algorithm == AllReduceAlgorithm.Ring)
                Compare.Close(rankOrderSum, actual, Compare.ToleranceFor(dtype), $"ring {DTypes.Name(dtype)} (seed {seed})");
            else
                Compare.Exact<float>(rankOrderSum, actual, $"{algorithm} {DTypes.Name(dtype)} against the rank-order F32 sum (seed {seed})");
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    /// <summary>
    /// CUDA graphs: three calls (one-shot, two-shot, ring) captured on each rank's stream, replayed three times with
    /// fresh input data in between. Barrier epochs advance in device memory and peers' addresses travel with the
    /// flags, so every replay sums the current inputs exactly, with nothing from the host per call.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void GraphReplaysSumTheCurrentInputs(int ranks)
    {
        var group = TestDevices.GetGroup("cuda", ranks);
        using var communicator = Communicator.Create(group, Options());
        TestData.NewRandom(out int seed);
        const long count = 300_001;
        var inputs = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.BF16, Verifiable(seed, r, count))).ToList();
        var outputs = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], DType.BF16, count)).ToList();
        var streams = group.Select(a => (CudaStream)a.CreateStream()).ToList();
        var graphs = new List<CudaGraph>();
        try
        {
            // Warm-up outside the capture: kernels loaded, grids sized (one-shot takes the LL kernel on CUDA, ring the schedule's).
            communicator.AllReduce(inputs, outputs, AllReduceAlgorithm.OneShot, streams);
            communicator.AllReduce(inputs, outputs, AllReduceAlgorithm.Ring, streams);
            communicator.Synchronize();
            foreach (var stream in streams)
                stream.BeginCapture();
            foreach (var algorithm in new[] { AllReduceAlgorithm.OneShot, AllReduceAlgorithm.TwoShot, AllReduceAlgorithm.Ring })
                communicator.AllReduce(inputs, outputs, algorithm, streams);
            foreach (var stream in streams)
                graphs.Add(stream.EndCapture());
            for (int replay = 0; replay < 3; replay++)
            {
                var data = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + 1 + replay, r, count)).ToArray();
                for (int r = 0; r < ranks; r++)
                {
                    using var fresh = Upload(group[r], DType.BF16, data[r]);
                    inputs[r].CopyFrom(fresh);
                    // The copy ran on the default stream; the graphs run on others. Not the whole context: another test
                    // may be capturing a graph on this device, and a context synchronize would break its capture.
                    group[r].DefaultStream.Synchronize();
                }
                var expected = new float[count];
                for (long i = 0; i < count; i++)
                    for (int r = 0; r < ranks; r++)
                        expected[i] += data[r][i];
                for (int r = 0; r < ranks; r++)
                    graphs[r].Launch(streams[r]);
                communicator.Synchronize();
                foreach (var stream in streams)
                    stream.Synchronize();
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected, Download(outputs[r]), $"replay {replay} rank {r} of {ranks} (seed {seed})");
            }
        }
        finally
        {
            graphs.ForEach(g => g.Dispose());
            streams.ForEach(s => s.Dispose());
            DisposeAll(inputs.Concat(outputs));
        }
    }

    /// <summary>Calls back to back, algorithms mixed, in place: flags and epochs carry over without a reset.</summary>
    [Theory]
    [InlineData("cpu", 3)]
    [InlineData("cuda", 2)]
    [InlineData("cuda", 4)]
    public void ManyCallsInARow(string kind, int ranks)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        using var communicator = Communicator.Create(group, Options());
        TestData.NewRandom(out int seed);
        var sequence = new[] { AllReduceAlgorithm.OneShot, AllReduceAlgorithm.Ring, AllReduceAlgorithm.TwoShot, AllReduceAlgorithm.OneShot, AllReduceAlgorithm.TwoShot, AllReduceAlgorithm.Ring };
        var counts = new long[] { 5000, 3, 70001, 1, 999, 4096 };
        for (int call = 0; call < sequence.Length; call++)
        {
            long count = counts[call];
            var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + call, r, count)).ToArray();
            var expected = new float[count];
            for (long i = 0; i < count; i++)
                for (int r = 0; r < ranks; r++)
                    expected[i] += inputs[r][i];
            var buffers = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.BF16, inputs[r])).ToList();
            try
            {
                communicator.AllReduce(buffers, buffers, sequence[call]);
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected, Download(buffers[r]), $"call {call} ({sequence[call]}, x{count}) rank {r} (seed {seed})");
            }
            finally
            {
                DisposeAll(buffers);
            }
        }
    }

    [Theory]
    [InlineData(2, 1024, AllReduceAlgorithm.OneShot)]              // 2 ranks: one-shot (LL) below 1 MB
    [InlineData(2, (1L << 20) - 16, AllReduceAlgorithm.OneShot)]
    [InlineData(2, 1L << 20, AllReduceAlgorithm.OneShot)]          // one-shot LL at 1 MB too (11.5 us against 12.7)
    [InlineData(2, (1L << 20) + 16, AllReduceAlgorithm.TwoShot)]   // two-shot (the schedule path) above 1 MB
    [InlineData(2, 256L << 20, AllReduceAlgorithm.TwoShot)]
    [InlineData(1, 1024, AllReduceAlgorithm.OneShot)]
    [InlineData(16, 1L << 20, AllReduceAlgorithm.TwoShot)]
    [InlineData(4, 256L << 10, AllReduceAlgorithm.OneShot)]
    [InlineData(4, 512L << 10, AllReduceAlgorithm.TwoShot)]
    [InlineData(8, 128L << 10, AllReduceAlgorithm.OneShot)]
    [InlineData(8, 256L << 10, AllReduceAlgorithm.TwoShot)]
    [InlineData(3, 100, AllReduceAlgorithm.OneShot)]
    [InlineData(3, 512L << 10, AllReduceAlgorithm.TwoShot)]
    public void AutoFollowsTheTableWithoutNccl(int ranks, long bytes, AllReduceAlgorithm expected) =>
        Assert.Equal(expected, AllReduceSelector.Choose(ranks, bytes, ncclAvailable: false));

    [Fact]
    public void AutoPicksNcclForLargeTensorsWhenPresent()
    {
        Assert.Equal(AllReduceAlgorithm.Nccl, AllReduceSelector.Choose(4, AllReduceSelector.NcclFromBytesFor(4), ncclAvailable: true));
        Assert.Equal(AllReduceAlgorithm.TwoShot, AllReduceSelector.Choose(4, AllReduceSelector.NcclFromBytesFor(4) - 16, ncclAvailable: true));
        Assert.Equal(AllReduceAlgorithm.OneShot, AllReduceSelector.Choose(4, 1024, ncclAvailable: true));
        // 2 ranks (measured): one-shot LL beats NCCL up to 1 MB and two-shot from there to 256 MB: NCCL never, even when present.
        Assert.Equal(AllReduceAlgorithm.OneShot, AllReduceSelector.Choose(2, 1024, ncclAvailable: true));
        Assert.Equal(AllReduceAlgorithm.OneShot, AllReduceSelector.Choose(2, 512L << 10, ncclAvailable: true));
        Assert.Equal(AllReduceAlgorithm.TwoShot, AllReduceSelector.Choose(2, 2L << 20, ncclAvailable: true));
        Assert.Equal(AllReduceAlgorithm.TwoShot, AllReduceSelector.Choose(2, 256L << 20, ncclAvailable: true));
        Assert.Equal(long.MaxValue, AllReduceSelector.NcclFromBytesFor(2));
    }

    [Fact]
    public void TheCrossoverTableCanBeReplacedByMeasurements()
    {
        AllReduceCrossover[] measured = [new(Ranks: 2, OneShotBelowBytes: 4096, NcclFromBytes: 1L << 20), new(Ranks: 4, OneShotBelowBytes: 8192, NcclFromBytes: 2L << 20)];
        Assert.Equal(AllReduceAlgorithm.OneShot, AllReduceSelector.Choose(2, 2048, true, measured));
        Assert.Equal(AllReduceAlgorithm.TwoShot, AllReduceSelector.Choose(2, 4096, true, measured));
        Assert.Equal(AllReduceAlgorithm.Nccl, AllReduceSelector.Choose(2, 1L << 20, true, measured));
        Assert.Equal(AllReduceAlgorithm.TwoShot, AllReduceSelector.Choose(2, 1L << 20, false, measured));
        Assert.Equal(AllReduceAlgorithm.OneShot, AllReduceSelector.Choose(3, 4096, true, measured));   // the 4-rank row
        Assert.Equal(AllReduceAlgorithm.TwoShot, AllReduceSelector.Choose(8, 1L << 20, true, measured)); // beyond: the last row
        Assert.Throws<ArgumentException>(() => AllReduceSelector.Choose(2, 1, true, []));
    }

    [Fact]
    public void AutoSaysWhatItPicked()
    {
        var group = TestDevices.GetGroup("cpu", 4);
        using var communicator = Communicator.Create(group, Options());
        var big = group.Select(a => (MemoryBuffer)a.Allocate<float>(200_000)).ToList(); // 800 KB: two-shot on 4 ranks
        try
        {
            foreach (var b in big)
                ((MemoryBuffer<float>)b).Fill(1f);
            communicator.AllReduce(big, big);
            Assert.Equal(AllReduceAlgorithm.TwoShot, communicator.LastAllReduceAlgorithm);
            Assert.All(Download(big[2]), v => Assert.Equal(4f, v));
        }
        finally
        {
            DisposeAll(big);
        }
    }

    private static float[] Uniform(DType dtype, Random random, int count)
    {
        var values = TestData.Uniform(random, count);
        for (int i = 0; i < count; i++)
            values[i] = Round(dtype, values[i]);
        return values;
    }

    private static float Round(DType dtype, float value) => dtype switch
    {
        DType.BF16 => (BFloat16)value,
        DType.F16 => (float)(Half)value,
        _ => value,
    };
}
