using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel.Eplb;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Eplb;

/// <summary>Per-device slot weights: upload by expert list, copies between slots and devices (peer on CUDA), random fill equal to the full layer's.</summary>
public sealed class SlotWeightStoreTests
{
    [Theory]
    [InlineData("cpu", "f32")]
    [InlineData("cpu", "bf16")]
    [InlineData("cuda", "bf16")]
    public void SlotsHoldTheirExpertsAndCopiesMoveWholeExperts(string kind, string dtype)
    {
        var group = TestDevices.GetGroup(kind, 2);
        var type = DTypes.Parse(dtype);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 8, 7);
        var weights = MoeLayerWeights.Load(folder.Path, layer, type);
        using var a = SlotWeightStore.Upload(group[0], weights, [3, 0, 3]);
        using var b = SlotWeightStore.Upload(group[1], weights, [5, 6]);
        AssertHolds(a, weights, "upload a");
        AssertHolds(b, weights, "upload b");
        b.CopySlot(1, a, 0);            // across devices: expert 3 into b's slot 1
        a.CopySlot(1, a, 2);            // within a device
        a.CopySlot(2, b, 0);
        group[0].Synchronize();
        group[1].Synchronize();
        Assert.Equal([3, 3, 5], a.Experts.ToArray());
        Assert.Equal([5, 3], b.Experts.ToArray());
        AssertHolds(a, weights, "after copies a");
        AssertHolds(b, weights, "after copies b");
        using var clone = a.Clone();
        AssertHolds(clone, weights, "clone");
    }

    [Fact]
    public void CopiesOnASideStreamAreOrderedOnIt()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        var config = ExpertParallelEplbTests.SmallConfig(8, 2);
        using var a = SlotWeightStore.CreateRandom(group[0], config, DType.F32, 4, [0, 1]);
        using var b = SlotWeightStore.CreateRandom(group[1], config, DType.F32, 4, [2, 3]);
        using var stream = group[1].CreateStream();
        b.CopySlot(0, a, 1, stream);
        stream.Synchronize();
        using var full = DeviceMoeWeights.CreateRandom(group[0], config, DType.F32, 4);
        var fullGateUp = ((MemoryBuffer<float>)full.GateUp).ToArray();
        var slotGateUp = ((MemoryBuffer<float>)b.GateUp).ToArray();
        int per = fullGateUp.Length / 8;
        Compare.Exact<float>(fullGateUp.AsSpan(1 * per, per), slotGateUp.AsSpan(0, per), "expert 1 copied into slot 0");
        Compare.Exact<float>(fullGateUp.AsSpan(3 * per, per), slotGateUp.AsSpan(per, per), "expert 3 left in slot 1");
    }

    [Fact]
    public void RandomSlotsEqualTheExpertsOfTheFullRandomLayer()
    {
        var cpu = TestDevices.Get("cpu");
        var config = ExpertParallelEplbTests.SmallConfig(8, 2);
        using var full = DeviceMoeWeights.CreateRandom(cpu, config, DType.BF16, 21);
        using var store = SlotWeightStore.CreateRandom(cpu, config, DType.BF16, 21, [7, 2, 2]);
        var fullDown = ExpertParallelEplbTests.ToFloats(full.Down);
        var slotDown = ExpertParallelEplbTests.ToFloats(store.Down);
        int per = fullDown.Length / 8;
        foreach (var (slot, expert) in new[] { (0, 7), (1, 2), (2, 2) })
            Compare.Exact<float>(fullDown.AsSpan(expert * per, per), slotDown.AsSpan(slot * per, per), $"down of slot {slot} (expert {expert})");
        using var one = DeviceMoeWeights.CreateRandom(cpu, config, DType.BF16, 21, [5]);
        Assert.Equal(1, one.ExpertCount);
        Compare.Exact<float>(fullDown.AsSpan(5 * per, per), ExpertParallelEplbTests.ToFloats(one.Down), "a one-expert random layer holds expert 5");
    }

    [Fact]
    public void BadSlotsAndMismatchedStoresAreRejected()
    {
        var cpu = TestDevices.Get("cpu");
        var config = ExpertParallelEplbTests.SmallConfig(8, 2);
        using var a = SlotWeightStore.CreateRandom(cpu, config, DType.F32, 1, [0, 1]);
        using var other = SlotWeightStore.CreateRandom(cpu, config, DType.BF16, 1, [0, 1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopySlot(2, a, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => a.CopySlot(0, a, -1));
        Assert.Throws<ArgumentException>(() => a.CopySlot(0, other, 0));
        Assert.Contains("expert 8", Assert.Throws<ArgumentException>(() => SlotWeightStore.CreateRandom(cpu, config, DType.F32, 1, [8])).Message);
        Assert.Throws<ArgumentException>(() => SlotWeightStore.CreateRandom(cpu, config, DType.F32, 1, []));
    }

    /// <summary>Each slot's gate_up and down equal the host weights of the expert the store says it holds.</summary>
    private static void AssertHolds(SlotWeightStore store, MoeLayerWeights weights, string what)
    {
        var gateUp = MoeLayerFixtures.RoundTo(weights.ExpertGateUp.ToFloats(), weights.DType);
        var down = MoeLayerFixtures.RoundTo(weights.ExpertDown.ToFloats(), weights.DType);
        int e = weights.Config.NumExperts, gu = gateUp.Length / e, dn = down.Length / e;
        var storedGateUp = ExpertParallelEplbTests.ToFloats(store.GateUp);
        var storedDown = ExpertParallelEplbTests.ToFloats(store.Down);
        for (int s = 0; s < store.Slots; s++)
        {
            int expert = store.Experts[s];
            Compare.Exact<float>(gateUp.AsSpan(expert * gu, gu), storedGateUp.AsSpan(s * gu, gu), $"{what}: gate_up of slot {s} (expert {expert})");
            Compare.Exact<float>(down.AsSpan(expert * dn, dn), storedDown.AsSpan(s * dn, dn), $"{what}: down of slot {s} (expert {expert})");
        }
    }
}
