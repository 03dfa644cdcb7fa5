using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Eplb;

public class EplbPlannerTests
{
    private static int[][] Slots(Placement p) => p.ToSlotTable();

    [Fact]
    public void NoSpareSlotsPacksHeaviestFirstOntoTheLightestGpu()
    {
        // Items 4,3,2,1: 4 -> gpu0, 3 -> gpu1, 2 -> gpu1 (3 < 4), 1 -> gpu0: loads 5 and 5.
        var p = EplbPlanner.Plan(new double[] { 4, 3, 2, 1 }, gpus: 2, slotsPerGpu: 2);
        Assert.Equal(new[] { new[] { 0, 3 }, new[] { 1, 2 } }, Slots(p));
        Assert.Equal(new[] { 1, 1, 1, 1 }, p.ReplicaCounts.ToArray());
        Assert.Equal(1.0, p.Balance(new double[] { 4, 3, 2, 1 }), 12);
    }

    [Fact]
    public void SpareSlotsGoToTheHighestLoadPerReplica()
    {
        // Loads [6, 2], 2 spare slots: expert 0 (6 > 2) gets one, then 0 again (3 > 2): 3 replicas of weight 2.
        // Packing 0,0,0,1 (all weight 2): gpu0, gpu1 (gpu0 holds 0), gpu0 (both hold 0: lightest with room), gpu1.
        var p = EplbPlanner.Plan(new double[] { 6, 2 }, gpus: 2, slotsPerGpu: 2);
        Assert.Equal(new[] { new[] { 0, 0 }, new[] { 0, 1 } }, Slots(p));
        Assert.Equal(new[] { 3, 1 }, p.ReplicaCounts.ToArray());
        Assert.Equal(new[] { 4.0, 4.0 }, p.GpuLoads(new double[] { 6, 2 }));
    }

    [Fact]
    public void RefinementRepairsTheGreedyPacking()
    {
        // Greedy gives gpu0 [0,3,5] = 7, gpu1 [1,4,2] = 5; swapping expert 0 (3) with expert 4 (2) gives 6 / 6.
        var loads = new double[] { 3, 3, 0, 2, 2, 2 };
        var p = EplbPlanner.Plan(loads, gpus: 2, slotsPerGpu: 3);
        Assert.Equal(new[] { new[] { 4, 3, 5 }, new[] { 1, 0, 2 } }, Slots(p));
        Assert.Equal(1.0, p.Balance(loads), 12);
    }

    [Fact]
    public void HotExpertReplicasGoToDifferentGpus()
    {
        // Loads [60, 20, 20, 20], 4 spares: 0 -> 30, 0 -> 20, then a tie at 20 goes to the lowest id (0 -> 15), then 1 -> 10.
        // Items 20(2) 20(3) 15(0)x4 10(1)x2 pack to gpu loads 35 35 25 25; 15+15 on one GPU would need two replicas of 0.
        var loads = new double[] { 60, 20, 20, 20 };
        var p = EplbPlanner.Plan(loads, gpus: 4, slotsPerGpu: 2);
        Assert.Equal(new[] { 4, 2, 1, 1 }, p.ReplicaCounts.ToArray());
        for (int g = 0; g < 4; g++)
            Assert.Equal(1, Enumerable.Range(0, 2).Count(s => p.ExpertAt(g, s) == 0));
        Assert.Equal(35.0, p.GpuLoads(loads).Max(), 12);
        Assert.True(p.Balance(loads) < Placement.Contiguous(4, 4).Balance(loads));
    }

    [Fact]
    public void ContiguousIsTheNoBalancerBaseline()
    {
        var p = Placement.Contiguous(6, 3);
        Assert.Equal(new[] { new[] { 0, 1 }, new[] { 2, 3 }, new[] { 4, 5 } }, Slots(p));
        Assert.Equal(new[] { 21.0, 11.0, 5.0 }, p.GpuLoads(new double[] { 20, 1, 10, 1, 4, 1 }));
        Assert.Equal(21.0 / (37.0 / 3), p.Balance(new double[] { 20, 1, 10, 1, 4, 1 }), 12);
        Assert.Throws<ArgumentException>(() => Placement.Contiguous(5, 2));
    }

    [Fact]
    public void TheLogicalToPhysicalMapListsEveryReplica()
    {
        var p = new Placement(3, new[] { new[] { 0, 2 }, new[] { 1, 0 } });
        Assert.Equal(new[] { 2, 1, 1 }, p.ReplicaCounts.ToArray());
        Assert.Equal(new[] { 0, 2, 3, 4 }, p.ReplicaOffsets.ToArray());
        Assert.Equal(new[] { 0, 3, 2, 1 }, p.ReplicaSlots.ToArray());
        Assert.Equal(new[] { 0, 3 }, p.PhysicalSlotsOf(0).ToArray());
        Assert.Throws<ArgumentException>(() => new Placement(3, new[] { new[] { 0, 0 }, new[] { 1, 0 } }));   // expert 2 missing
        Assert.Throws<ArgumentException>(() => new Placement(3, new[] { new[] { 0, 2 }, new[] { 1, 3 } }));   // id 3 out of range
        Assert.Throws<ArgumentException>(() => new Placement(3, new[] { new[] { 0, 2 }, new[] { 1 } }));      // ragged
    }

    [Fact]
    public void HierarchicalPlansKeepReplicasInsideTheirNode()
    {
        var random = TestData.NewRandom(out int seed);
        for (int trial = 0; trial < 50; trial++)
        {
            var loads = ZipfLoads(random, 16, 1.2);
            var p = EplbPlanner.Plan(loads, gpus: 4, slotsPerGpu: 6, groups: 2);
            CheckInvariants(p, loads, 4, 6, $"seed {seed} trial {trial}");
            for (int e = 0; e < 16; e++)
            {
                var nodes = p.PhysicalSlotsOf(e).ToArray().Select(slot => slot / 6 / 2).Distinct().Count();
                Assert.True(nodes == 1, $"seed {seed} trial {trial}: expert {e} has replicas on {nodes} nodes");
            }
        }
    }

    [Fact]
    public void RandomLoadsKeepEveryInvariantAndNeverLoseToNoReplication()
    {
        var random = TestData.NewRandom(out int seed);
        for (int trial = 0; trial < 300; trial++)
        {
            int gpus = random.Next(1, 9);
            int experts = gpus * random.Next(1, 9);
            int slots = experts / gpus + random.Next(0, 5);
            int groups = new[] { 1, 2, 4 }.Where(n => gpus % n == 0 && experts % n == 0).ElementAt(random.Next(0, 1 + (gpus % 2 == 0 && experts % 2 == 0 ? 1 : 0)));
            var loads = trial % 3 == 0
                ? ZipfLoads(random, experts, 0.5 + random.NextDouble())
                : Enumerable.Range(0, experts).Select(_ => random.Next(0, 4) == 0 ? 0.0 : random.Next(1, 1000)).ToArray();
            string what = $"seed {seed} trial {trial}: E={experts} G={gpus} S={slots} groups={groups} loads [{string.Join(", ", loads)}]";
            var p = EplbPlanner.Plan(loads, gpus, slots, groups);
            CheckInvariants(p, loads, gpus, slots, what);
            double none = Placement.Contiguous(experts, gpus).Balance(loads);
            Assert.True(p.Balance(loads) <= none + 1e-9, $"{what}: planned balance {p.Balance(loads)} worse than none {none}");
        }
    }

    [Fact]
    public void ReplicationHelpsZipfLoads()
    {
        // Zipf 1.2 over 64 experts, 4 GPUs with 16 spare slots: the plan must beat contiguous placement by far.
        var loads = Enumerable.Range(1, 64).Select(r => 1e6 / Math.Pow(r, 1.2)).ToArray();
        var p = EplbPlanner.Plan(loads, gpus: 4, slotsPerGpu: 20);
        Assert.True(p.Balance(loads) < 1.05, $"planned balance {p.Balance(loads)}");
        Assert.True(Placement.Contiguous(64, 4).Balance(loads) > 1.5);
    }

    [Fact]
    public void BadShapesAreRejectedWithTheArgumentNamed()
    {
        Assert.Equal("slotsPerGpu", Assert.Throws<ArgumentException>(() => EplbPlanner.Plan(new double[] { 1, 2, 3 }, 1, 2)).ParamName);
        Assert.Equal("expertLoads", Assert.Throws<ArgumentException>(() => EplbPlanner.Plan(Array.Empty<double>(), 1, 2)).ParamName);
        Assert.Equal("expertLoads", Assert.Throws<ArgumentException>(() => EplbPlanner.Plan(new double[] { 1, -1 }, 1, 2)).ParamName);
        Assert.Equal("expertLoads", Assert.Throws<ArgumentException>(() => EplbPlanner.Plan(new double[] { 1, double.NaN }, 1, 2)).ParamName);
        Assert.Equal("groups", Assert.Throws<ArgumentException>(() => EplbPlanner.Plan(new double[] { 1, 2, 3, 4 }, 3, 2, groups: 2)).ParamName);
        Assert.Equal("gpus", Assert.Throws<ArgumentOutOfRangeException>(() => EplbPlanner.Plan(new double[] { 1 }, 0, 2)).ParamName);
    }

    internal static double[] ZipfLoads(Random random, int experts, double exponent)
    {
        // Zipf weights over a random permutation of the experts, so the hot ones are anywhere.
        var ranks = Enumerable.Range(1, experts).OrderBy(_ => random.Next()).ToArray();
        return ranks.Select(r => Math.Round(1e5 / Math.Pow(r, exponent))).ToArray();
    }

    internal static void CheckInvariants(Placement p, double[] loads, int gpus, int slots, string what)
    {
        Assert.Equal(gpus, p.Gpus);
        Assert.Equal(slots, p.SlotsPerGpu);
        Assert.Equal(gpus * slots, p.SlotExperts.Length);
        Assert.Equal(gpus * slots, p.ReplicaCounts.ToArray().Sum());
        for (int e = 0; e < loads.Length; e++)
        {
            Assert.True(p.ReplicaCounts[e] >= 1, $"{what}: expert {e} has no replica");
            Assert.Equal(p.ReplicaCounts[e], p.SlotExperts.ToArray().Count(x => x == e));
        }
        Assert.Equal(loads.Sum(), p.GpuLoads(loads).Sum(), 1e-6 * Math.Max(1, loads.Sum()));
    }
}
