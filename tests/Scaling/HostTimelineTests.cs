using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The host/device timeline of an EP forward, on hand-worked two-rank cases.</summary>
public sealed class HostTimelineTests
{
    // Two ranks, both with tokens and rows: route 10 us on the device and 30 us to enqueue; experts 100 us and 40 us;
    // output 10 us and 3 us; all-to-alls 20 us each, 5 us of host per rank to issue; no timer marks.
    private static readonly RankWork[] TwoRanks =
    [
        new(true, true, RouteUs: 10, ExpertsUs: 100, OutputUs: 10, RouteHostUs: 30, ExpertsHostUs: 40, OutputHostUs: 3),
        new(true, true, RouteUs: 10, ExpertsUs: 100, OutputUs: 10, RouteHostUs: 30, ExpertsHostUs: 40, OutputHostUs: 3),
    ];

    [Fact]
    public void OneThreadStartsRankOneAfterRankZeroIsEnqueuedAndRankZerosCombineWaitsForIt()
    {
        var (critical, timed) = HostTimeline.Run(TwoRanks, 20, 20, 5, 0, HostThreads.OneForAllRanks);
        // route: rank 0 enqueues 0..30 (device 10: the host is the floor), rank 1 30..60; the host waits until 60.
        // dispatch: launches issued at 65 and 70, done at 90. experts: rank 0 90..190; rank 1 is enqueued from 110 on
        // (after rank 0's 40 us), 110..210. combine: each rank's share is issued once its stream is idle (the op table
        // upload synchronises it): rank 0's at 190 + 5, rank 1's at 210 + 5, done at 235, so rank 0's combine reads
        // 235 - 190 = 45 (20 us waiting for rank 1's late start, 5 us issuing after it, the transfer). output 235..245.
        Assert.Equal(new PhaseTimes(60, 30, 120, 25, 10), critical);
        Assert.Equal(new PhaseTimes(30, 30, 100, 45, 10), timed);
        Assert.Equal(245, critical.SumUs);
    }

    [Fact]
    public void OneThreadPerRankHasNoCrossRankOffsetButKeepsTheLaunchFloor()
    {
        var (critical, timed) = HostTimeline.Run(TwoRanks, 20, 20, 5, 0, HostThreads.OnePerRank);
        // route: both 0..30 (host floor); dispatch launched at 35, done at 55; experts 55..155 on both; the combine is
        // issued once each stream is idle, 155 + 5, done at 180; output 180..190.
        Assert.Equal(new PhaseTimes(30, 25, 100, 25, 10), critical);
        Assert.Equal(new PhaseTimes(30, 25, 100, 25, 10), timed);
    }

    [Fact]
    public void WithoutHostCostsItIsTheDeviceOnlyModel()
    {
        RankWork[] ranks =
        [
            new(true, true, RouteUs: 12, ExpertsUs: 300, OutputUs: 9),
            new(true, true, RouteUs: 15, ExpertsUs: 120, OutputUs: 11),
            new(false, false, RouteUs: 0, ExpertsUs: 0, OutputUs: 0),
        ];
        foreach (var threads in new[] { HostThreads.OneForAllRanks, HostThreads.OnePerRank })
        {
            var (critical, timed) = HostTimeline.Run(ranks, 40, 70, 0, 0, threads);
            // Each phase its slowest rank; the timer's combine adds the wait of the rank that ends its experts first (the
            // rank without rows counts 0: it waits the whole 300 us).
            Assert.Equal(new PhaseTimes(15, 40, 300, 70, 11), critical);
            Assert.Equal(new PhaseTimes(15, 40, 300, 70 + 300, 11), timed);
        }
    }

    [Fact]
    public void TimerMarksCostHostTimeInsideThePhasesTheyBound()
    {
        RankWork[] one = [new(true, true, RouteUs: 1, ExpertsUs: 1, OutputUs: 1, RouteHostUs: 10, ExpertsHostUs: 10, OutputHostUs: 10)];
        var (critical, timed) = HostTimeline.Run(one, 0, 0, 0, 2, HostThreads.OneForAllRanks);
        // route: begin mark 0..2, launches to 12 (the phase ends there), end mark to 14: the host wait ends at 14.
        // One GPU: no all-to-all; experts begin after the next begin mark at 16, end at 26, end mark 28; output 30..40.
        // (The critical combine is the 2 us end mark the host spends before the output phase can begin.)
        Assert.Equal(new PhaseTimes(10, 0, 10, 0, 10), timed);
        Assert.Equal(14, critical.RouteUs);
        Assert.Equal(40, critical.SumUs);
    }

    [Fact]
    public void AnAllToAllIsIssuedRankByRankOnlyOnceThatRanksStreamIsIdle()
    {
        // Experts 100 us on both devices and 30 us to enqueue, 20 us of host per rank to issue an all-to-all, transfers
        // 0 (dispatch) and 5 (combine), no route costs. experts: rank 0 40..140 (host 40..70), rank 1 70..170 (host 70..100).
        // combine: rank 0's share waits for its stream (140) then 20 us, rank 1's for 170 then 20: launched at 190, done at 195.
        // Rank 0 reads 195 - 140 = 55: the 30 us lag of rank 1, the 20 us issued after it, the 5 us transfer. Issuing
        // without the wait (the host free to go on) would read 35.
        RankWork[] ranks = [new(true, true, 0, 100, 0, ExpertsHostUs: 30), new(true, true, 0, 100, 0, ExpertsHostUs: 30)];
        var (critical, timed) = HostTimeline.Run(ranks, 0, 5, 20, 0, HostThreads.OneForAllRanks);
        Assert.Equal(55, timed.CombineUs, 1e-9);
        Assert.Equal(25, critical.CombineUs, 1e-9);
        Assert.Equal(40, critical.DispatchUs, 1e-9); // idle streams: 20 + 20 of issuing, no transfer
    }

    // TwoRanks with the experts' 40 us of host time in four 10 us steps (permute, gate_up, down, un-permute).
    private static readonly RankWork[] TwoRanksInSteps = TwoRanks.Select(w => w with { ExpertsHostStepsUs = [10, 10, 10, 10] }).ToArray();

    [Fact]
    public void RankedStepsAreTheWholePhaseRankAfterRank()
    {
        // Rank after rank, four steps of 10 are one phase of 40: the first test's figures, rank 1's experts 20 us late.
        var timeline = HostTimeline.Run(TwoRanksInSteps, 20, 20, 5, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Ranked);
        Assert.Equal(new PhaseTimes(60, 30, 120, 25, 10), timeline.Critical);
        Assert.Equal(new PhaseTimes(30, 30, 100, 45, 10), timeline.Timed);
        Assert.Equal([90, 110], timeline.ExpertsBeginUs);
        Assert.Equal([190, 210], timeline.ExpertsEndUs);
    }

    [Fact]
    public void InterleavedStepsStartTheRanksTogetherAndTheCombineWaitsForNoOne()
    {
        var timeline = HostTimeline.Run(TwoRanksInSteps, 20, 20, 5, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Interleaved);
        // Route and dispatch as before: devices idle at 90, host at 70. Experts, step by step: rank 0's permute issued
        // 70..80, rank 1's 80..90: both begin at 90 (the dispatch's end); the host issues the rest by 150, both end at
        // 190. Combine: rank 0's share once its stream is idle, 190 + 5, rank 1's 195 + 5: done at 220, read as 30 on
        // both (no wait for a late rank; 5 us issuing after it). Output: the host, free at 200, has issued both ranks'
        // 3 us by 206: both 220..230.
        Assert.Equal([90, 90], timeline.ExpertsBeginUs);
        Assert.Equal([190, 190], timeline.ExpertsEndUs);
        Assert.Equal(new PhaseTimes(60, 30, 100, 30, 10), timeline.Critical);
        Assert.Equal(new PhaseTimes(30, 30, 100, 30, 10), timeline.Timed);
        Assert.Equal(230, timeline.Critical.SumUs); // 15 us less than ranked (245)
    }

    [Fact]
    public void InterleavedHostBoundStepsEndTheLastRankWhenRankedDoesButStretchRankZero()
    {
        // Experts of 5 us on the device, 40 us to enqueue: the host sets every end. Ranked: rank 0 90..110, rank 1 110..150.
        // Interleaved: both begin at 90; rank 0's last step is issued at 140, rank 1's at 150.
        var hostBound = TwoRanksInSteps.Select(w => w with { ExpertsUs = 5 }).ToArray();
        var ranked = HostTimeline.Run(hostBound, 20, 20, 5, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Ranked);
        var interleaved = HostTimeline.Run(hostBound, 20, 20, 5, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Interleaved);
        Assert.Equal([110, 150], ranked.ExpertsEndUs);
        Assert.Equal([140, 150], interleaved.ExpertsEndUs);
        Assert.Equal(40, ranked.Timed.ExpertsUs);       // rank 1: 110..150
        Assert.Equal(60, interleaved.Timed.ExpertsUs);  // rank 1: 90..150
        Assert.Equal(ranked.Critical.SumUs, interleaved.Critical.SumUs);
    }

    [Fact]
    public void OneThreadPerRankIsTheSameInEitherOrder()
    {
        var ranked = HostTimeline.Run(TwoRanksInSteps, 20, 20, 5, 0, HostThreads.OnePerRank, EpEnqueueOrder.Ranked);
        var interleaved = HostTimeline.Run(TwoRanksInSteps, 20, 20, 5, 0, HostThreads.OnePerRank, EpEnqueueOrder.Interleaved);
        Assert.Equal(ranked.Critical, interleaved.Critical);
        Assert.Equal(ranked.Timed, interleaved.Timed);
        Assert.Equal(new PhaseTimes(30, 25, 100, 25, 10), interleaved.Critical); // the per-rank test's figures
    }

    [Fact]
    public void ARankWithoutRowsHasNoExpertsMarksAndTheOthersStillInterleave()
    {
        RankWork[] ranks =
        [
            new(true, false, RouteUs: 10, ExpertsUs: 0, OutputUs: 10),
            new(true, true, RouteUs: 10, ExpertsUs: 100, OutputUs: 10, ExpertsHostStepsUs: [10, 10, 10, 10]),
            new(true, true, RouteUs: 10, ExpertsUs: 100, OutputUs: 10, ExpertsHostStepsUs: [10, 10, 10, 10]),
        ];
        var timeline = HostTimeline.Run(ranks, 20, 20, 0, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Interleaved);
        // Route 0..10 on every device, host free at 0 (no host costs): the dispatch ends at 30. Experts: rank 1's permute
        // issued 10..20, rank 2's 20..30: both begin at 30 (the host is ahead of the devices), end at 130.
        Assert.True(double.IsNaN(timeline.ExpertsBeginUs[0]));
        Assert.Equal([30, 30], timeline.ExpertsBeginUs[1..]);
        Assert.Equal([130, 130], timeline.ExpertsEndUs[1..]);
    }
}
