namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// A rank's experts phase on the device, split into the steps its host issues it in (<see cref="EpHostOps.ExpertSteps"/>:
/// id upload + permute, gate_up with SiLU, down, un-permute), so that <see cref="HostTimeline"/> can start each step's
/// kernels no earlier than the host has issued them. Why: an eager forward's GEMMs cannot run while the host is still
/// planning the permute before them, so a phase whose host stretch is long costs more than max(device, host).
/// </summary>
public static class ExpertDeviceSteps
{
    /// <summary>
    /// [permute, gate_up, down, un-permute] in microseconds; they sum to the phase's device time. The GEMM pair's fitted
    /// time is shared as its shapes share the work: gate_up [2I, H] holds two thirds of the weights and of the flops, down
    /// [H, I] one third, and the fit's launch term (one per pair of calls) goes half to each call.
    /// </summary>
    public static double[] Us(GemmParams gemm, double weightBytes, double flops, double permuteUs, double unpermuteUs)
    {
        ArgumentNullException.ThrowIfNull(gemm);
        double streamOrCompute = gemm.Us(weightBytes, flops) - gemm.LaunchUs;
        return [permuteUs, gemm.LaunchUs / 2 + streamOrCompute * 2 / 3, gemm.LaunchUs / 2 + streamOrCompute / 3, unpermuteUs];
    }
}
