namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// A whole-phase host cost with one more term for the rank the one host thread issues first:
/// <code>
/// span = FixedUs + PerUnitUs * units + FirstUs * (1 for the first-issued rank, else 0)
/// </code>
/// Why: in the in-process EP layer (ExpertParallelMoe.Forward, ranked) the host issues rank 0's experts straight after the
/// dispatch, then rank 1's straight after rank 0's, with the same calls; the layer's marks read rank 0's span longer at every
/// point of the ranked runs s5-s12 (by 2-66 us), rows equal or not (docs/SCALING.md, fourteenth session (3)). One fit over
/// both ranks puts half of that on each rank, so the later rank starts too early.
/// </summary>
public sealed record FirstIssuedRankCost(HostPhaseCost Phase, double FirstUs)
{
    /// <summary>
    /// Least squares on relative error (each point weighted 1/t^2, as <see cref="HostPhaseCost.Fit"/>) over
    /// (units, us, first). Every part is kept >= 0: a negative first-rank term fits the phase alone with FirstUs 0 (exactly
    /// <see cref="HostPhaseCost.Fit"/>); a negative slope drops the per-unit term, a negative intercept the fixed one.
    /// Needs points of both kinds; without them the first-rank term cannot be told from the phase.
    /// </summary>
    public static FirstIssuedRankCost Fit(IReadOnlyList<(double Units, double Us, bool First)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (!points.Any(p => p.First) || points.All(p => p.First))
            throw new ArgumentException("the first-issued rank's term needs marks of the first rank and of a later one", nameof(points));
        var plain = points.Select(p => (p.Units, p.Us)).ToList();
        // Columns: fixed, per unit, first; tried whole, then without the per-unit term, then without the fixed term.
        foreach (bool[] use in (bool[][])[[true, true, true], [true, false, true], [false, true, true]])
        {
            var c = Solve(points, use);
            if (c is null || c[2] < 0)
                break; // the first rank is not dearer: no term
            if (c[0] >= 0 && c[1] >= 0)
                return new FirstIssuedRankCost(new HostPhaseCost(c[0], c[1]), c[2]);
        }
        return new FirstIssuedRankCost(HostPhaseCost.Fit(plain), 0);
    }

    /// <summary>Host microseconds of the phase on <paramref name="units"/> tokens or rows (0 without any), first-issued or not.</summary>
    public double Us(double units, bool first) => units <= 0 ? 0 : Phase.Us(units) + (first ? FirstUs : 0);

    /// <summary>The weighted normal equations over the used columns (unused ones 0); null when they are singular.</summary>
    private static double[]? Solve(IReadOnlyList<(double Units, double Us, bool First)> points, bool[] use)
    {
        int[] cols = Enumerable.Range(0, 3).Where(j => use[j]).ToArray();
        int m = cols.Length;
        var a = new double[m, m + 1];
        var scale = new double[m]; // each unknown's diagonal before elimination: a pivot far below it is a dependent column
        foreach (var (x, t, first) in points)
        {
            if (!(t > 0) || !(x > 0))
                throw new ArgumentException($"point ({x} units, {t} us): units and time must be > 0", nameof(points));
            double[] row = [1, x, first ? 1 : 0];
            double w = 1 / (t * t);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < m; j++)
                    a[i, j] += w * row[cols[i]] * row[cols[j]];
                a[i, m] += w * row[cols[i]] * t;
            }
        }
        for (int i = 0; i < m; i++)
            scale[i] = a[i, i];
        // Gauss-Jordan with partial pivoting: at most 3 unknowns.
        for (int k = 0; k < m; k++)
        {
            int pivot = Enumerable.Range(k, m - k).MaxBy(i => Math.Abs(a[i, k]));
            if (!(Math.Abs(a[pivot, k]) > 1e-10 * scale.Max()))
                return null;
            for (int j = 0; j <= m; j++)
                (a[k, j], a[pivot, j]) = (a[pivot, j], a[k, j]);
            for (int i = 0; i < m; i++)
            {
                if (i == k)
                    continue;
                double f = a[i, k] / a[k, k];
                for (int j = k; j <= m; j++)
                    a[i, j] -= f * a[k, j];
            }
        }
        var result = new double[3];
        for (int i = 0; i < m; i++)
            result[cols[i]] = a[i, m] / a[i, i];
        return result;
    }
}
