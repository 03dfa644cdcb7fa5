using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The simulator's output shape, its Pareto frontier, and the monotone behaviour the model must have.</summary>
public sealed class ScaleModelTests
{
    private static readonly ScaleParams Params = new()
    {
        Gemm = new GemmParams(15, 2600, 200),
        Link = new LinearCost(8, 260),
        Routing = new LinearCost(12, 300),
        Movement = new LinearCost(10, 2900),
    };

    private static SimulationOptions Options(string link = "nvl72", EplbMode eplb = EplbMode.None, double zipf = 0, int[]? ep = null) => new()
    {
        Model = LayerPresets.Get("deepseek-v3"), MoeLayers = 58, Gpus = 72, EpSizes = ep ?? [8, 16, 32, 64, 72],
        TokensPerGpu = [1, 4, 16, 64, 256, 1024], Link = LinkPreset.Get(link), Eplb = eplb, ZipfS = zipf, Steps = 4,
    };

    [Fact]
    public void OnePointPerEpSizeAndTokenCountInOrder()
    {
        var points = ScaleModel.Simulate(Params, Options());
        Assert.Equal(5 * 6, points.Count);
        Assert.Equal([8, 8, 8, 8, 8, 8], points.Take(6).Select(x => x.Ep));
        Assert.Equal([1, 4, 16, 64, 256, 1024], points.Take(6).Select(x => x.TokensPerGpu));
        Assert.All(points, x =>
        {
            Assert.True(x.Layer.TotalUs > 0);
            Assert.Equal(x.TokensPerGpu * x.TokensPerSecondPerUser, x.TokensPerSecondPerGpu, 1e-6 * x.TokensPerSecondPerGpu);
            Assert.Equal(1e6 / (58 * x.Layer.TotalUs), x.TokensPerSecondPerUser, 1e-9 * x.TokensPerSecondPerUser);
        });
    }

    [Fact]
    public void ParetoFrontierTradesPerUserForPerGpuThroughputAndNoPointDominatesIt()
    {
        var points = ScaleModel.Simulate(Params, Options());
        var frontier = ScaleModel.Pareto(points);
        Assert.NotEmpty(frontier);
        for (int i = 1; i < frontier.Count; i++)
        {
            Assert.True(frontier[i].TokensPerSecondPerUser <= frontier[i - 1].TokensPerSecondPerUser);
            Assert.True(frontier[i].TokensPerSecondPerGpu > frontier[i - 1].TokensPerSecondPerGpu);
        }
        foreach (var f in frontier)
            Assert.DoesNotContain(points, x => x.TokensPerSecondPerGpu >= f.TokensPerSecondPerGpu && x.TokensPerSecondPerUser >= f.TokensPerSecondPerUser
                && (x.TokensPerSecondPerGpu > f.TokensPerSecondPerGpu || x.TokensPerSecondPerUser > f.TokensPerSecondPerUser));
    }

    [Fact]
    public void LargerBatchesRaisePerGpuThroughputAndLowerPerUserSpeed()
    {
        foreach (var group in ScaleModel.Simulate(Params, Options()).GroupBy(x => x.Ep))
        {
            var list = group.ToList();
            for (int i = 1; i < list.Count; i++)
            {
                Assert.True(list[i].TokensPerSecondPerGpu > list[i - 1].TokensPerSecondPerGpu, $"EP{group.Key} T={list[i].TokensPerGpu}");
                Assert.True(list[i].TokensPerSecondPerUser <= list[i - 1].TokensPerSecondPerUser * 1.001, $"EP{group.Key} T={list[i].TokensPerGpu}");
            }
        }
    }

    [Fact]
    public void WiderExpertParallelismLoadsFewerWeightsPerGpu()
    {
        var points = ScaleModel.Simulate(Params, Options(ep: [8, 32])).Where(x => x.TokensPerGpu == 256).ToList();
        var (ep8, ep32) = (points.Single(x => x.Ep == 8), points.Single(x => x.Ep == 32));
        // Every held expert is hit at 256 tokens per GPU: EP8 streams 32 experts per GPU, EP32 8.
        Assert.Equal(4, ep8.Layer.ExpertWeightUs / ep32.Layer.ExpertWeightUs, 0.05);
        Assert.True(ep32.Layer.TotalUs < ep8.Layer.TotalUs);
    }

    [Fact]
    public void OnlineEplbBalancesSkewedLoadsBetterThanNone()
    {
        var none = ScaleModel.Simulate(Params, Options(eplb: EplbMode.None, zipf: 1.0, ep: [32]));
        var online = ScaleModel.Simulate(Params, Options(eplb: EplbMode.Online, zipf: 1.0, ep: [32]));
        var stat = ScaleModel.Simulate(Params, Options(eplb: EplbMode.Static, zipf: 1.0, ep: [32]));
        var (n, o, s) = (none.Single(x => x.TokensPerGpu == 1024), online.Single(x => x.TokensPerGpu == 1024), stat.Single(x => x.TokensPerGpu == 1024));
        Assert.True(n.Imbalance > 1.5, $"zipf 1.0 without EPLB: imbalance {n.Imbalance}");
        Assert.True(o.Imbalance < n.Imbalance && s.Imbalance < n.Imbalance);
        Assert.True(o.Layer.ExpertsUs < n.Layer.ExpertsUs);
    }

    [Fact]
    public void LinkPresetsScaleTheFittedLinkByNominalBandwidth()
    {
        double bytes = 64e6;
        double h200 = LinkPreset.H200Nvlink.AllToAllUs(Params, 8, bytes), nvl = LinkPreset.Nvl72.AllToAllUs(Params, 8, bytes);
        Assert.Equal(Params.Link.Us(bytes), h200, 1e-9);
        Assert.Equal(8 + (h200 - 8) / 2, nvl, 1e-9);
        Assert.Equal(h200, LinkPreset.Ib400.AllToAllUs(Params, 8, bytes), 1e-9);
        Assert.True(LinkPreset.Ib400.AllToAllUs(Params, 32, bytes) > 5 * LinkPreset.Nvl72.AllToAllUs(Params, 32, bytes));
    }

    [Fact]
    public void ReplicasSplitAnExpertsRows()
    {
        var (rows, active) = ScaleModel.Loads([10, 3, 0, 1], [[0, 1], [0, 2], [3, 2]]);
        Assert.Equal([5 + 3, 5 + 0, 1 + 0], rows);
        Assert.Equal([2, 1, 1], active);
        Assert.Equal([[0, 1], [2, 3, 4], [5, 6, 7]], ScaleModel.Contiguous(8, 3));
    }

    [Fact]
    public void ZipfPopularityIsNormalisedAndSkewed()
    {
        var uniform = ScaleModel.Popularity(256, 0, 1);
        Assert.All(uniform, p => Assert.Equal(1.0 / 256, p, 1e-12));
        var skewed = ScaleModel.Popularity(256, 1.2, 1);
        Assert.Equal(1, skewed.Sum(), 1e-9);
        Assert.True(skewed.Max() > 20 * skewed.Min());
    }
}
