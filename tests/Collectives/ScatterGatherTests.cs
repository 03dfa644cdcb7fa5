using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>ReduceScatter, AllGather and all-to-allv alone, exact, on CPU groups (and CUDA groups when present).</summary>
public class ScatterGatherTests
{
    public static TheoryData<string, int, DType, string> Cases()
    {
        var data = new TheoryData<string, int, DType, string>();
        foreach (var kind in new[] { "cpu", "cuda" })
            foreach (int ranks in RankCounts)
                foreach (var dtype in AllDTypes)
                    foreach (var size in new[] { "0", "1", "7", "N-1", "100003" })
                        if (!(kind == "cuda" && ranks == 3))
                            data.Add(kind, ranks, dtype, size);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ReduceScatterGivesEachRankItsChunkOfTheSum(string kind, int ranks, DType dtype, string sizeName)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        long count = Size(sizeName, ranks);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, count)).ToArray();
        using var communicator = Communicator.Create(group, Options());
        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
        // Chunk r: [count*r/N, count*(r+1)/N), worked out here independently of the library.
        var output = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count * (r + 1) / ranks - count * r / ranks)).ToList();
        try
        {
            communicator.ReduceScatter(input, output);
            for (int r = 0; r < ranks; r++)
            {
                long start = count * r / ranks;
                var expected = new float[output[r].Length];
                for (long i = 0; i < expected.Length; i++)
                    for (int p = 0; p < ranks; p++)
                        expected[i] += inputs[p][start + i];
                Compare.Exact<float>(expected, Download(output[r]), $"ReduceScatter {DTypes.Name(dtype)} x{count} rank {r} of {ranks} (seed {seed})");
            }
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void AllGatherConcatenatesInRankOrder(string kind, int ranks, DType dtype, string sizeName)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        long perRank = Size(sizeName, ranks);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, perRank)).ToArray();
        var expected = inputs.SelectMany(x => x).ToArray();
        using var communicator = Communicator.Create(group, Options());
        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
        var output = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, perRank * ranks)).ToList();
        try
        {
            communicator.AllGather(input, output);
            for (int r = 0; r < ranks; r++)
                Compare.Exact<float>(expected, Download(output[r]), $"AllGather {DTypes.Name(dtype)} {perRank} per rank, rank {r} of {ranks} (seed {seed})");
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    public static TheoryData<string, int, DType> AllToAllCases()
    {
        var data = new TheoryData<string, int, DType>();
        foreach (var kind in new[] { "cpu", "cuda" })
            foreach (int ranks in RankCounts)
                foreach (var dtype in AllDTypes)
                    if (!(kind == "cuda" && ranks == 3))
                        data.Add(kind, ranks, dtype);
        return data;
    }

    /// <summary>Uneven counts with zeros (a rank that sends nothing to anyone, pairs that exchange nothing), rows of 5 elements.</summary>
    [Theory, MemberData(nameof(AllToAllCases))]
    public void AllToAllVMovesEverySegment(string kind, int ranks, DType dtype)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var random = TestData.NewRandom(out int seed);
        const int hidden = 5;
        var counts = new long[ranks, ranks];
        for (int i = 0; i < ranks; i++)
            for (int j = 0; j < ranks; j++)
                counts[i, j] = i == 1 || random.Next(4) == 0 ? 0 : random.Next(1, 40) * hidden;
        counts[0, ranks - 1] = 3 * hidden;
        var sends = Enumerable.Range(0, ranks).Select(i => Verifiable(seed, i, Enumerable.Range(0, ranks).Sum(j => counts[i, j]) + 3)).ToArray();
        using var communicator = Communicator.Create(group, Options());
        var send = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, sends[r])).ToList();
        var receiveLengths = Enumerable.Range(0, ranks).Select(j => Enumerable.Range(0, ranks).Sum(i => counts[i, j])).ToArray();
        var receive = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, receiveLengths[r] + 2)).ToList();
        try
        {
            communicator.AllToAllV(send, counts, receive);
            for (int j = 0; j < ranks; j++)
            {
                // Rank j's receive buffer: rank 0's segment for j, rank 1's, ...; the two spare elements stay poisoned.
                var expected = new List<float>();
                for (int i = 0; i < ranks; i++)
                {
                    long offset = 0;
                    for (int k = 0; k < j; k++)
                        offset += counts[i, k];
                    expected.AddRange(sends[i].Skip((int)offset).Take((int)counts[i, j]));
                }
                var actual = Download(receive[j]);
                Compare.Exact<float>(expected.ToArray(), actual.AsSpan(0, expected.Count), $"all-to-allv {DTypes.Name(dtype)} rank {j} of {ranks} (seed {seed})");
                Assert.True(float.IsNaN(actual[^1]) && float.IsNaN(actual[^2]), "elements past the received segments were written");
            }
        }
        finally
        {
            DisposeAll(send.Concat(receive));
        }
    }
}
