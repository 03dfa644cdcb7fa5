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

    [Fact]
    public void ExpertSkewIsTheSlowestRanksExpertsMinusTheFastestAndOnlyThePhaseTimerCountsIt()
    {
        var c = LayerPresets.Get("deepseek-v3");
        double h = c.HiddenSize, inter = c.MoeIntermediateSize, bytes = Calibration.ExpertBytes(c);
        // Hand-worked per-rank experts time: permute in (bf16 read + write), GEMMs on whole 128-row tiles per hit expert,
        // un-permute (F32 read + write).
        double Experts(double rows, double active, double tiledRows) =>
            Params.Movement.Us(rows * h * 4) + Params.Gemm.Us(active * bytes, 2 * tiledRows * 3 * h * inter) + Params.Movement.Us(rows * h * 8);
        var uneven = ScaleModel.Predict(Params, c, LinkPreset.H200Nvlink, [64, 64], [19902, 300], [121, 60]);
        double slowest = Experts(19902, 121, 121 * 256), fastest = Experts(300, 60, 60 * 128);
        Assert.Equal(slowest, uneven.ExpertsUs, 1e-9);
        Assert.Equal(slowest - fastest, uneven.ExpertSkewUs, 1e-9);
        Assert.Equal(uneven.RouteUs + uneven.DispatchUs + uneven.ExpertsUs + uneven.CombineUs + uneven.OutputUs, uneven.TotalUs, 1e-9);
        Assert.Equal(uneven.TotalUs + uneven.ExpertSkewUs, uneven.TimedPhaseSumUs, 1e-9);
        Assert.Equal(uneven.CombineUs + uneven.ExpertSkewUs, uneven.TimedCombineUs, 1e-9);

        // Balanced ranks do not wait; a rank without rows skips its experts and waits for the whole slowest phase.
        Assert.Equal(0, ScaleModel.Predict(Params, c, LinkPreset.H200Nvlink, [64, 64], [500, 500], [70, 70]).ExpertSkewUs, 1e-9);
        var idle = ScaleModel.Predict(Params, c, LinkPreset.H200Nvlink, [0, 1], [8, 0], [8, 0]);
        Assert.Equal(Experts(8, 8, 8 * 128), idle.ExpertSkewUs, 1e-9);
        // One GPU: no all-to-all, nothing to wait for.
        Assert.Equal(0, ScaleModel.Predict(Params, c, LinkPreset.H200Nvlink, [64], [512], [200]).ExpertSkewUs);
    }

    [Fact]
    public void SimulationKeepsTheSkewOutOfTheLayerTime()
    {
        var point = ScaleModel.Simulate(Params, Options(zipf: 1.2, ep: [8]) with { TokensPerGpu = [64] }).Single();
        Assert.True(point.Layer.ExpertSkewUs > 0, "zipf-skewed loads on 8 GPUs must leave some GPU waiting");
        Assert.Equal(1e6 / (58 * point.Layer.TotalUs), point.TokensPerSecondPerUser, 1e-9 * point.TokensPerSecondPerUser);
    }

    [Fact]
    public void ExpertsOfAShapeWithItsOwnGemmFitUseItAndOtherShapesTheOverallOne()
    {
        var qwen = LayerPresets.Get("qwen3-30b-a3b");
        var deepseek = LayerPresets.Get("deepseek-v3");
        var slowQwen = new GemmParams(30, 1000, 50);
        var p = Params with { GemmByShape = new() { [ScaleParams.ShapeKey(qwen.HiddenSize, qwen.MoeIntermediateSize)] = slowQwen } };
        Assert.Same(slowQwen, p.GemmFor(2048, 768));
        Assert.Same(p.Gemm, p.GemmFor(7168, 2048));

        double rows = 4096, active = 64, h = qwen.HiddenSize;
        double expected = p.Movement.Us(rows * h * 4) + slowQwen.Us(active * Calibration.ExpertBytes(qwen), 2 * (64 * 128) * 3 * h * qwen.MoeIntermediateSize) + p.Movement.Us(rows * h * 8);
        var withShape = ScaleModel.Predict(p, qwen, LinkPreset.H200Nvlink, [512], [rows], [active]);
        Assert.Equal(expected, withShape.ExpertsUs, 1e-9);
        Assert.True(withShape.ExpertsUs > ScaleModel.Predict(Params, qwen, LinkPreset.H200Nvlink, [512], [rows], [active]).ExpertsUs);
        // DeepSeek's experts are unaffected by Qwen3's fit.
        Assert.Equal(ScaleModel.Predict(Params, deepseek, LinkPreset.H200Nvlink, [64], [512], [100]).ExpertsUs,
            ScaleModel.Predict(p, deepseek, LinkPreset.H200Nvlink, [64], [512], [100]).ExpertsUs, 1e-9);
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(1, 1, 128)]
    [InlineData(128, 1, 128)]
    [InlineData(129, 1, 256)]
    [InlineData(16384, 128, 16384)]   // 128 rows per expert: whole tiles, no padding
    [InlineData(19902, 121, 30976)]   // 164.5 rows per expert: two tiles each
    [InlineData(4149, 64, 8192)]      // 64.8 rows per expert: one tile each
    public void ExpertRowsAreRoundedUpToWholeTilesPerHitExpert(double rows, double active, double tiled) =>
        Assert.Equal(tiled, Calibration.TiledRows(rows, active), 1e-9);

    [Fact]
    public void SimulationCountsTilesFromEachSlotsOwnRows()
    {
        // Experts 0, 1 on GPU 0 with 129 and 3 rows: 2 + 1 tiles, where the even-spread estimate of 132 rows on 2 experts says 2.
        // Expert 2 is replicated on GPUs 1 and 2: 200 rows split 100 + 100, one tile each.
        long[] counts = [129, 3, 200];
        int[][] slots = [[0, 1], [2], [2]];
        Assert.Equal([3 * 128.0, 128, 128], ScaleModel.TiledRows(counts, slots));
        Assert.Equal(2 * 128.0, Calibration.TiledRows(132, 2));
        var (rows, active) = ScaleModel.Loads(counts, slots);
        Assert.Equal([132.0, 100, 100], rows);
        Assert.Equal([2.0, 1, 1], active);
    }
}
