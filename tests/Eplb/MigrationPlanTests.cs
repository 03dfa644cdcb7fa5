using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Eplb;

public class MigrationPlanTests
{
    /// <summary>
    /// Runs the plan on a simulated slot array (each slot holds the id of the expert whose weights it has), wave by
    /// wave with reads taken before the wave's writes; every read must find the expert the move claims.
    /// </summary>
    private static int[] Apply(MigrationPlan plan, string what)
    {
        var from = plan.From;
        var slots = from.SlotExperts.ToArray().Concat(Enumerable.Repeat(-1, from.Gpus)).ToArray();
        foreach (var wave in plan.Moves.GroupBy(m => m.Wave).OrderBy(g => g.Key))
        {
            var moves = wave.ToList();
            var written = moves.Select(m => m.DestinationSlot).ToList();
            Assert.True(written.Distinct().Count() == written.Count, $"{what}: wave {wave.Key} writes a slot twice");
            foreach (var m in moves)
            {
                Assert.False(written.Contains(m.SourceSlot), $"{what}: wave {wave.Key} reads slot {m.SourceSlot} that it also writes");
                Assert.True(slots[m.SourceSlot] == m.Expert, $"{what}: move {m} reads slot {m.SourceSlot}, which holds expert {slots[m.SourceSlot]}");
                if (MigrationPlan.IsStaging(from, m.DestinationSlot))
                    Assert.True(m.DestinationSlot - from.PhysicalSlots == m.SourceSlot / from.SlotsPerGpu, $"{what}: {m} stages on another GPU");
            }
            foreach (var m in moves)
                slots[m.DestinationSlot] = m.Expert;
        }
        return slots[..from.PhysicalSlots];
    }

    [Fact]
    public void ASwapOfTwoSlotsGoesThroughStaging()
    {
        var from = new Placement(2, new[] { new[] { 0, 1 } });
        var to = new Placement(2, new[] { new[] { 1, 0 } });
        var plan = MigrationPlan.Create(from, to);
        // Stage slot 0 (expert 0), then slot 0 <- slot 1, then slot 1 <- staging.
        Assert.Equal(new[] { new SlotMove(2, 0, 0, 0), new SlotMove(0, 1, 1, 1), new SlotMove(1, 0, 2, 2) }, plan.Moves);
        Assert.Equal(to.SlotExperts.ToArray(), Apply(plan, "swap"));
    }

    [Fact]
    public void ANewReplicaCopiesFromASlotThatKeepsItsExpert()
    {
        var from = new Placement(3, new[] { new[] { 0, 1 }, new[] { 2, 2 } });
        var to = new Placement(3, new[] { new[] { 0, 1 }, new[] { 2, 0 } });
        var plan = MigrationPlan.Create(from, to);
        Assert.Equal(new[] { new SlotMove(3, 0, 0, 0) }, plan.Moves);
        Assert.True(MigrationPlan.Create(to, to).IsEmpty);
    }

    [Fact]
    public void RandomRebalancesReachTheNewPlacementWithoutReadingOverwrittenSlots()
    {
        var random = TestData.NewRandom(out int seed);
        for (int trial = 0; trial < 300; trial++)
        {
            int gpus = random.Next(1, 5), experts = gpus * random.Next(1, 5), slots = experts / gpus + random.Next(0, 3);
            var a = EplbPlanner.Plan(EplbPlannerTests.ZipfLoads(random, experts, 1.2), gpus, slots);
            var b = EplbPlanner.Plan(EplbPlannerTests.ZipfLoads(random, experts, 1.2), gpus, slots);
            if (trial % 2 == 0)
                b = MigrationPlan.AlignSlots(a, b);
            string what = $"seed {seed} trial {trial}: {a} -> {b}";
            var plan = MigrationPlan.Create(a, b);
            Assert.Equal(b.SlotExperts.ToArray(), Apply(plan, what));
            int changed = Enumerable.Range(0, a.PhysicalSlots).Count(p => a.SlotExperts[p] != b.SlotExperts[p]);
            Assert.Equal(changed, plan.Moves.Count(m => !MigrationPlan.IsStaging(a, m.DestinationSlot)));
        }
    }

    [Fact]
    public void AlignmentKeepsExpertsInTheirSlotsAndLoadsUnchanged()
    {
        var current = new Placement(4, new[] { new[] { 0, 1, 2 }, new[] { 3, 0, 1 } });
        var next = new Placement(4, new[] { new[] { 2, 3, 0 }, new[] { 1, 0, 2 } });
        var aligned = MigrationPlan.AlignSlots(current, next);
        Assert.Equal(new[] { new[] { 0, 3, 2 }, new[] { 2, 0, 1 } }, aligned.ToSlotTable());
        var loads = new double[] { 5, 1, 7, 2 };
        Assert.Equal(next.GpuLoads(loads), aligned.GpuLoads(loads));
        Assert.Equal(2, MigrationPlan.Create(current, aligned).Moves.Count);
    }
}
