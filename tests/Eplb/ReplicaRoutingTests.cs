using MoeRuntime.Kernels.Eplb;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Eplb;

public class ReplicaRoutingTests
{
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void HandWorkedExample(string device)
    {
        var accelerator = TestDevices.Get(device);
        // Expert 0 in slots 0 and 3, expert 1 in slot 1, expert 2 in slot 2. Pairs of expert 0 alternate 0, 3, 0, ...
        var placement = new Placement(3, new[] { new[] { 0, 1 }, new[] { 2, 0 } });
        using var table = placement.CreateReplicaTable(accelerator);
        using var logical = accelerator.Upload<int>(new[] { 0, 1, 0, 1, 1, 0, 2, 0, 5, -1 });
        using var physical = accelerator.Allocate<int>(10);
        TestData.Poison(physical);
        ReplicaRouting.Run(logical, table, physical);
        Compare.Exact<int>(new[] { 0, 1, 3, 1, 1, 0, 2, 3, -1, -1 }, physical.ToArray(), "physical slots");
    }

    public static TheoryData<string, int, int, int> Shapes()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var device in new[] { "cpu", "cuda:0" })
            foreach (var (tokens, k, experts) in new[] { (0, 2, 8), (1, 1, 4), (33, 2, 8), (1000, 8, 64), (5000, 8, 256), (700, 1, 2) })
                data.Add(device, tokens, k, experts);
        return data;
    }

    [Theory, MemberData(nameof(Shapes))]
    public void SpreadsEachExpertEvenlyOverItsReplicasAndMatchesTheTwin(string device, int tokens, int k, int experts)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        int gpus = Math.Min(4, experts);
        int slots = experts / gpus + 1 + random.Next(0, 3);
        // Skewed routing (Zipf-like), k distinct experts per token.
        var loads = EplbPlannerTests.ZipfLoads(random, experts, 1.2);
        var placement = EplbPlanner.Plan(loads, gpus, slots);
        var ids = new int[tokens * k];
        double total = loads.Sum();
        for (int t = 0; t < tokens; t++)
        {
            var chosen = new HashSet<int>();
            while (chosen.Count < k)
            {
                double u = random.NextDouble() * total;
                int e = 0;
                while (e < experts - 1 && (u -= loads[e]) > 0)
                    e++;
                chosen.Add(e);
            }
            chosen.ToArray().CopyTo(ids, t * k);
        }
        using var table = placement.CreateReplicaTable(accelerator);
        using var logical = accelerator.Upload<int>(ids);
        using var physical = accelerator.Allocate<int>(ids.Length);
        TestData.Poison(physical);
        ReplicaRouting.Run(logical, table, physical);
        var actual = physical.ToArray();
        string what = $"T={tokens} k={k} E={experts} seed={seed}";

        // The twin on the host is the reference.
        var expected = new int[ids.Length];
        ReplicaRoutingCpu.Run(ids, placement.ReplicaOffsets, placement.ReplicaSlots, expected);
        Compare.Exact<int>(expected, actual, what);

        // Every pair lands on a slot of its own expert, and each expert's pairs differ by at most one between replicas.
        var perSlot = new int[placement.PhysicalSlots];
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.True(placement.SlotExperts[actual[i]] == ids[i], $"{what}: pair {i} of expert {ids[i]} went to slot {actual[i]}");
            perSlot[actual[i]]++;
        }
        for (int e = 0; e < experts; e++)
        {
            var counts = placement.PhysicalSlotsOf(e).ToArray().Select(s => perSlot[s]).ToArray();
            Assert.True(counts.Max() - counts.Min() <= 1, $"{what}: expert {e} replicas got [{string.Join(", ", counts)}]");
        }
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void ATableUpdateIsSeenByTheNextLaunch(string device)
    {
        var accelerator = TestDevices.Get(device);
        var before = new Placement(2, new[] { new[] { 0, 1 }, new[] { 1, 1 } });
        var after = new Placement(2, new[] { new[] { 0, 0 }, new[] { 1, 0 } });
        using var table = before.CreateReplicaTable(accelerator);
        using var logical = accelerator.Upload<int>(new[] { 0, 0, 0, 1, 1, 1 });
        using var physical = accelerator.Allocate<int>(6);
        ReplicaRouting.Run(logical, table, physical);
        Compare.Exact<int>(new[] { 0, 0, 0, 1, 2, 3 }, physical.ToArray(), "before");
        table.Update(after.ReplicaOffsets, after.ReplicaSlots);
        TestData.Poison(physical);
        ReplicaRouting.Run(logical, table, physical);
        Compare.Exact<int>(new[] { 0, 1, 3, 2, 2, 2 }, physical.ToArray(), "after");
    }

    [Fact]
    public void RejectsMismatchedBuffersAndBadTables()
    {
        var cpu = TestDevices.Get("cpu");
        using var table = new Placement(2, new[] { new[] { 0, 1 } }).CreateReplicaTable(cpu);
        using var logical = cpu.Allocate<int>(4);
        using var shorter = cpu.Allocate<int>(3);
        Assert.Equal("physicalIds", Assert.Throws<ArgumentException>(() => ReplicaRouting.Run(logical, table, shorter)).ParamName);
        Assert.Equal("replicaOffsets", Assert.Throws<ArgumentException>(() => new ReplicaTable(cpu, new[] { 0, 0, 2 }, new[] { 0, 1 })).ParamName);
        Assert.Equal("replicaSlots", Assert.Throws<ArgumentException>(() => new ReplicaTable(cpu, new[] { 0, 1, 2 }, new[] { 0, 2 })).ParamName);
        Assert.Equal("replicaOffsets", Assert.Throws<ArgumentException>(() => table.Update(new[] { 0, 1, 2, 2 }, new[] { 0, 1 })).ParamName);
    }
}
