using System.Text.Json;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The decode GEMV's own expert-GEMM fit: which sweep rows make it, and which calls the model prices with it.</summary>
public sealed class GemvFitTests
{
    // Qwen3-30B-A3B shapes: the tile kernels' calls with a 40 us fixed part, the GEMV's (one row per expert) with 5 us.
    private static readonly GemmParams Tiles = new(40, 3500, 600), Gemv = new(5, 4000, 600);

    [Fact]
    public void RowsOfOneRowPerExpertUnder64RowsFitTheGemvAndTheModelUsesItWhereTheRuntimeDoes()
    {
        using var folder = new TempFolder();
        var c = LayerPresets.Get("qwen3-30b-a3b");
        var rows = new List<object>();
        foreach (int e in new[] { 2, 4, 8, 16, 32, 64 })
            foreach (int m in new[] { 1, 4, 64, 512 })
            {
                double bytes = e * Calibration.ExpertBytes(c), flops = Calibration.ExpertFlops(c, e * m, e);
                // E=64 m=1 is 64 rows: the wgmma kernel's, not the GEMV's (the runtime's GEMV takes fewer than 64).
                var cost = Calibration.TakesGemv(e * m, e) ? Gemv : Tiles;
                rows.Add(new { Name = "qwen3-30b-a3b ep experts", Shape = $"E={e} m={m} rows={e * m} active={e}", Ms = cost.Us(bytes, flops) / 1e3, GBps = 0.0 });
            }
        string sweep = folder.File("sweep.json");
        File.WriteAllText(sweep, JsonSerializer.Serialize(new { device = "test GPU", rows }));
        var fitted = Calibration.Fit([sweep], DefaultScaleParams.Load(), "base.json");

        var gemv = Assert.Single(fitted.GemvByShape).Value;
        Assert.Equal(Gemv.LaunchUs, gemv.LaunchUs, 0.05);
        // Weights and tile flops both grow with E at one row per expert, so only their larger term is identified: check times.
        foreach (int e in new[] { 4, 36 })
        {
            double bytes = e * Calibration.ExpertBytes(c), flops = Calibration.ExpertFlops(c, e, e);
            Assert.Equal(Gemv.Us(bytes, flops), gemv.Us(bytes, flops), Gemv.Us(bytes, flops) * 0.005);
        }
        Assert.Contains("5 points", fitted.Sources["gemv H=2048 I=768"]);
        // 5 rows over 64 held experts (T=1 on EP2): the GEMV; 63 rows too; 64 rows, or more rows than experts: the shape's fit.
        Assert.Same(gemv, fitted.ExpertGemmFor(2048, 768, 5, 64));
        Assert.Same(gemv, fitted.ExpertGemmFor(2048, 768, 63, 64));
        Assert.Same(fitted.GemmFor(2048, 768), fitted.ExpertGemmFor(2048, 768, 64, 64));
        Assert.Same(fitted.GemmFor(2048, 768), fitted.ExpertGemmFor(2048, 768, 40, 32));
        Assert.Equal(gemv, ScaleParams.FromJson(fitted.ToJson()).GemvByShape["H=2048 I=768"]);
    }

    [Fact]
    public void ParamsWithoutAGemvFitPriceTheGemvsCallsAsBefore()
    {
        var p = DefaultScaleParams.Load();
        Assert.Empty(p.GemvByShape);
        Assert.Same(p.GemmFor(2048, 768), p.ExpertGemmFor(2048, 768, 5, 64));
    }
}
