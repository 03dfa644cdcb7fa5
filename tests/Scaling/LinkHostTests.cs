using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>
/// The link of a host-clocked all-to-all bench keeps only the device part when the params have a host term: each point
/// less its ranks' enqueue (the timeline adds that itself), so the enqueue is not counted twice.
/// </summary>
public sealed class LinkHostTests
{
    // Two ranks, 20 us of host enqueue each: device = 8 us + bytes / 200 GB/s, measured = 40 us + device.
    private static string AllToAll(string timing) =>
        "{\"kind\":\"alltoall\",\"device\":\"x\",\"ranks\":2,\"rows\":["
        + string.Join(",", new[] { 8e3, 1e6, 1e8, 1e9 }.Select(b =>
            $"{{\"Algorithm\":\"ours\",\"Ranks\":2,\"PeerBytesPerRank\":{b},\"TimeUs\":{40 + 8 + b / 200e9 * 1e6},\"Timing\":\"{timing}\"}}")) + "]}";

    private const string HostSweep = """
        {"device":"x","rows":[
          {"Name":"host router gemm","Shape":"launches=1","Ms":0.007,"GBps":0},
          {"Name":"host alltoallv","Shape":"ranks=1 rows=512 H=2048","Ms":0.020,"GBps":0}]}
        """;

    [Fact]
    public void WithAHostPartTheLinkLosesTheRanksEnqueue()
    {
        using var folder = new TempFolder();
        string a2a = folder.File("a2a.json"), host = folder.File("host.json");
        File.WriteAllText(a2a, AllToAll("host clock, synchronised"));
        File.WriteAllText(host, HostSweep);
        var fallback = DefaultScaleParams.Load();
        var withHost = Calibration.Fit([a2a, host], fallback, linkAlgorithm: "ours");
        Assert.Equal(8, withHost.Link.LatencyUs, 1e-6);
        Assert.Equal(200, withHost.Link.GBs, 1e-6);
        Assert.Contains("device part only", withHost.Sources["link"]);

        // Without a host part the link keeps the whole measured call (the enqueue in its latency), as before.
        var withoutHost = Calibration.Fit([a2a], fallback, linkAlgorithm: "ours");
        Assert.Null(withoutHost.Host);
        Assert.Equal(48, withoutHost.Link.LatencyUs, 1e-6);
        Assert.DoesNotContain("device part only", withoutHost.Sources["link"]);

        // Device-timed rows (not the host clock) are left as measured.
        File.WriteAllText(a2a, AllToAll("device events"));
        Assert.Equal(48, Calibration.Fit([a2a, host], fallback, linkAlgorithm: "ours").Link.LatencyUs, 1e-6);
    }

    [Fact]
    public void DeviceOnlySubtractsEveryRanksEnqueueAndNeverGoesBelowATenth()
    {
        var points = LinkHost.DeviceOnly([(1e3, 50), (1e6, 30)], ranks: 2, collectivePerRankUs: 20);
        Assert.Equal((1e3, 10.0), points[0]);
        Assert.Equal((1e6, 3.0), points[1]); // 30 - 40 < 0: host-bound, kept at a tenth
        Assert.True(LinkHost.HostClocked("host clock, synchronised"));
        Assert.False(LinkHost.HostClocked(null));
    }

    [Fact]
    public void WithTheSplitLinkASmallDispatchIsTheEnqueuePlusTheDevicePart()
    {
        // Balanced Qwen3 EP2 at 1 token a rank: the timed dispatch = marks + both ranks' enqueue + device link, not the
        // enqueue twice (once in the host term, once in a latency fitted around it).
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var p = DefaultScaleParams.Load() with { Link = new LinearCost(8, 200), Host = new HostParams(7, 1.7, 1, 20) };
        var b = ScaleModel.Predict(p, c, LinkPreset.H200Nvlink, [1, 1], [8, 8], [8, 8], schedule: HostSchedule.InProcessBench);
        double transfer = LinkPreset.H200Nvlink.AllToAllUs(p, 2, 0.5 * 8 * c.HiddenSize * 2);
        Assert.Equal(1 + 2 * 20 + transfer, b.Timed!.DispatchUs, 1e-6);
    }
}
