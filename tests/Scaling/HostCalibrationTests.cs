using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The host part of the parameters: fitted from host_launch sweep rows, absent (term 0) in older files.</summary>
public sealed class HostCalibrationTests
{
    // As bench -- sweep host_launch --json writes it: Ms is host milliseconds per call.
    private const string HostSweep = """
        {"device":"test GPU","date":"2026-11-30","rows":[
          {"Name":"host router gemm","Shape":"T=64 N=128 K=2048 launches=1","Ms":0.006,"GBps":0},
          {"Name":"host permute","Shape":"T=64 k=8 E=128 H=2048 launches=3","Ms":0.015,"GBps":0},
          {"Name":"host combine","Shape":"T=512 k=1 H=2048 launches=1","Ms":0.004,"GBps":0},
          {"Name":"host upload","Shape":"ints=512 copies=1","Ms":0.003,"GBps":0},
          {"Name":"host download","Shape":"ints=129 copies=1","Ms":0.005,"GBps":0},
          {"Name":"host event record","Shape":"events=1","Ms":0.0015,"GBps":0},
          {"Name":"host alltoallv","Shape":"ranks=1 rows=512 H=2048","Ms":0.012,"GBps":0}]}
        """;

    [Fact]
    public void EachHostPartIsAPerUnitCostWithTheRestFromTheFallback()
    {
        using var folder = new TempFolder();
        string path = folder.File("host.json");
        File.WriteAllText(path, HostSweep);
        var fallback = DefaultScaleParams.Load();
        var p = Calibration.Fit([path], fallback, "default");
        Assert.NotNull(p.Host);
        // Launch: per launch 5 (permute), 4 us (combine); the relative least-squares cost is sum(x/t) / sum(x^2/t^2). The
        // router GEMM's row is a GEMM call of its own (6 us), not a launch.
        double[] perLaunch = [5, 4];
        Assert.Equal(perLaunch.Sum(c => 1 / c) / perLaunch.Sum(c => 1 / (c * c)), p.Host!.LaunchUs, 1e-9);
        Assert.Equal(6, p.Host.GemmCallUs!.Value, 1e-9);
        double[] perCopy = [3, 5];
        Assert.Equal(perCopy.Sum(c => 1 / c) / perCopy.Sum(c => 1 / (c * c)), p.Host.CopyUs, 1e-9);
        Assert.Equal(1.5, p.Host.EventUs, 1e-9);
        Assert.Equal(12, p.Host.CollectivePerRankUs, 1e-9);
        Assert.Contains("host.json", p.Sources["host"]);
        Assert.Equal(fallback.Gemm, p.Gemm);
        Assert.Equal(fallback.Link, p.Link);

        // Saved and loaded, the host part survives.
        Assert.Equal(p.Host, ScaleParams.FromJson(p.ToJson()).Host);
    }

    [Fact]
    public void ParamsWithoutAHostPartLoadAndPredictAsBefore()
    {
        var old = DefaultScaleParams.Load();
        Assert.Null(old.Host);
        var json = old.ToJson();
        var withoutKey = ScaleParams.FromJson(json.Replace("\"Host\": null,", "", StringComparison.Ordinal));
        Assert.Null(withoutKey.Host);
        // Calibrating without host rows keeps the fallback's (none) and says so.
        using var folder = new TempFolder();
        string a2a = folder.File("a2a.json");
        File.WriteAllText(a2a, """{"kind":"alltoall","device":"x","ranks":2,"rows":[{"Algorithm":"ours","PeerBytesPerRank":1000,"TimeUs":10},{"Algorithm":"ours","PeerBytesPerRank":1000000000,"TimeUs":5010}]}""");
        var refit = Calibration.Fit([a2a], old);
        Assert.Null(refit.Host);
        Assert.Contains("no host enqueue term", refit.Sources["host"]);

        // No host part: the same prediction as host costs of zero, and nothing added by the host.
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var zero = old with { Host = new HostParams(0, 0, 0, 0) };
        foreach (var threads in new[] { HostThreads.OneForAllRanks, HostThreads.OnePerRank })
        {
            var a = ScaleModel.Predict(old, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: new HostSchedule(threads, true, true));
            var b = ScaleModel.Predict(zero, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: new HostSchedule(threads, true, true));
            Assert.Equal(a.TotalUs, b.TotalUs, 1e-9);
            Assert.Equal(a.TimedPhaseSumUs, b.TimedPhaseSumUs, 1e-9);
            Assert.Equal(0, a.HostUs);
        }
    }

    [Fact]
    public void HostCostsOnlyAddTimeAndOneThreadAddsMoreThanOnePerRank()
    {
        var baseParams = DefaultScaleParams.Load();
        var host = baseParams with { Host = new HostParams(20, 10, 2, 30) };
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var none = ScaleModel.Predict(baseParams, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64]);
        var perRank = ScaleModel.Predict(host, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: HostSchedule.ProcessPerGpu);
        var oneThread = ScaleModel.Predict(host, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: HostSchedule.ProcessPerGpu with { Threads = HostThreads.OneForAllRanks });
        Assert.True(perRank.TotalUs > none.TotalUs);
        Assert.True(oneThread.TotalUs > perRank.TotalUs);
        Assert.Equal(perRank.TotalUs - none.TotalUs, perRank.HostUs, 1e-9);
        Assert.Equal(none.ExpertWeightUs, oneThread.ExpertWeightUs);
        // Balanced ranks: the device-only model has no wait; one host thread starts rank 1's experts late, so rank 0's combine waits.
        Assert.Equal(0, none.ExpertSkewUs, 1e-9);
        Assert.True(oneThread.Timed!.CombineUs > perRank.Timed!.CombineUs);

        // Host arrays (the bench's input upload and output download) cost host time a deployment keeping hidden states on the GPU does not pay.
        var copiesOnly = baseParams with { Host = new HostParams(0, 100, 0, 0) };
        double onDevice = ScaleModel.Predict(copiesOnly, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64]).TotalUs;
        double withArrays = ScaleModel.Predict(copiesOnly, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: HostSchedule.ProcessPerGpu with { HostArrays = true }).TotalUs;
        Assert.True(withArrays > onDevice, $"{withArrays} against {onDevice}");
    }
}
