using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>
/// The whole-phase host costs (HostParams.RoutePhase, ExpertsPhase): their fit, their calibration from host_launch phase
/// rows, and how the model prices a rank's route and experts with them; files without them price op by op as before.
/// </summary>
public sealed class HostPhaseCostTests
{
    [Fact]
    public void TheFitRecoversAnExactLineAndKeepsBothPartsNonNegative()
    {
        var line = HostPhaseCost.Fit([(1, 45), (8, 52), (64, 108), (512, 556)]); // 44 + 1 * units
        Assert.Equal(44, line.FixedUs, 1e-9);
        Assert.Equal(1, line.PerUnitUs, 1e-9);
        Assert.Equal(0, line.Us(0));
        Assert.Equal(108, line.Us(64), 1e-9);

        // One point: a constant.
        Assert.Equal(new HostPhaseCost(30, 0), HostPhaseCost.Fit([(64, 30)]));
        // Falling with the units: a constant, the relative least-squares mean sum(1/t) / sum(1/t^2).
        var falling = HostPhaseCost.Fit([(1, 20), (100, 10)]);
        Assert.Equal(0, falling.PerUnitUs);
        Assert.Equal((1 / 20.0 + 1 / 10.0) / (1 / 400.0 + 1 / 100.0), falling.FixedUs, 1e-9);
        // A line through a negative intercept: through the origin instead, sum(x/t) / sum(x^2/t^2).
        var origin = HostPhaseCost.Fit([(10, 5), (20, 15)]);
        Assert.Equal(0, origin.FixedUs);
        Assert.Equal((10 / 5.0 + 20 / 15.0) / (100 / 25.0 + 400 / 225.0), origin.PerUnitUs, 1e-9);
        Assert.Throws<ArgumentException>(() => HostPhaseCost.Fit([]));
        Assert.Throws<ArgumentException>(() => HostPhaseCost.Fit([(0, 10)]));
    }

    // As bench -- sweep host_launch --json writes it, with the whole-phase rows (HostPhaseRows); Ms is host ms per call.
    private const string SweepWithPhases = """
        {"device":"test GPU","date":"2026-11-30","rows":[
          {"Name":"host router gemm","Shape":"T=64 N=128 K=2048 launches=1","Ms":0.014,"GBps":0},
          {"Name":"host permute","Shape":"T=64 k=8 E=128 H=2048 launches=3","Ms":0.015,"GBps":0},
          {"Name":"host upload","Shape":"ints=512 copies=1","Ms":0.002,"GBps":0},
          {"Name":"host event record","Shape":"events=1","Ms":0.001,"GBps":0},
          {"Name":"host alltoallv","Shape":"ranks=1 rows=512 H=2048","Ms":0.020,"GBps":0},
          {"Name":"host route phase","Shape":"T=8 phase=route","Ms":0.048,"GBps":0},
          {"Name":"host route phase","Shape":"T=512 phase=route","Ms":0.300,"GBps":0},
          {"Name":"host experts phase","Shape":"R=64 phase=experts","Ms":0.090,"GBps":0}]}
        """;

    [Fact]
    public void CalibrationFitsEachPhaseFromItsRowsAndKeepsThemOutOfThePerOpParts()
    {
        using var folder = new TempFolder();
        string path = folder.File("host.json");
        File.WriteAllText(path, SweepWithPhases);
        var p = Calibration.Fit([path], DefaultScaleParams.Load(), "default");
        var host = p.Host!;
        Assert.Equal(new HostPhaseCost(48 - 8 * (300 - 48) / 504.0, (300 - 48) / 504.0).FixedUs, host.RoutePhase!.FixedUs, 1e-6);
        Assert.Equal((300 - 48) / 504.0, host.RoutePhase.PerUnitUs, 1e-9);
        Assert.Equal(new HostPhaseCost(90, 0), host.ExpertsPhase);
        Assert.Equal(5, host.LaunchUs, 1e-9); // the permute's 15 us over 3 launches only: the phase rows are not launches
        Assert.Equal(14, host.GemmCallUs!.Value, 1e-9);
        Assert.Contains("route phase", p.Sources["host"]);
        Assert.Equal(host, ScaleParams.FromJson(p.ToJson()).Host); // saved and loaded

        // A sweep without phase rows (every committed one): no phase costs.
        File.WriteAllText(path, SweepWithPhases.Replace("phase=", "old=", StringComparison.Ordinal));
        var old = Calibration.Fit([path], DefaultScaleParams.Load(), "default").Host!;
        Assert.Null(old.RoutePhase);
        Assert.Null(old.ExpertsPhase);
    }

    [Fact]
    public void ThePhasesArePricedWholeWhenMeasuredAndOpByOpOtherwise()
    {
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var perOp = new HostParams(6, 2, 1, 20) { GemmCallUs = 14 };
        var whole = perOp with { RoutePhase = new HostPhaseCost(40, 0.25), ExpertsPhase = new HostPhaseCost(80, 0.01) };
        Assert.Equal(EpHostOps.Route(c, 64).Us(perOp), EpHostOps.RouteUs(perOp, c, 64), 1e-9);
        Assert.Equal(40 + 0.25 * 64, EpHostOps.RouteUs(whole, c, 64), 1e-9);
        Assert.Equal(0, EpHostOps.RouteUs(whole, c, 0));
        Assert.Equal(0, EpHostOps.RouteUs(null, c, 64));

        var opSteps = EpHostOps.ExpertSteps(512, 64).Select(s => s.Us(perOp)).ToArray();
        Assert.Equal(opSteps, EpHostOps.ExpertStepsUs(perOp, 512, 64));
        var wholeSteps = EpHostOps.ExpertStepsUs(whole, 512, 64);
        Assert.Equal(80 + 0.01 * 512, wholeSteps.Sum(), 1e-9);
        for (int i = 0; i < opSteps.Length; i++) // shared in proportion to the op-by-op prices
            Assert.Equal(opSteps[i] / opSteps.Sum(), wholeSteps[i] / wholeSteps.Sum(), 1e-9);
        Assert.Empty(EpHostOps.ExpertStepsUs(whole, 0, 64));
        // Op prices of zero: the measured total evenly over the four steps.
        Assert.Equal([2.0, 2.0, 2.0, 2.0], EpHostOps.ExpertStepsUs(new HostParams(0, 0, 0, 0) { ExpertsPhase = new HostPhaseCost(8, 0) }, 512, 64));
    }

    [Fact]
    public void ALongerExpertsEnqueueDelaysRankOnesExpertsAndRankZerosCombineWaits()
    {
        var p = DefaultScaleParams.Load();
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var perOp = p with { Host = new HostParams(6, 2, 1, 20) { GemmCallUs = 14 } };
        var whole = p with { Host = perOp.Host! with { ExpertsPhase = new HostPhaseCost(150, 0) } };
        var ranked = HostSchedule.InProcessBench with { Order = EpEnqueueOrder.Ranked };
        var a = ScaleModel.Predict(perOp, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: ranked);
        var b = ScaleModel.Predict(whole, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: ranked);
        Assert.True(b.Timed!.CombineUs > a.Timed!.CombineUs, $"{b.Timed.CombineUs} against {a.Timed.CombineUs}");
        Assert.True(b.TotalUs > a.TotalUs);
        // Without a host part the phase costs cannot apply: the same as before.
        var none = ScaleModel.Predict(p, c, LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64], schedule: ranked);
        Assert.Equal(0, none.HostUs);
    }
}
