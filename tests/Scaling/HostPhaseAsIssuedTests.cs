using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>
/// The whole-phase host costs measured the way the EP forward issues the phases (HostParams.RoutePhaseAfterUpload: the route
/// right after the rank's input upload; ExpertsPhaseBusy: the experts phase behind a running kernel): their calibration from
/// the host_launch sweep's "after=" rows, where the model uses them, and that sweeps and params without them price as before.
/// </summary>
public sealed class HostPhaseAsIssuedTests
{
    // As bench -- sweep host_launch --json writes it (HostPhaseRows, HostUploadRows, HostSwitchRows); Ms is host ms per call.
    private const string IdleRows = """
          {"Name":"host router gemm","Shape":"T=64 N=128 K=2048 launches=1","Ms":0.014,"GBps":0},
          {"Name":"host permute","Shape":"T=64 k=8 E=128 H=2048 launches=3","Ms":0.015,"GBps":0},
          {"Name":"host upload","Shape":"ints=512 copies=1","Ms":0.002,"GBps":0},
          {"Name":"host event record","Shape":"events=1","Ms":0.001,"GBps":0},
          {"Name":"host alltoallv","Shape":"ranks=1 rows=512 H=2048","Ms":0.020,"GBps":0},
          {"Name":"host route phase","Shape":"T=8 phase=route","Ms":0.048,"GBps":0},
          {"Name":"host route phase","Shape":"T=512 phase=route","Ms":0.300,"GBps":0},
          {"Name":"host experts phase","Shape":"R=64 phase=experts","Ms":0.090,"GBps":0}
        """;

    // The rows the route and experts are priced by as issued (an exact line each), and rows no fit may take in: the route
    // after a copy or a kernel (not how the forward issues it) and the two-device rows.
    private const string AsIssuedRows = """
          {"Name":"host route phase, after upload","Shape":"T=1 phase=route after=upload","Ms":0.025,"GBps":0},
          {"Name":"host route phase, after upload","Shape":"T=64 phase=route after=upload","Ms":0.040,"GBps":0},
          {"Name":"host route phase, busy stream","Shape":"T=64 phase=route after=kernel","Ms":0.999,"GBps":0},
          {"Name":"host route phase, after copy","Shape":"T=64 phase=route after=copy","Ms":0.888,"GBps":0},
          {"Name":"host experts phase, busy stream","Shape":"R=512 phase=experts after=kernel","Ms":0.055,"GBps":0},
          {"Name":"host experts phase, busy stream","Shape":"R=4096 phase=experts after=kernel","Ms":0.064,"GBps":0},
          {"Name":"host context switch","Shape":"devices=2 switches=1","Ms":0.00009,"GBps":0},
          {"Name":"host launch, alternating devices","Shape":"devices=2 ops=1","Ms":0.777,"GBps":0},
          {"Name":"host route phase, two ranks in turn","Shape":"T=64 phase=route devices=2","Ms":0.666,"GBps":0}
        """;

    private static string Sweep(params string[] rows) => "{\"device\":\"test GPU\",\"date\":\"2026-11-30\",\"rows\":[" + string.Join(",", rows) + "]}";

    private static HostParams Calibrate(TempFolder folder, string json, out ScaleParams fitted)
    {
        string path = folder.File($"host-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        fitted = Calibration.Fit([path], DefaultScaleParams.Load(), "default");
        return fitted.Host!;
    }

    [Fact]
    public void CalibrationFitsTheAsIssuedRowsApartAndLeavesEveryOtherPartAsWithoutThem()
    {
        using var folder = new TempFolder();
        var without = Calibrate(folder, Sweep(IdleRows), out _);
        var with = Calibrate(folder, Sweep(IdleRows, AsIssuedRows), out var fitted);

        Assert.Null(without.RoutePhaseAfterUpload);
        Assert.Null(without.ExpertsPhaseBusy);
        // Route after upload: 25 us at 1 token, 40 at 64: 15/63 us a token.
        Assert.Equal(15 / 63.0, with.RoutePhaseAfterUpload!.PerUnitUs, 1e-9);
        Assert.Equal(25 - 15 / 63.0, with.RoutePhaseAfterUpload.FixedUs, 1e-6);
        // Experts behind a kernel: 55 us at 512 rows, 64 at 4096.
        Assert.Equal(9 / 3584.0, with.ExpertsPhaseBusy!.PerUnitUs, 1e-9);
        Assert.Equal(55 - 512 * 9 / 3584.0, with.ExpertsPhaseBusy.FixedUs, 1e-6);
        // The idle phases and the per-op parts are what the sweep without the new rows gives: the after=copy, after=kernel
        // route rows and the two-device rows enter no fit.
        Assert.Equal(without, with with { RoutePhaseAfterUpload = null, ExpertsPhaseBusy = null });
        Assert.Contains("route after=upload phase", fitted.Sources["host"]);
        Assert.Contains("experts after=kernel phase", fitted.Sources["host"]);
        Assert.Equal(with, ScaleParams.FromJson(fitted.ToJson()).Host); // saved and loaded
    }

    [Fact]
    public void ParamsWithoutTheAsIssuedCostsLoadWithoutThemAndPriceAsTheIdleRowsOrOpByOp()
    {
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var p = DefaultScaleParams.Load() with { Host = new HostParams(6, 2, 1, 20) { GemmCallUs = 14, RoutePhase = new HostPhaseCost(20, 0.01), ExpertsPhase = new HostPhaseCost(40, 0.002) } };
        // A params file written before these fields: the keys are absent.
        var node = System.Text.Json.Nodes.JsonNode.Parse(p.ToJson())!;
        node["Host"]!.AsObject().Remove(nameof(HostParams.RoutePhaseAfterUpload));
        node["Host"]!.AsObject().Remove(nameof(HostParams.ExpertsPhaseBusy));
        var old = ScaleParams.FromJson(node.ToJsonString()).Host!;
        Assert.Null(old.RoutePhaseAfterUpload);
        Assert.Null(old.ExpertsPhaseBusy);
        Assert.Equal(p.Host, old);

        // The route after an upload falls back to the idle row, and without that to the ops one by one.
        Assert.Equal(20 + 0.01 * 64, EpHostOps.RouteUs(old, c, 64, afterUpload: true), 1e-12);
        var perOp = old with { RoutePhase = null, ExpertsPhase = null };
        Assert.Equal(EpHostOps.Route(c, 64).Us(perOp), EpHostOps.RouteUs(perOp, c, 64, afterUpload: true), 1e-12);
        Assert.Equal(EpHostOps.ExpertSteps(512, 64).Select(s => s.Us(perOp)).ToArray(), EpHostOps.ExpertStepsUs(perOp, 512, 64));
        Assert.Equal(40 + 0.002 * 512, EpHostOps.ExpertStepsUs(old, 512, 64).Sum(), 1e-9);
    }

    [Fact]
    public void TheRouteAfterUploadPricesOnlyALayerThatUploadsItsInputAndTheBusyExpertsEveryLayer()
    {
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var baseline = DefaultScaleParams.Load() with { Host = new HostParams(6, 2, 1, 20) { GemmCallUs = 14, RoutePhase = new HostPhaseCost(20, 0), ExpertsPhase = new HostPhaseCost(40, 0) } };
        var slowRoute = baseline with { Host = baseline.Host! with { RoutePhaseAfterUpload = new HostPhaseCost(400, 0) } };
        LayerBreakdown Predict(ScaleParams p, HostSchedule s) => ScaleModel.Predict(p, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: s);

        // Hidden states on the device (one process per GPU): no upload before the route, the idle row, the same prediction.
        Assert.Equal(Predict(baseline, HostSchedule.ProcessPerGpu).TotalUs, Predict(slowRoute, HostSchedule.ProcessPerGpu).TotalUs);
        Assert.Equal(Predict(baseline, HostSchedule.ProcessPerGpu).Timed, Predict(slowRoute, HostSchedule.ProcessPerGpu).Timed);
        // The EP layer bench uploads its input: the route takes at least its 400 us of enqueue, and the layer grows.
        var bench = Predict(slowRoute, HostSchedule.InProcessBench);
        Assert.True(bench.Timed!.RouteUs >= 400, $"route {bench.Timed.RouteUs} us");
        Assert.True(bench.TotalUs > Predict(baseline, HostSchedule.InProcessBench).TotalUs + 300);

        // The experts phase follows the dispatch's kernel in either schedule: the busy row prices both.
        var slowExperts = baseline with { Host = baseline.Host! with { ExpertsPhaseBusy = new HostPhaseCost(900, 0) } };
        foreach (var schedule in new[] { HostSchedule.ProcessPerGpu, HostSchedule.InProcessBench })
        {
            var a = Predict(baseline, schedule);
            var b = Predict(slowExperts, schedule);
            // (its enqueue may begin while the dispatch still runs, so the timed phase holds most of the 900 us, not all)
            Assert.True(b.Timed!.ExpertsUs > a.Timed!.ExpertsUs + 500, $"{schedule}: experts {b.Timed.ExpertsUs} against {a.Timed.ExpertsUs} us");
            Assert.True(b.TotalUs > a.TotalUs + 500, $"{schedule}: {b.TotalUs} against {a.TotalUs}");
        }
    }
}
