using MoeRuntime.Accelerators.Native;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>
/// Reads a GPU's SM clock and its power now through NVML about every millisecond, on a thread of its own, from
/// <see cref="TryStart"/> to <see cref="Stop"/>: so a benchmark can say at what clock a timed call ran. Compute-bound
/// kernels on random operands can push the board to its power limit, and the GPU then lowers its clock: two kernels
/// that do the same work at different clocks are not compared fairly by time alone. nvidia-smi is too coarse for a
/// call of a few milliseconds (its readings change every ~100 ms, and its power is a one-second average).
/// </summary>
public sealed class GpuClockSampler : IDisposable
{
    private readonly nint _device;
    private readonly Thread _thread;
    private readonly List<GpuClockSample> _samples = [];
    private volatile bool _stop;
    private bool _stopped;

    private GpuClockSampler(nint device)
    {
        _device = device;
        _thread = new Thread(Run) { IsBackground = true, Name = "gpu clock sampler" };
        _thread.Start();
    }

    /// <summary>
    /// Starts sampling <paramref name="accelerator"/>'s GPU (found by its PCI bus id); null with the reason when NVML is
    /// not there or does not know the device.
    /// </summary>
    public static GpuClockSampler? TryStart(CudaAccelerator accelerator, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        reason = null;
        if (!NativeLibraryProbe.TryLoad(NvmlApi.Library, out _, out string tried))
        {
            reason = $"NVML not found (tried {tried})";
            return null;
        }
        if (accelerator.Info.PciBusId is not { } busId)
        {
            reason = $"{accelerator.Name} has no PCI bus id to find it in NVML";
            return null;
        }
        lock (InitLock)
        {
            int status = s_initialised ? 0 : NvmlApi.nvmlInit();
            if (status != 0)
            {
                reason = $"nvmlInit failed ({status})";
                return null;
            }
            s_initialised = true; // kept for the process: NVML counts its inits, and a sampler starts per timed call
        }
        int found = NvmlApi.nvmlDeviceGetHandleByPciBusId(busId, out nint device);
        if (found != 0)
        {
            reason = $"NVML does not know the GPU at {busId} ({found})";
            return null;
        }
        return new GpuClockSampler(device);
    }

    private static readonly object InitLock = new();
    private static bool s_initialised;

    /// <summary>Stops sampling and summarises what was read (idempotent: a second call gives the same summary).</summary>
    public GpuClockReading Stop()
    {
        if (!_stopped)
        {
            _stop = true;
            _thread.Join();
            _stopped = true;
        }
        lock (_samples)
            return GpuClockReading.Of(_samples);
    }

    public void Dispose() => Stop();

    private unsafe void Run()
    {
        while (!_stop)
        {
            if (NvmlApi.nvmlDeviceGetClockInfo(_device, NvmlApi.ClockSm, out uint megahertz) == 0)
            {
                NvmlApi.FieldValue power = default;
                power.FieldId = NvmlApi.FieldPowerInstant;
                double watts = NvmlApi.nvmlDeviceGetFieldValues(_device, 1, &power) == 0 && power.Status == 0
                    ? (uint)power.Value / 1000.0
                    : double.NaN;
                lock (_samples)
                    _samples.Add(new GpuClockSample((int)megahertz, watts));
            }
            Thread.Sleep(1);
        }
    }
}

/// <summary>One reading: the SM clock, MHz, and the board's power, W (NaN where NVML gave none).</summary>
public readonly record struct GpuClockSample(int SmMegahertz, double Watts);

/// <summary>What a <see cref="GpuClockSampler"/> read: the SM clock's median and least, the power's median and most.</summary>
public readonly record struct GpuClockReading(int Samples, int MedianSmMegahertz, int MinSmMegahertz, double MedianWatts, double MaxWatts)
{
    /// <summary>
    /// The summary of <paramref name="samples"/>; the power over the samples that have one (NaN when none do).
    /// Example: clocks 1980, 1410, 1500 and powers 650, NaN, 700 give median 1500, min 1410, 675 W median, 700 W most.
    /// </summary>
    public static GpuClockReading Of(IReadOnlyList<GpuClockSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
            return new GpuClockReading(0, 0, 0, double.NaN, double.NaN);
        var clocks = samples.Select(s => s.SmMegahertz).Order().ToArray();
        var watts = samples.Select(s => s.Watts).Where(w => !double.IsNaN(w)).Order().ToArray();
        return new GpuClockReading(samples.Count, (int)Math.Round(Median(clocks.Select(c => (double)c).ToArray())), clocks[0],
            watts.Length == 0 ? double.NaN : Median(watts), watts.Length == 0 ? double.NaN : watts[^1]);
    }

    private static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;

    public override string ToString() => Samples == 0
        ? "clock: no samples"
        : $"SM {MedianSmMegahertz} MHz (min {MinSmMegahertz})" + (double.IsNaN(MedianWatts) ? "" : $", {MedianWatts:F0} W (max {MaxWatts:F0})");
}
