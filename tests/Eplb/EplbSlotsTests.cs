using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Parallel.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Eplb;

/// <summary>
/// The online timeline of <see cref="EplbSlots"/> step by step: plan at the K-th forward's end, copies in flight during
/// the next forward (into the back store only), switch at the boundary after, front and tables swapped together.
/// </summary>
public sealed class EplbSlotsTests
{
    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void MigrationSwitchesOnlyAtTheForwardBoundaryAfterItsCopies(string kind)
    {
        var group = TestDevices.GetGroup(kind, 2);
        var config = ExpertParallelEplbTests.SmallConfig(8, 2);
        var options = new EplbOptions { Mode = EplbMode.Online, Redundant = 2, RebalanceEvery = 2, WindowForwards = 2, MinImprovement = 0 };
        using var slots = new EplbSlots(group, config, options, (a, experts) => SlotWeightStore.CreateRandom(a, config, DType.F32, 3, experts));
        Assert.Equal(5, slots.SlotsPerDevice);
        var initial = slots.Current;
        var front = new[] { slots.Store(0), slots.Store(1) };
        // Expert 6 takes almost every token: the plan must replicate it.
        var counts = new int[8];
        Array.Fill(counts, 1);
        counts[6] = 1000;
        void Forward()
        {
            slots.BeginForward();
            for (int d = 0; d < 2; d++)
            {
                using var buffer = group[d].Upload<int>(counts);
                slots.Load(d).Record(buffer);
            }
            slots.EndForward();
        }

        Forward();
        Assert.False(slots.CopiesInFlight);
        Forward();                                   // the 2nd forward's end plans and enqueues the copies
        Assert.True(slots.CopiesInFlight);
        Assert.NotNull(slots.LastPlan);
        Assert.Same(initial, slots.Current);
        Assert.Same(front[0], slots.Store(0));       // forwards still read the old front
        Assert.True(slots.SlotCopies > 0);

        slots.BeginForward();                        // 3rd forward: copies overlap it, the old placement routes it
        Assert.Same(initial, slots.Current);
        Assert.Equal(0, slots.Migrations);
        slots.EndForward();                          // waits for the copies
        Assert.False(slots.CopiesInFlight);
        Assert.Single(slots.MigrationMilliseconds);

        slots.BeginForward();                        // 4th forward: the new placement, its slots, its tables
        Assert.Equal(1, slots.Migrations);
        Assert.NotSame(initial, slots.Current);
        Assert.True(slots.Current.ReplicaCounts[6] >= 2, $"expert 6 not replicated: {slots.Current}");
        Assert.NotSame(front[0], slots.Store(0));
        for (int d = 0; d < 2; d++)
            for (int s = 0; s < slots.SlotsPerDevice; s++)
                Assert.Equal(slots.Current.ExpertAt(d, s), slots.Store(d).Experts[s]);
        var table = slots.Table(0);
        Assert.Equal(slots.Current.ReplicaOffsets.ToArray(), table.Offsets.ToArray());
        Assert.Equal(slots.Current.ReplicaSlots.ToArray(), table.Slots.ToArray());
        slots.EndForward();
    }

    [Fact]
    public void StaticAndNoneNeverMigrate()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        var config = ExpertParallelEplbTests.SmallConfig(8, 2);
        using var none = new EplbSlots(group, config, new EplbOptions { Mode = EplbMode.None }, (a, e) => SlotWeightStore.CreateRandom(a, config, DType.F32, 1, e));
        Assert.True(none.Current.SameSlotsAs(Placement.Contiguous(8, 2)));
        var loads = new long[] { 1, 1, 1, 1, 1, 1, 90, 1 };
        using var fixedPlan = new EplbSlots(group, config, new EplbOptions { Mode = EplbMode.Static, Redundant = 2, Loads = loads, RebalanceEvery = 1 },
            (a, e) => SlotWeightStore.CreateRandom(a, config, DType.F32, 1, e));
        Assert.True(fixedPlan.Current.SameSlotsAs(EplbPlanner.Plan(loads, 2, 5)));
        for (int i = 0; i < 4; i++)
        {
            fixedPlan.BeginForward();
            fixedPlan.EndForward();
        }
        Assert.Equal(0, fixedPlan.Migrations);
        Assert.Equal(0, fixedPlan.SlotCopies);
    }
}
