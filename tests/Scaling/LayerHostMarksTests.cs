using System.Globalization;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>
/// The route's and experts' host enqueue calibrated from an EP layer run's own host marks (LayerHostMarks): exact costs from
/// synthetic marks, the marks that must not enter the fit, the runs refused, and the source named for every host parameter.
/// </summary>
public sealed class LayerHostMarksTests
{
    // A host_launch sweep (Ms: host ms per call): event records 1.5 us, the route after upload and the busy experts as its rows.
    private const string Sweep = """
        {"device":"test GPU","date":"2026-11-30","rows":[
          {"Name":"host permute","Shape":"T=64 k=8 E=128 H=2048 launches=3","Ms":0.015,"GBps":0},
          {"Name":"host upload","Shape":"ints=512 copies=1","Ms":0.002,"GBps":0},
          {"Name":"host event record","Shape":"events=1","Ms":0.0015,"GBps":0},
          {"Name":"host alltoallv","Shape":"ranks=1 rows=512 H=2048","Ms":0.020,"GBps":0},
          {"Name":"host route phase, after upload","Shape":"T=1 phase=route after=upload","Ms":0.012,"GBps":0},
          {"Name":"host route phase, after upload","Shape":"T=64 phase=route after=upload","Ms":0.015,"GBps":0},
          {"Name":"host experts phase, busy stream","Shape":"R=512 phase=experts after=kernel","Ms":0.024,"GBps":0},
          {"Name":"host experts phase, busy stream","Shape":"R=4096 phase=experts after=kernel","Ms":0.030,"GBps":0}]}
        """;

    private const double EventUs = 1.5;

    // The costs the synthetic marks are made of (the layer's, not the sweep's).
    private static readonly HostPhaseCost Route = new(30, 0.1), Experts = new(50, 0.02);

    /// <summary>
    /// An ep_layer run whose marks span two event records plus <see cref="Route"/> / <see cref="Experts"/>; rank 0 of the first
    /// row has no tokens and a 3 us route mark (what the bench records), which the fit must skip as the model prices it 0.
    /// </summary>
    private static string LayerRun(string enqueue = "ranked", bool marks = true)
    {
        (int Tokens, int[] PerRank, int[] Rows)[] rows = [(1, [0, 1], [3, 5]), (16, [8, 8], [74, 54]), (128, [64, 64], [512, 512]), (1024, [512, 512], [4043, 4149])];
        string Mark(string phase, int rank, double begin, double spanUs) => string.Create(CultureInfo.InvariantCulture,
            $"{{\"Phase\":\"{phase}\",\"Rank\":{rank},\"DeviceBeginUs\":{begin},\"DeviceEndUs\":{begin + spanUs},\"HostBeginUs\":{begin},\"HostEndUs\":{begin + spanUs}}}");
        string Row((int Tokens, int[] PerRank, int[] Rows) r)
        {
            var perRank = new List<string>();
            for (int rank = 0; rank < 2; rank++)
            {
                double route = r.PerRank[rank] > 0 ? 2 * EventUs + Route.Us(r.PerRank[rank]) : 3;
                perRank.Add(Mark("RouteAndPermute", rank, 10 + 100 * rank, route));
                perRank.Add(Mark("Experts", rank, 500 + 200 * rank, 2 * EventUs + Experts.Us(r.Rows[rank])));
                perRank.Add(Mark("Dispatch", rank, 300, 999)); // the collectives' spans hold host waits: not a phase enqueue
            }
            return $"{{\"Tokens\":{r.Tokens},\"PhaseUs\":{{\"RouteAndPermute\":50,\"Dispatch\":60,\"Experts\":200,\"Combine\":100,\"SharedAndUnpermute\":10}},"
                + $"\"TokensPerRank\":[{string.Join(",", r.PerRank)}],\"RowsPerRank\":[{string.Join(",", r.Rows)}],\"ActiveExpertsPerRank\":[3,5]"
                + (marks ? $",\"PerRank\":[{string.Join(",", perRank)}]" : "") + "}";
        }
        return $"{{\"kind\":\"ep_layer\",\"preset\":\"qwen3-30b-a3b\",\"device\":\"test GPU\",\"ranks\":2,\"enqueue\":\"{enqueue}\",\"rows\":[{string.Join(",", rows.Select(Row))}]}}";
    }

    private static (string Sweep, string Layer) Write(TempFolder folder, string layer)
    {
        string sweep = folder.File("host.json"), ep = folder.File("ep.json");
        File.WriteAllText(sweep, Sweep);
        File.WriteAllText(ep, layer);
        return (sweep, ep);
    }

    [Fact]
    public void TheFitRecoversTheCostsTheMarksAreMadeOf()
    {
        using var folder = new TempFolder();
        var (sweep, ep) = Write(folder, LayerRun());
        var alone = Calibration.Fit([sweep], DefaultScaleParams.Load(), "default").Host!;
        var p = Calibration.Fit([sweep, ep], DefaultScaleParams.Load(), "default");

        Assert.Equal(Route.FixedUs, p.Host!.RoutePhaseAfterUpload!.FixedUs, 1e-6);
        Assert.Equal(Route.PerUnitUs, p.Host.RoutePhaseAfterUpload.PerUnitUs, 1e-9);
        Assert.Equal(Experts.FixedUs, p.Host.ExpertsPhaseBusy!.FixedUs, 1e-6);
        Assert.Equal(Experts.PerUnitUs, p.Host.ExpertsPhaseBusy.PerUnitUs, 1e-9);
        // The sweep alone prices them otherwise (15 us + 3/63 a token, 24 us + 6/3584 a row); every other part is the sweep's.
        Assert.Equal(3 / 63.0, alone.RoutePhaseAfterUpload!.PerUnitUs, 1e-9);
        Assert.Equal(alone, p.Host with { RoutePhaseAfterUpload = alone.RoutePhaseAfterUpload, ExpertsPhaseBusy = alone.ExpertsPhaseBusy });
        Assert.Equal(EventUs, p.Host.EventUs, 1e-9);
        Assert.Contains("7 rank marks", p.Sources["host marks"]); // 8 route marks less rank 0's without tokens
        Assert.Contains("8 rank marks", p.Sources["host marks"]);
        Assert.Equal(p.Host, ScaleParams.FromJson(p.ToJson()).Host); // saved and loaded
    }

    [Fact]
    public void AnInterleavedRunPricesTheRouteOnlyAndSaysWhy()
    {
        using var folder = new TempFolder();
        var (sweep, ep) = Write(folder, LayerRun(enqueue: "interleaved"));
        var alone = Calibration.Fit([sweep], DefaultScaleParams.Load(), "default").Host!;
        var p = Calibration.Fit([sweep, ep], DefaultScaleParams.Load(), "default");
        Assert.Equal(Route.PerUnitUs, p.Host!.RoutePhaseAfterUpload!.PerUnitUs, 1e-9);
        Assert.Equal(alone.ExpertsPhaseBusy, p.Host.ExpertsPhaseBusy);
        Assert.Contains("ep.json: experts not used (enqueued interleaved", p.Sources["host marks"]);
        Assert.Contains("ExpertsPhaseBusy: host_launch sweep", p.Sources["host by parameter"]);
    }

    [Fact]
    public void ARunWithoutHostMarksIsRefusedWithTheReason()
    {
        using var folder = new TempFolder();
        var (sweep, ep) = Write(folder, LayerRun(marks: false));
        var e = Assert.Throws<InvalidDataException>(() => Calibration.Fit([sweep, ep], DefaultScaleParams.Load(), "default"));
        Assert.Contains("ep.json: an EP layer run without per-rank host marks", e.Message);

        var errors = new StringWriter();
        Assert.Equal(2, SimulateCommand.Run(new SimulateCommand.Settings { Calibrate = [sweep, ep] }, new StringWriter(), errors));
        Assert.Contains("without per-rank host marks (rows[].PerRank[] with HostBeginUs, HostEndUs)", errors.ToString());
    }

    [Fact]
    public void MarksWithoutAnyOtherHostPartAreRefused()
    {
        // The default params have no host part: with no sweep either, launches, copies and the all-to-allv would have no price.
        using var folder = new TempFolder();
        string ep = folder.File("ep.json");
        File.WriteAllText(ep, LayerRun());
        Assert.Null(DefaultScaleParams.Load().Host);
        var e = Assert.Throws<InvalidDataException>(() => Calibration.Fit([ep], DefaultScaleParams.Load(), "default"));
        Assert.Contains("need a host_launch sweep", e.Message);
    }

    [Fact]
    public void EveryHostParameterNamesItsSource()
    {
        using var folder = new TempFolder();
        var (sweep, ep) = Write(folder, LayerRun());
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Calibrate = [sweep, ep] }, output, new StringWriter()));
        string line = output.ToString().Split('\n').Single(l => l.StartsWith("  host by parameter: ", StringComparison.Ordinal));
        var bySource = line["  host by parameter: ".Length..].Split("; ").Select(x => x.Split(": ", 2)).ToDictionary(x => x[0], x => x[1]);
        string fromSweep = "host_launch sweep (host.json (test GPU))";
        Assert.Equal(fromSweep, bySource["LaunchUs"]);
        Assert.Equal(fromSweep, bySource["CopyUs"]);
        Assert.Equal(fromSweep, bySource["EventUs"]);
        Assert.Equal(fromSweep, bySource["CollectivePerRankUs"]);
        Assert.Equal("not measured (a launch's cost)", bySource["GemmCallUs"]);
        Assert.Equal("not measured (priced op by op)", bySource["RoutePhase"]);
        Assert.Equal("not measured (priced op by op)", bySource["ExpertsPhase"]);
        Assert.Equal("the EP layer's host marks (ep.json)", bySource["RoutePhaseAfterUpload"]);
        Assert.Equal("the EP layer's host marks (ep.json)", bySource["ExpertsPhaseBusy"]);
        Assert.Equal(9, bySource.Count);

        // Without a layer run the Sources are what they were before it: no per-parameter line, no marks.
        var p = Calibration.Fit([sweep], DefaultScaleParams.Load(), "default");
        Assert.False(p.Sources.ContainsKey("host by parameter"));
        Assert.False(p.Sources.ContainsKey("host marks"));
    }
}
