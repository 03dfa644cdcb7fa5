namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// Host time to enqueue one whole phase of an EP rank as the layer issues it, <c>FixedUs + PerUnitUs * units</c> (units: the
/// rank's tokens for the route, its received rows for the experts), fitted from the host_launch sweep's phase rows
/// ("host route phase" "T=64 phase=route", "host experts phase" "R=512 phase=experts"), which time
/// MoeLayer.RouteAndPermute and the experts phase (local id fill, upload, permute, gate_up, down, un-permute) call by call.
/// It holds what the per-op rows miss: work sized by the tokens or rows (the id fill, planning) and the ops issued in the
/// layer's order rather than one op repeated.
/// </summary>
public sealed record HostPhaseCost(double FixedUs, double PerUnitUs)
{
    /// <summary>Host microseconds for a phase of <paramref name="units"/> tokens or rows (0 without any: the phase is skipped).</summary>
    public double Us(double units) => units <= 0 ? 0 : FixedUs + PerUnitUs * units;

    /// <summary>
    /// Least squares on relative error (each point weighted 1/t^2) of <c>t = fixed + perUnit * units</c>, both kept >= 0:
    /// a negative slope refits a constant, a negative intercept refits through the origin. One point: a constant.
    /// </summary>
    public static HostPhaseCost Fit(IReadOnlyList<(double Units, double Us)> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 1)
            throw new ArgumentException("a phase cost fit needs at least 1 point", nameof(points));
        double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        foreach (var (x, t) in points)
        {
            if (!(t > 0) || !(x > 0))
                throw new ArgumentException($"point ({x} units, {t} us): units and time must be > 0", nameof(points));
            double w = 1 / (t * t);
            sw += w; sx += w * x; sy += w * t; sxx += w * x * x; sxy += w * x * t;
        }
        double det = sw * sxx - sx * sx;
        double slope = det > 1e-12 * sw * sxx ? (sw * sxy - sx * sy) / det : 0;
        double intercept = (sy - slope * sx) / sw;
        if (slope < 0)
            return new HostPhaseCost(sy / sw, 0);
        if (intercept < 0)
            return new HostPhaseCost(0, sxy / sxx);
        return new HostPhaseCost(intercept, slope);
    }
}
