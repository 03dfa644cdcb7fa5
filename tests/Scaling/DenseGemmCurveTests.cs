using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>Router and shared-expert calls priced by the dense_gemm sweep's measured curve (its "auto" rows) when given.</summary>
public sealed class DenseGemmCurveTests
{
    [Theory]
    [InlineData(1, 5)]        // at and below the first point: the first
    [InlineData(16, 9)]
    [InlineData(64, 38.5)]    // half way from 16 to 256 in log(rows): (9 + 68) / 2
    [InlineData(256, 68)]
    [InlineData(1024, 68)]    // past the last, without a fit: held
    public void InterpolatesInLogRowsAndHoldsTheEndsOutsideThem(double rows, double us)
    {
        var curve = DenseGemmCurve.From([(256, 68), (1, 5), (16, 9), (16, 100), (16, 8)]); // 16 rows: median of 9, 100, 8
        Assert.Equal(us, curve.At(rows), 1e-9);
    }

    [Fact]
    public void PastTheLastPointItGrowsAsTheGroupedFitDoes()
    {
        var curve = DenseGemmCurve.From([(16, 9), (256, 68)]);
        // A fit of 10 us + 0.1 us a row: 35.6 at 256 rows, 112.4 at 1024, so 68 x 112.4 / 35.6.
        Assert.Equal(68 * (10 + 0.1 * 1024) / (10 + 0.1 * 256), curve.At(1024, rows => 10 + 0.1 * rows), 1e-9);
        Assert.Equal(9, curve.At(4, rows => 10 + 0.1 * rows), 1e-9); // below the first: held
    }

    private const string DenseSweep = """
        {"device":"test GPU","rows":[
          {"Name":"deepseek-v3 router","Shape":"T=16 N=256 K=7168","Ms":0.010,"GBps":0,"Note":"auto: skinny16 2 tiles x split 8, graph"},
          {"Name":"deepseek-v3 router","Shape":"T=128 N=256 K=7168","Ms":0.070,"GBps":0,"Note":"auto: wgmma 1 tiles, graph"},
          {"Name":"deepseek-v3 router","Shape":"T=128 N=256 K=7168","Ms":0.015,"GBps":0,"Note":"skinny: skinny64 2 tiles x split 8, graph"},
          {"Name":"deepseek-v3 shared gate_up+silu","Shape":"T=128 N=4096 K=7168","Ms":0.040,"GBps":0,"Note":"auto: skinny"},
          {"Name":"deepseek-v3 shared down","Shape":"T=128 N=7168 K=2048","Ms":0.020,"GBps":0,"Note":"auto: wgmma"}]}
        """;

    [Fact]
    public void TheAutoRowsFitTheCurvesAndTheRouteAndOutputUseThem()
    {
        using var folder = new TempFolder();
        string path = folder.File("dense.json");
        File.WriteAllText(path, DenseSweep);
        var fallback = DefaultScaleParams.Load();
        var p = Calibration.Fit([path], fallback, "default");
        var router = p.DenseGemm[DenseGemmCurve.Key(256, 7168, false)];
        Assert.Equal([16.0, 128], router.Rows);
        Assert.Equal([10.0, 70], router.Us); // the forced "skinny" row is not the layer's path
        Assert.Equal(p.DenseGemm, ScaleParams.FromJson(p.ToJson()).DenseGemm, new CurveComparer());

        var c = LayerPresets.Get("deepseek-v3");
        var before = ScaleModel.Predict(fallback, c, LinkPreset.H200Nvlink, [128], [1024], [100]);
        var after = ScaleModel.Predict(p, c, LinkPreset.H200Nvlink, [128], [1024], [100]);
        double routerBefore = fallback.Gemm.Us(256 * 7168 * 2, 2.0 * 128 * 256 * 7168);
        Assert.Equal(before.RouteUs - routerBefore + 70, after.RouteUs, 1e-6);
        double sharedBefore = fallback.GemmFor(7168, 2048).Us(3.0 * 7168 * 2048 * 2, 2.0 * 128 * 3 * 7168 * 2048);
        Assert.Equal(before.OutputUs - sharedBefore + 40 + 20, after.OutputUs, 1e-6);
        // Qwen3's router is not in the sweep: priced as before.
        var qwen = LayerPresets.Get("qwen3-30b-a3b");
        Assert.Equal(ScaleModel.Predict(fallback, qwen, LinkPreset.H200Nvlink, [64], [512], [64]).RouteUs,
            ScaleModel.Predict(p, qwen, LinkPreset.H200Nvlink, [64], [512], [64]).RouteUs, 1e-9);
    }

    private sealed class CurveComparer : IEqualityComparer<Dictionary<string, DenseGemmCurve>>
    {
        public bool Equals(Dictionary<string, DenseGemmCurve>? a, Dictionary<string, DenseGemmCurve>? b) =>
            a!.Count == b!.Count && a.All(x => b.TryGetValue(x.Key, out var y) && x.Value.Rows.SequenceEqual(y.Rows) && x.Value.Us.SequenceEqual(y.Us));
        public int GetHashCode(Dictionary<string, DenseGemmCurve> obj) => obj.Count;
    }
}
