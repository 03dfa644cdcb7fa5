using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Eplb;

public class ExpertLoadTests
{
    public static TheoryData<string, int, int> Shapes()
    {
        var data = new TheoryData<string, int, int>();
        foreach (var device in new[] { "cpu", "cuda:0" })
            foreach (var (experts, window) in new[] { (1, 1), (8, 3), (33, 5), (300, 4) })
                data.Add(device, experts, window);
        return data;
    }

    [Theory, MemberData(nameof(Shapes))]
    public void TheWindowSumsTheLastWForwards(string device, int experts, int window)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        using var load = new ExpertLoad(accelerator, experts, window);
        using var counts = accelerator.Allocate<int>(experts);
        var history = new List<int[]>();
        for (int forward = 0; forward < 2 * window + 3; forward++)
        {
            var c = Enumerable.Range(0, experts).Select(_ => random.Next(0, 5000)).ToArray();
            history.Add(c);
            counts.CopyFrom(c);
            load.Record(counts);
            var (sums, forwards) = load.ReadWindow();
            var kept = history.Skip(Math.Max(0, history.Count - window)).ToList();
            var expected = Enumerable.Range(0, experts).Select(e => kept.Sum(h => (long)h[e])).ToArray();
            Compare.Exact<long>(expected, sums, $"E={experts} W={window} forward {forward} seed={seed}");
            Assert.Equal(kept.Count, forwards);
        }
        Assert.Equal(2 * window + 3, load.ForwardsRecorded());
        load.Reset();
        var (cleared, none) = load.ReadWindow();
        Compare.Exact<long>(new long[experts], cleared, "after Reset");
        Assert.Equal(0, none);
    }

    [Fact]
    public void RejectsCountsOfTheWrongLength()
    {
        var cpu = TestDevices.Get("cpu");
        using var load = new ExpertLoad(cpu, 4, 2);
        using var counts = cpu.Allocate<int>(5);
        Assert.Equal("counts", Assert.Throws<ArgumentException>(() => load.Record(counts)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExpertLoad(cpu, 4, 0));
    }

    [Fact]
    public void DisposeReleasesTheDeviceMemory()
    {
        // A private accelerator: tests running in parallel allocate on the shared ones.
        using var cpu = TestDevices.CreatePrivate("cpu");
        long before = cpu.AllocatedBytes;
        new ExpertLoad(cpu, 64, 16).Dispose();
        Assert.Equal(before, cpu.AllocatedBytes);
    }
}
