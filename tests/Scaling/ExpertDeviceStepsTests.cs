using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The experts phase's device time in its host's steps: the split, and each step's kernels waiting for their launch.</summary>
public sealed class ExpertDeviceStepsTests
{
    [Fact]
    public void TheGemmPairIsSharedTwoThirdsToGateUpAndTheLaunchHalfEach()
    {
        // 20 us launch, 1000 GB/s, 100 TFLOP/s: 3 GB stream in 3000 us (the flops, 1e11, would take 1000 us).
        var gemm = new GemmParams(20, 1000, 100);
        var steps = ExpertDeviceSteps.Us(gemm, 3e9, 1e11, permuteUs: 4, unpermuteUs: 6);
        Assert.Equal([4, 10 + 2000, 10 + 1000, 6], steps);
        Assert.Equal(gemm.Us(3e9, 1e11) + 4 + 6, steps.Sum(), 1e-9);
    }

    [Fact]
    public void EachStepsKernelsStartOnlyOnceTheHostHasIssuedThem()
    {
        // One rank, nothing but its experts: 10 us of host per step, device steps 5, 50, 30, 5 (90 in all). Permute issued at
        // 10, runs 10..15; gate_up issued at 20, runs 20..70; down issued at 30, runs 70..100; un-permute issued at 40, runs
        // 100..105. As one phase (no device steps) it would end at max(0 + 90, 40) = 90.
        var stepped = new RankWork(true, true, 0, 90, 0, ExpertsHostStepsUs: [10, 10, 10, 10], ExpertsDeviceStepsUs: [5, 50, 30, 5]);
        var timeline = HostTimeline.Run([stepped], 0, 0, 0, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Ranked);
        Assert.Equal([0], timeline.ExpertsBeginUs);
        Assert.Equal([105], timeline.ExpertsEndUs);
        Assert.Equal(105, timeline.Timed.ExpertsUs);
        var whole = HostTimeline.Run([stepped with { ExpertsDeviceStepsUs = null }], 0, 0, 0, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Ranked);
        Assert.Equal([90], whole.ExpertsEndUs);
    }

    [Fact]
    public void WithoutHostTimeTheStepsAreTheWholePhase()
    {
        var free = new RankWork(true, true, 0, 90, 0, ExpertsHostStepsUs: [0, 0, 0, 0], ExpertsDeviceStepsUs: [5, 50, 30, 5]);
        Assert.Equal([90], HostTimeline.Run([free], 0, 0, 0, 0, HostThreads.OneForAllRanks, EpEnqueueOrder.Ranked).ExpertsEndUs);
    }
}
