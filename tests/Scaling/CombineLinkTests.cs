using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The combine's F32 rows priced by the all-to-all bench's F32 rows when it has them (LinkF32), else at the link's rate.</summary>
public sealed class CombineLinkTests
{
    // bf16: 10 us + bytes / 200 GB/s; f32: 12 us + bytes / 100 GB/s; device timing (no host part to take out).
    private static string AllToAll(bool withF32)
    {
        var rows = new List<string>();
        foreach (double b in new[] { 1e4, 1e6, 1e8 })
        {
            rows.Add($"{{\"Algorithm\":\"ours\",\"Ranks\":2,\"DType\":\"bf16\",\"PeerBytesPerRank\":{b},\"TimeUs\":{10 + b / 200e9 * 1e6}}}");
            if (withF32)
                rows.Add($"{{\"Algorithm\":\"ours\",\"Ranks\":2,\"DType\":\"f32\",\"PeerBytesPerRank\":{b},\"TimeUs\":{12 + b / 100e9 * 1e6}}}");
        }
        return "{\"kind\":\"alltoall\",\"device\":\"x\",\"ranks\":2,\"rows\":[" + string.Join(",", rows) + "]}";
    }

    [Fact]
    public void F32RowsFitTheCombinesLinkAndLeaveTheLinkToTheOthers()
    {
        using var folder = new TempFolder();
        string a2a = folder.File("a2a.json");
        File.WriteAllText(a2a, AllToAll(withF32: true));
        var p = Calibration.Fit([a2a], DefaultScaleParams.Load(), linkAlgorithm: "ours");
        Assert.Equal(10, p.Link.LatencyUs, 1e-6);
        Assert.Equal(200, p.Link.GBs, 1e-6);
        Assert.NotNull(p.LinkF32);
        Assert.Equal(12, p.LinkF32!.LatencyUs, 1e-6);
        Assert.Equal(100, p.LinkF32.GBs, 1e-6);
        Assert.Equal(p.LinkF32, ScaleParams.FromJson(p.ToJson()).LinkF32);

        File.WriteAllText(a2a, AllToAll(withF32: false));
        var without = Calibration.Fit([a2a], DefaultScaleParams.Load(), linkAlgorithm: "ours");
        Assert.Null(without.LinkF32);
        Assert.Contains("not measured", without.Sources["link f32"]);
    }

    [Fact]
    public void TheCombineUsesTheF32LinkAndTheDispatchDoesNot()
    {
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var baseParams = DefaultScaleParams.Load() with { Link = new LinearCost(10, 200), LinkF32 = null };
        var slowF32 = baseParams with { LinkF32 = new LinearCost(10, 100) };
        double[] tokens = [512, 512], rows = [4096, 4096], active = [64, 64];
        var a = ScaleModel.Predict(baseParams, c, LinkPreset.H200Nvlink, tokens, rows, active);
        var b = ScaleModel.Predict(slowF32, c, LinkPreset.H200Nvlink, tokens, rows, active);
        Assert.Equal(a.DispatchUs, b.DispatchUs, 1e-9);
        double peerF32 = 0.5 * 4096 * c.HiddenSize * 4;
        Assert.Equal(10 + peerF32 / 200e9 * 1e6, a.CombineUs, 1e-6);
        Assert.Equal(10 + peerF32 / 100e9 * 1e6, b.CombineUs, 1e-6);
        Assert.Equal(LinkPreset.Nvl72.AllToAllUs(slowF32, 8, peerF32, f32: true) * 2 - 10, LinkPreset.Nvl72.AllToAllUs(slowF32, 8, peerF32 * 2, f32: true), 1e-6);
    }
}
