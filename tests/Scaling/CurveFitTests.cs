using System.Text.Json;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The scale model's fits recover the parameters that generated synthetic measurements.</summary>
public sealed class CurveFitTests
{
    [Fact]
    public void LinearFitRecoversLatencyAndBandwidth()
    {
        var truth = new LinearCost(8, 250);
        var points = new[] { 1e3, 64e3, 1e6, 16e6, 256e6 }.Select(b => (b, truth.Us(b))).ToList();
        var fit = CurveFit.FitLinear(points);
        Assert.Equal(8, fit.LatencyUs, 1e-6);
        Assert.Equal(250, fit.GBs, 1e-6);
    }

    [Fact]
    public void LinearFitKeepsLatencyNonNegative()
    {
        // Points through the origin with noise that would give a negative intercept.
        var fit = CurveFit.FitLinear([(1e6, 3.9), (2e6, 8.1), (4e6, 16.0)]);
        Assert.True(fit.LatencyUs >= 0);
        Assert.InRange(fit.GBs, 240, 260);
    }

    [Fact]
    public void GemmFitRecoversLaunchBandwidthAndRateWithinTwoPercent()
    {
        var truth = new GemmParams(12, 3000, 400);
        var points = new List<(double, double, double)>();
        foreach (double experts in new[] { 4, 16, 64 })
            foreach (double rowsPerExpert in new[] { 1, 8, 64, 512, 4096 })
            {
                double bytes = experts * 88e6, flops = 2 * experts * rowsPerExpert * 3 * 7168 * 2048;
                points.Add((bytes, flops, truth.Us(bytes, flops)));
            }
        var fit = CurveFit.FitGemm(points);
        Assert.Equal(12, fit.LaunchUs, 12 * 0.02);
        Assert.Equal(3000, fit.WeightGBs, 3000 * 0.02);
        Assert.Equal(400, fit.MatrixTflops, 400 * 0.02);
    }

    [Fact]
    public void CalibrationFitsEveryPartFromBenchmarkJsonAndNamesItsSources()
    {
        var gemm = new GemmParams(15, 2500, 500); // ridge 200 flop per weight byte, above a whole 128-row tile's 128 (as on an H200)
        var link = new LinearCost(9, 200);
        var routing = new LinearCost(12, 300);
        var movement = new LinearCost(6, 2800);
        var c = LayerPresets.Get("deepseek-v3");
        using var folder = new TempFolder();
        var sweepRows = new List<object>();
        foreach (int e in new[] { 4, 16, 64 })
            foreach (int m in new[] { 1, 16, 256, 2048 })
            {
                double bytes = e * Calibration.ExpertBytes(c), flops = Calibration.ExpertFlops(c, e * m, e);
                sweepRows.Add(new { Name = "deepseek-v3 ep experts", Shape = $"E={e} m={m} rows={e * m} active={e}", Ms = gemm.Us(bytes, flops) / 1e3, GBps = 0.0 });
            }
        foreach (double b in new[] { 1e4, 1e6, 1e8 })
        {
            sweepRows.Add(new { Name = "routing deepseek grouped", Shape = "x", Ms = routing.Us(b) / 1e3, GBps = b / (routing.Us(b) * 1e-6) / 1e9 });
            sweepRows.Add(new { Name = "permute (indices + gather)", Shape = "x", Ms = movement.Us(b) / 1e3, GBps = b / (movement.Us(b) * 1e-6) / 1e9 });
        }
        string sweep = Write(folder, "sweep.json", JsonSerializer.Serialize(new { device = "test GPU", rows = sweepRows }));
        var a2aRows = new[] { 1e3, 1e5, 1e7, 1e9 }.Select(b => new { Algorithm = "ours", PeerBytesPerRank = b, TimeUs = link.Us(b) }).ToList();
        string a2a = Write(folder, "a2a.json", JsonSerializer.Serialize(new { kind = "alltoall", device = "test GPU", ranks = 2, rows = a2aRows }));

        var fitted = Calibration.Fit([sweep, a2a], fallback: null);
        Assert.Equal(15, fitted.Gemm.LaunchUs, 0.3);
        Assert.Equal(2500, fitted.Gemm.WeightGBs, 50.0);
        Assert.Equal(500, fitted.Gemm.MatrixTflops, 10.0);
        Assert.Equal(9, fitted.Link.LatencyUs, 1e-6);
        Assert.Equal(200, fitted.Link.GBs, 1e-6);
        Assert.Equal(12, fitted.Routing.LatencyUs, 1e-6);
        Assert.Equal(2800, fitted.Movement.GBs, 1e-3);
        Assert.Contains("sweep.json", fitted.Sources["gemm"]);
        Assert.Contains("a2a.json", fitted.Sources["link"]);

        var roundTrip = ScaleParams.FromJson(fitted.ToJson());
        Assert.Equal(fitted.Gemm, roundTrip.Gemm);
        Assert.Equal(fitted.Link, roundTrip.Link);
        Assert.Equal(fitted.Sources["gemm"], roundTrip.Sources["gemm"]);
    }

    [Fact]
    public void CalibrationFitsEachExpertShapeOfTheSweepOnItsOwnAsWellAsAllTogether()
    {
        // Two models' ep-experts rows, each timed by its own cost shape: the per-shape fits must recover each.
        var deepseekCost = new GemmParams(20, 4000, 700);
        var qwenCost = new GemmParams(10, 1500, 250);
        using var folder = new TempFolder();
        var sweepRows = new List<object>();
        foreach (var (name, cost) in new[] { ("deepseek-v3", deepseekCost), ("qwen3-30b-a3b", qwenCost) })
        {
            var c = LayerPresets.Get(name);
            foreach (int e in new[] { 2, 8, 32 })
                foreach (int m in new[] { 1, 16, 256, 2048 })
                {
                    double bytes = e * Calibration.ExpertBytes(c), flops = Calibration.ExpertFlops(c, e * m, e);
                    sweepRows.Add(new { Name = $"{name} ep experts", Shape = $"E={e} m={m} rows={e * m} active={e}", Ms = cost.Us(bytes, flops) / 1e3, GBps = 0.0 });
                }
        }
        string sweep = Write(folder, "sweep.json", JsonSerializer.Serialize(new { device = "test GPU", rows = sweepRows }));
        var fitted = Calibration.Fit([sweep], DefaultScaleParams.Load(), "base.json");

        var qwen = fitted.GemmFor(2048, 768);
        var deepseek = fitted.GemmFor(7168, 2048);
        Assert.Equal(2, fitted.GemmByShape.Count);
        Assert.Equal(qwenCost.WeightGBs, qwen.WeightGBs, qwenCost.WeightGBs * 0.02);
        Assert.Equal(qwenCost.MatrixTflops, qwen.MatrixTflops, qwenCost.MatrixTflops * 0.02);
        Assert.Equal(deepseekCost.WeightGBs, deepseek.WeightGBs, deepseekCost.WeightGBs * 0.02);
        Assert.Equal(deepseekCost.MatrixTflops, deepseek.MatrixTflops, deepseekCost.MatrixTflops * 0.02);
        // The overall fit is one compromise for both, so it misses the slower shape's rate.
        Assert.True(Math.Abs(fitted.Gemm.MatrixTflops - qwenCost.MatrixTflops) > 0.1 * qwenCost.MatrixTflops);
        Assert.Contains("gemm H=2048 I=768", fitted.Sources.Keys);

        var roundTrip = ScaleParams.FromJson(fitted.ToJson());
        Assert.Equal(qwen, roundTrip.GemmFor(2048, 768));

        // A file without GEMM rows keeps the fallback's GEMM fits, per shape included.
        string a2a = Write(folder, "a2a.json", JsonSerializer.Serialize(new { kind = "alltoall", device = "x", ranks = 2,
            rows = new[] { 1e3, 1e9 }.Select(b => new { Algorithm = "ours", PeerBytesPerRank = b, TimeUs = 5 + b / 1e5 }).ToList() }));
        Assert.Equal(qwen, Calibration.Fit([a2a], fitted, "fitted.json").GemmFor(2048, 768));
    }

    [Fact]
    public void CalibrationTakesMissingPartsFromTheFallbackOrRefuses()
    {
        using var folder = new TempFolder();
        var rows = new[] { 1e3, 1e6, 1e9 }.Select(b => new { Algorithm = "nccl", PeerBytesPerRank = b, TimeUs = 5 + b / 1e5 }).ToList();
        string a2a = Write(folder, "a2a.json", JsonSerializer.Serialize(new { kind = "alltoall", device = "x", ranks = 2, rows }));
        var fallback = DefaultScaleParams.Load();
        var fitted = Calibration.Fit([a2a], fallback, "base.json");
        Assert.Equal(fallback.Gemm, fitted.Gemm);
        Assert.StartsWith("from base.json", fitted.Sources["gemm"]);
        Assert.Equal(100, fitted.Link.GBs, 1e-6);
        Assert.Contains("gemm", Assert.Throws<InvalidDataException>(() => Calibration.Fit([a2a], null)).Message);
    }

    private static string Write(TempFolder folder, string name, string text)
    {
        string path = folder.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void DefaultParamsAreFittedFromTheRepositoryMeasurements()
    {
        var p = DefaultScaleParams.Load();
        Assert.Contains("H200", p.Sources["gemm"]);
        Assert.Contains("alltoall", p.Sources["link"]);
        Assert.Contains("H200", p.Sources["link"]);
        Assert.InRange(p.Gemm.WeightGBs, 1000, 4000);
    }
}
