using MoeRuntime.Runtime.Eplb;

namespace MoeRuntime.Tests.Eplb;

public class OnlineEplbTests
{
    [Fact]
    public void TheSlotTableSwitchesOnlyAtAForwardBoundaryAfterTheCopies()
    {
        var initial = Placement.Contiguous(4, 2);   // [[0, 1], [2, 3]]
        var online = new OnlineEplb(initial, rebalanceEvery: 3);
        long[] skewed = { 90, 10, 5, 5 };           // none: 100 / 10; a plan pairs 0 with a light expert
        MigrationPlan? plan = null;
        for (int forward = 0; forward < 3; forward++)
        {
            Assert.Same(initial, online.BeginForward());
            plan = online.EndForward(() => skewed);
            Assert.Equal(forward == 2, plan is not null);
        }
        Assert.NotNull(plan);
        Assert.True(online.MigrationInFlight);
        Assert.True(plan.To.Balance(skewed.Select(x => (double)x).ToArray()) < initial.Balance(skewed.Select(x => (double)x).ToArray()));

        // Copies not finished: later forwards keep the old table, and no second plan starts.
        for (int forward = 0; forward < 4; forward++)
        {
            Assert.Same(initial, online.BeginForward());
            Assert.Null(online.EndForward(() => skewed));
        }
        online.CompleteMigration();
        Assert.Same(initial, online.Current);       // still the old table until the boundary
        Assert.Same(plan.To, online.BeginForward());
        Assert.Equal(1, online.Migrations);
        Assert.False(online.MigrationInFlight);
        Assert.Throws<InvalidOperationException>(online.CompleteMigration);
    }

    [Fact]
    public void NoPlanWhenTheBalanceWouldNotImprove()
    {
        var online = new OnlineEplb(Placement.Contiguous(4, 2), rebalanceEvery: 1, minImprovement: 0.05);
        online.BeginForward();
        Assert.Null(online.EndForward(() => new long[] { 10, 10, 10, 10 }));
        online.BeginForward();
        Assert.Null(online.EndForward(() => new long[] { 11, 10, 10, 10 }));  // 21/20.5 = 1.024: under the threshold
        Assert.Throws<ArgumentOutOfRangeException>(() => new OnlineEplb(Placement.Contiguous(4, 2), rebalanceEvery: 0));
    }
}
