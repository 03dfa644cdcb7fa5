namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// The measured time of one single-matrix GEMM call (the router, a shared expert's gate_up or down: one expert, T rows)
/// against its row count, from the <c>dense_gemm</c> sweep's "auto" rows (the path the layer takes). Its kernel changes
/// with T (GEMV at 1 row, the skinny split-K kernel at 2..128, wgmma above; a 64-row call on wgmma is one 128-row tile
/// on one SM), which the grouped fit (launch + max(weights / BW, flops / rate)) does not follow: DeepSeek-V3's router at
/// 128 rows took 68.5 us on wgmma where that fit says 23. Between two measured row counts the time is interpolated linearly
/// in log(rows) (a tile kernel's time is flat in rows, then steps); below the first it is the first; above the last (the
/// sweep stops at 1024 rows, an EP rank of T=4096 has 2048) it is the last scaled by how the grouped fit's cost of the
/// call grows from there (<paramref name="fit"/> in <see cref="At"/>): flat for a weight-bound router, about in
/// proportion to the rows for a compute-bound shared expert.
/// </summary>
public sealed record DenseGemmCurve(double[] Rows, double[] Us)
{
    /// <summary>The key of a call shape in <see cref="ScaleParams.DenseGemm"/>: N (out features), K, fused SiLU-and-mul.</summary>
    public static string Key(int n, int k, bool fused) => $"N={n} K={k}{(fused ? " silu" : "")}";

    /// <param name="rows">rows of the call</param>
    /// <param name="fit">the grouped fit's time of this call at a row count (for the growth past the last point); null: held flat</param>
    public double At(double rows, Func<double, double>? fit = null)
    {
        if (Rows.Length == 0 || Rows.Length != Us.Length)
            throw new InvalidOperationException("a dense GEMM curve needs as many times as row counts, at least one");
        if (rows <= Rows[0])
            return Us[0];
        int last = Rows.Length - 1;
        if (rows >= Rows[last])
            return fit is null ? Us[last] : Us[last] * fit(rows) / fit(Rows[last]);
        int i = 1;
        while (Rows[i] < rows)
            i++;
        double f = (Math.Log(rows) - Math.Log(Rows[i - 1])) / (Math.Log(Rows[i]) - Math.Log(Rows[i - 1]));
        return Us[i - 1] + f * (Us[i] - Us[i - 1]);
    }

    /// <summary>From (rows, us) points: sorted by rows, the median where a row count repeats.</summary>
    public static DenseGemmCurve From(IEnumerable<(double Rows, double Us)> points)
    {
        var byRows = points.GroupBy(p => p.Rows).OrderBy(g => g.Key).ToList();
        if (byRows.Count == 0)
            throw new ArgumentException("no points", nameof(points));
        return new DenseGemmCurve(byRows.Select(g => g.Key).ToArray(),
            byRows.Select(g => { var us = g.Select(p => p.Us).Order().ToArray(); return us[us.Length / 2]; }).ToArray());
    }
}
