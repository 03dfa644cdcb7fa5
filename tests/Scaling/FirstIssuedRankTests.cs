using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;

namespace MoeRuntime.Tests.Scaling;

/// <summary>
/// The experts' host term of the rank one host thread issues first (FirstIssuedRankCost, HostParams.ExpertsFirstIssuedUs):
/// its fit, where the model adds it, and that the committed params without it validate as they did.
/// </summary>
public sealed class FirstIssuedRankTests
{
    [Fact]
    public void TheFitRecoversAnExactPhaseAndFirstRankTerm()
    {
        // 40 us + 0.005 us a row, 12 us more on the first rank: rows as the EP runs have them, unequal between ranks.
        var exact = new FirstIssuedRankCost(new HostPhaseCost(40, 0.005), 12);
        (double Rows, bool First)[] marks = [(3, true), (5, false), (74, true), (54, false), (641, true), (383, false), (5048, true), (3144, false)];
        var fit = FirstIssuedRankCost.Fit(marks.Select(m => (m.Rows, exact.Us(m.Rows, m.First), m.First)).ToList());
        Assert.Equal(40, fit.Phase.FixedUs, 1e-6);
        Assert.Equal(0.005, fit.Phase.PerUnitUs, 1e-9);
        Assert.Equal(12, fit.FirstUs, 1e-6);
        Assert.Equal(52 + 0.005 * 100, fit.Us(100, first: true), 1e-6);
        Assert.Equal(0, fit.Us(0, first: true));
    }

    [Fact]
    public void AFirstRankNoDearerFitsThePhaseAloneAndAFallingLineDropsItsSlope()
    {
        // The first rank 5 us cheaper: no term, and the phase exactly as HostPhaseCost.Fit gives it over every mark.
        (double, double, bool)[] cheaper = [(10, 45, true), (10, 50, false), (100, 50, true), (100, 55, false)];
        var fit = FirstIssuedRankCost.Fit(cheaper);
        Assert.Equal(0, fit.FirstUs);
        Assert.Equal(HostPhaseCost.Fit(cheaper.Select(p => (p.Item1, p.Item2)).ToList()), fit.Phase);

        // Falling with the rows, 10 us dearer first: a constant per kind, each the relative least-squares mean sum(1/t)/sum(1/t^2).
        (double, double, bool)[] falling = [(10, 40, false), (100, 30, false), (10, 50, true), (100, 40, true)];
        var constant = FirstIssuedRankCost.Fit(falling);
        double Mean(double a, double b) => (1 / a + 1 / b) / (1 / (a * a) + 1 / (b * b));
        Assert.Equal(0, constant.Phase.PerUnitUs);
        Assert.Equal(Mean(40, 30), constant.Phase.FixedUs, 1e-9);
        Assert.Equal(Mean(50, 40) - Mean(40, 30), constant.FirstUs, 1e-9);

        Assert.Throws<ArgumentException>(() => FirstIssuedRankCost.Fit([(10, 50, false), (100, 55, false)]));
        Assert.Throws<ArgumentException>(() => FirstIssuedRankCost.Fit([(10, 50, true), (0, 55, false)]));
    }

    private static readonly ModelConfig Qwen3 = LayerPresets.Get("qwen3-30b-a3b");

    private static readonly HostParams Host = new(5, 1.5, 1, 20) { GemmCallUs = 12, ExpertsPhaseBusy = new HostPhaseCost(50, 0.002) };

    [Fact]
    public void TheTermIsAddedToTheFirstIssuedRanksWholePhaseOnly()
    {
        var with = Host with { ExpertsFirstIssuedUs = 20 };
        Assert.Equal(50 + 0.002 * 512 + 20, EpHostOps.ExpertStepsUs(with, 512, 64, firstIssued: true).Sum(), 1e-9);
        Assert.Equal(EpHostOps.ExpertStepsUs(Host, 512, 64), EpHostOps.ExpertStepsUs(with, 512, 64));
        Assert.Equal(EpHostOps.ExpertStepsUs(Host, 512, 64), EpHostOps.ExpertStepsUs(Host, 512, 64, firstIssued: true)); // null: none
        // Priced op by op (no whole-phase cost): the term, fitted with the phase, does not apply.
        var opByOp = with with { ExpertsPhaseBusy = null };
        Assert.Equal(EpHostOps.ExpertStepsUs(opByOp, 512, 64), EpHostOps.ExpertStepsUs(opByOp, 512, 64, firstIssued: true));
    }

    private static LayerBreakdown Predict(double? firstUs, HostSchedule schedule, double[] rows) =>
        ScaleModel.Predict(DefaultScaleParams.Load() with { Host = Host with { ExpertsFirstIssuedUs = firstUs } },
            Qwen3, LinkPreset.H200Nvlink, rows.Select(_ => 64.0).ToList(), rows, rows.Select(r => r > 0 ? 64.0 : 0).ToList(), schedule: schedule);

    [Fact]
    public void OneThreadForAllRanksStartsTheRanksAfterTheFirstLaterByTheTerm()
    {
        var ranked = HostSchedule.InProcessBench with { Order = EpEnqueueOrder.Ranked };
        var without = Predict(null, ranked, [512, 512]);
        var with = Predict(20, ranked, [512, 512]);
        // Rank 0's experts begin where they did, behind the dispatch; rank 1's, host-bound, 20 us later.
        Assert.Equal(without.ExpertsBeginUs![0], with.ExpertsBeginUs![0]);
        Assert.Equal(without.ExpertsBeginUs![1] + 20, with.ExpertsBeginUs![1], 1e-9);
        Assert.Equal(without.TimedPhaseSumUs, Predict(0, ranked, [512, 512]).TimedPhaseSumUs); // null prices as 0

        // Rank 0 without rows: rank 1 is issued first and carries the term, so rank 2 starts 20 us later and rank 1 as before.
        var skipped = Predict(20, ranked, [0, 512, 512]);
        var skippedWithout = Predict(null, ranked, [0, 512, 512]);
        Assert.Equal(skippedWithout.ExpertsBeginUs![1], skipped.ExpertsBeginUs![1]);
        Assert.Equal(skippedWithout.ExpertsBeginUs![2] + 20, skipped.ExpertsBeginUs![2], 1e-9);

        // One process per GPU: no rank is issued after another's, so no term.
        var perGpu = Predict(null, HostSchedule.ProcessPerGpu, [512, 512]);
        var perGpuWith = Predict(20, HostSchedule.ProcessPerGpu, [512, 512]);
        Assert.Equal(perGpu.TotalUs, perGpuWith.TotalUs);
        Assert.Equal(perGpu.ExpertsBeginUs, perGpuWith.ExpertsBeginUs);
    }

    /// <summary>The repository's folder (docs/scaling holds the committed params and EP runs).</summary>
    private static string Scaling()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "docs", "scaling")))
                return Path.Combine(dir.FullName, "docs", "scaling");
        throw new DirectoryNotFoundException("docs/scaling above " + AppContext.BaseDirectory);
    }

    private static string Validate(string run, string parameters)
    {
        string scaling = Scaling();
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings
            { Validate = Path.Combine(scaling, run), Params = Path.Combine(scaling, parameters) }, output, new StringWriter()));
        return output.ToString().Split('\n').Single(l => l.StartsWith("# |error| mean", StringComparison.Ordinal));
    }

    [Fact]
    public void TheCommittedParamsWithoutTheTermValidateAsBeforeAndTheNewOnesAsDocumented()
    {
        Assert.Null(ScaleParams.Load(Path.Combine(Scaling(), "h200-ours-params-s12-layerhost-s11-gemv.json")).Host!.ExpertsFirstIssuedUs);
        // docs/SCALING.md, fourteenth session (2) and (3): Qwen3-30B-A3B, s11 marks -> s12 runs and s12 marks -> s11 runs.
        Assert.StartsWith("# |error| mean 13.0 %, max 22.5 % over 5 points", Validate("h200x2-ep-qwen3-2026-11-30-s12.json", "h200-ours-params-s12-layerhost-s11-gemv.json"));
        Assert.StartsWith("# |error| mean 12.8 %, max 21.3 % over 5 points", Validate("h200x2-ep-qwen3-2026-11-30-s12.json", "h200-ours-params-s12-layerhost-s11-first.json"));
        Assert.StartsWith("# |error| mean 11.7 %, max 18.8 % over 4 points", Validate("h200x2-ep-qwen3-2026-11-30-s11.json", "h200-ours-params-s12-layerhost-s12-first.json"));
    }
}
