using MoeRuntime.Runtime.Distributed;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>The counts and offsets of the expert-parallel dispatch: the worked example, and invariants on random routings.</summary>
public class DispatchSizesTests
{
    [Fact]
    public void WorkedExample()
    {
        var sizes = DispatchSizes.From(new long[,] { { 1, 0, 2, 1 }, { 0, 3, 1, 0 } });
        Assert.Equal(2, sizes.ExpertsPerRank);
        Assert.Equal(new long[,] { { 1, 3 }, { 3, 1 } }, sizes.SendRows);
        Assert.Equal([1L, 3], sizes.SendCounts(0));
        Assert.Equal([1L, 3], sizes.ReceiveCounts(0));
        Assert.Equal([3L, 1], sizes.SendCounts(1));
        Assert.Equal([3L, 1], sizes.ReceiveCounts(1));
        Assert.Equal([0L, 1, 4], sizes.SendOffsets(0));
        Assert.Equal(4, sizes.ReceivedRows(0));
        Assert.Equal([0, 1, 1, 1], sizes.LocalExpertIds(0));
        Assert.Equal([0, 0, 1, 0], sizes.LocalExpertIds(1));
    }

    [Fact]
    public void OneRankKeepsEverything()
    {
        var sizes = DispatchSizes.From(new long[,] { { 2, 0, 1 } });
        Assert.Equal([3L], sizes.SendCounts(0));
        Assert.Equal([0, 0, 2], sizes.LocalExpertIds(0));
    }

    [Fact]
    public void RowsFromOffsetsAndStack()
    {
        Assert.Equal([2L, 0, 3], DispatchSizes.RowsFromOffsets([0, 2, 2, 5]));
        Assert.Contains("decrease at expert 1", Assert.Throws<ArgumentException>(() => DispatchSizes.RowsFromOffsets([0, 2, 1])).Message);
        Assert.Equal(new long[,] { { 1, 2 }, { 3, 4 }, { 5, 6 } }, DispatchSizes.Stack([1, 2, 3, 4, 5, 6], 3));
        Assert.Throws<ArgumentException>(() => DispatchSizes.Stack([1, 2, 3], 2));
    }

    [Fact]
    public void RejectsUnevenExpertsAndNegativeCounts()
    {
        Assert.Contains("do not split evenly", Assert.Throws<ArgumentException>(() => DispatchSizes.From(new long[3, 4])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => DispatchSizes.From(new long[,] { { 1, -1 } }));
        Assert.Throws<ArgumentOutOfRangeException>(() => DispatchSizes.From(new long[2, 2]).SendCounts(2));
    }

    [Theory]
    [InlineData(1, 4)]
    [InlineData(2, 8)]
    [InlineData(3, 3)]
    [InlineData(4, 16)]
    [InlineData(8, 256)]
    public void RandomRoutingsConserveRowsAndSortIds(int ranks, int experts)
    {
        var random = TestData.NewRandom(out int seed);
        var rows = new long[ranks, experts];
        for (int r = 0; r < ranks; r++)
            for (int g = 0; g < experts; g++)
                rows[r, g] = random.Next(4) == 0 ? 0 : random.Next(6); // experts with no rows included
        var sizes = DispatchSizes.From(rows);
        int eh = experts / ranks;
        long total = 0;
        for (int r = 0; r < ranks; r++)
            for (int g = 0; g < experts; g++)
                total += rows[r, g];
        Assert.Equal(total, Enumerable.Range(0, ranks).Sum(sizes.ReceivedRows));
        for (int r = 0; r < ranks; r++)
        {
            // What r sends = its rows; what d gets from r = r's rows for d's experts.
            Assert.Equal(Enumerable.Range(0, experts).Sum(g => rows[r, g]), sizes.SendCounts(r).Sum());
            Assert.Equal(sizes.SendCounts(r).Sum(), sizes.SendOffsets(r)[ranks]);
            for (int d = 0; d < ranks; d++)
            {
                Assert.Equal(Enumerable.Range(d * eh, eh).Sum(g => rows[r, g]), sizes.SendCounts(r)[d]);
                Assert.Equal(sizes.SendCounts(r)[d], sizes.ReceiveCounts(d)[r]);
            }
        }
        for (int d = 0; d < ranks; d++)
        {
            var ids = sizes.LocalExpertIds(d);
            Assert.Equal(sizes.ReceivedRows(d), ids.Length);
            Assert.All(ids, id => Assert.InRange(id, 0, eh - 1));
            // Within each source's segment the ids are sorted (that source's rows are in expert order).
            long at = 0;
            foreach (long count in sizes.ReceiveCounts(d))
            {
                var segment = ids.Skip((int)at).Take((int)count).ToArray();
                Assert.Equal(segment.Order(), segment);
                at += count;
            }
            for (int local = 0; local < eh; local++)
                Assert.Equal(Enumerable.Range(0, ranks).Sum(r => rows[r, d * eh + local]), ids.Count(i => i == local));
        }
        _ = seed;
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(1, 2)]
    [InlineData(7, 4)]
    [InlineData(33, 8)]
    public void TokenSharesCoverTheInputLikeTheInProcessLayer(int tokens, int ranks)
    {
        Assert.Equal(tokens, Enumerable.Range(0, ranks).Sum(r => DispatchSizes.TokenShare(tokens, ranks, r)));
        for (int r = 0; r <= ranks; r++)
            Assert.Equal(ExpertParallelMoe.TokenStart(tokens, ranks, r), DispatchSizes.TokenStart(tokens, ranks, r));
        Assert.InRange(Enumerable.Range(0, ranks).Max(r => DispatchSizes.TokenShare(tokens, ranks, r)) - Enumerable.Range(0, ranks).Min(r => DispatchSizes.TokenShare(tokens, ranks, r)), 0, 1);
    }
}
