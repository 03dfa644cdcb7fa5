namespace MoeRuntime.Accelerators.Cuda;

/// <summary>Whether the CUDA driver is usable here, its version, and the device count. Never throws.</summary>
public static class CudaRuntimeInfo
{
    private static readonly Lazy<(bool Available, string Reason, int DriverVersion, int DeviceCount)> State = new(Probe);

    public static bool IsAvailable => State.Value.Available;

    /// <summary>Why CUDA is unavailable (empty when it is available).</summary>
    public static string UnavailableReason => State.Value.Reason;

    /// <summary>The driver's CUDA version as "13.0", or null without a driver.</summary>
    public static string? DriverVersion => State.Value.DriverVersion > 0
        ? $"{State.Value.DriverVersion / 1000}.{State.Value.DriverVersion % 1000 / 10}" : null;

    public static int DeviceCount => State.Value.DeviceCount;

    internal static void EnsureInitialized()
    {
        if (!IsAvailable)
            throw new AcceleratorException($"CUDA is not available: {UnavailableReason}");
    }

    private static (bool, string, int, int) Probe()
    {
        try
        {
            if (!Native.NativeLibraryProbe.TryLoad(CudaDriver.Library, out _, out var tried))
                return (false, $"libcuda not found (tried {tried})", 0, 0);
            var init = CudaDriver.cuInit(0);
            if (init != CudaResult.Success)
                return (false, CudaCheck.Failure(init, "cuInit(0)").Message, 0, 0);
            CudaDriver.cuDriverGetVersion(out int version);
            var count = CudaDriver.cuDeviceGetCount(out int devices);
            if (count != CudaResult.Success)
                return (false, CudaCheck.Failure(count, "cuDeviceGetCount").Message, version, 0);
            return devices == 0 ? (false, "cuInit succeeded but there are no CUDA devices", version, 0) : (true, "", version, devices);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return (false, e.Message, 0, 0);
        }
    }
}
