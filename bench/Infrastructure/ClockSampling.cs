using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Kernels;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// MOE_SWEEP_CLOCKS=1: each sweep row's timing runs beside a <see cref="GpuClockSampler"/>, and the row's note says
/// the SM clock and power it ran at (", SM 1410 MHz (min 1035), 655 W (max 700)"). Off, or on a CPU, it adds nothing.
/// When NVML cannot sample, the note says why once per row.
/// </summary>
internal sealed class ClockSampling : IDisposable
{
    private readonly GpuClockSampler? _sampler;
    private readonly string? _reason;

    private ClockSampling(GpuClockSampler? sampler, string? reason)
    {
        _sampler = sampler;
        _reason = reason;
    }

    private static readonly EnvironmentSetting<bool> Requested = new("MOE_SWEEP_CLOCKS", value => value?.Trim() switch
    {
        null or "" or "0" => false,
        "1" => true,
        _ => throw new ArgumentException($"MOE_SWEEP_CLOCKS='{value}': expected 1 (sample the SM clock and power through each row) or 0"),
    });

    public static ClockSampling Start(Accelerator accelerator)
    {
        if (!Requested.Value || accelerator is not CudaAccelerator cuda)
            return new ClockSampling(null, null);
        var sampler = GpuClockSampler.TryStart(cuda, out string? reason);
        return new ClockSampling(sampler, reason);
    }

    /// <summary>The note's suffix: ", " and the reading, ", clock: " and why not, or nothing when not requested.</summary>
    public string Stop() => _sampler is not null ? $", {_sampler.Stop()}" : _reason is not null ? $", clock: {_reason}" : "";

    public void Dispose() => _sampler?.Dispose();
}
