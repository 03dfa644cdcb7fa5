namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// The host's share of a measured all-to-all. <c>moe bench alltoall</c> times our all-to-allv on the host around
/// synchronous calls ("host clock, synchronised"): one point = the host issuing every rank's share of the call (its op
/// table upload and launch, <see cref="HostParams.CollectivePerRankUs"/> each, one after the other), then the device's
/// transfer, then the wait. A link fitted to those times carries the issuing in its latency (2 ranks x 20.4 us of the
/// 48.5 us fitted on 2 H200). With a host term the timeline adds the issuing itself (HostTimeline's all-to-all starts
/// once every rank's launch is issued), so the link keeps only the device part: time less ranks x per-rank enqueue.
/// </summary>
public static class LinkHost
{
    /// <summary>Whether a bench row's timing says the host clock around synchronous calls (the host's enqueue is inside).</summary>
    public static bool HostClocked(string? timing) => timing is not null && timing.StartsWith("host clock", StringComparison.Ordinal);

    /// <summary>
    /// (peer bytes, device us) of host-clocked points (peer bytes, us) of a <paramref name="ranks"/>-rank call: each time
    /// less the ranks' enqueue, kept at least a tenth of the measured time (a point the enqueue alone would exceed is
    /// host-bound: its device part is not resolved by this bench).
    /// </summary>
    public static List<(double Bytes, double Us)> DeviceOnly(IEnumerable<(double Bytes, double Us)> points, int ranks, double collectivePerRankUs)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(collectivePerRankUs);
        return points.Select(p => (p.Bytes, Math.Max(0.1 * p.Us, p.Us - ranks * collectivePerRankUs))).ToList();
    }
}
