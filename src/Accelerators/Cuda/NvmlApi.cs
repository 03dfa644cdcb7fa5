using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>
/// The few NVML functions (libnvidia-ml.so.1, the driver's management library) that <see cref="GpuClockSampler"/> calls.
/// Each returns NVML's status, 0 on success.
/// </summary>
internal static unsafe partial class NvmlApi
{
    public const string Library = "moe_libnvml";

    /// <summary>nvmlClockType_t: the SM clock.</summary>
    public const int ClockSm = 1;

    /// <summary>NVML_FI_DEV_POWER_INSTANT: the board's power now, mW (nvmlDeviceGetPowerUsage averages over about 1 s on Ampere and later).</summary>
    public const uint FieldPowerInstant = 186;

    [LibraryImport(Library, EntryPoint = "nvmlInit_v2")] public static partial int nvmlInit();
    [LibraryImport(Library, EntryPoint = "nvmlDeviceGetHandleByPciBusId_v2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvmlDeviceGetHandleByPciBusId(string pciBusId, out nint device);
    [LibraryImport(Library)] public static partial int nvmlDeviceGetClockInfo(nint device, int type, out uint megahertz);
    [LibraryImport(Library)] public static partial int nvmlDeviceGetFieldValues(nint device, int count, FieldValue* values);

    /// <summary>nvmlFieldValue_t (40 bytes): the value is a union of 8 bytes; the power field is an unsigned int.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FieldValue
    {
        public uint FieldId;
        public uint ScopeId;
        public long Timestamp;
        public long LatencyMicroseconds;
        public int ValueType;
        public int Status;
        public ulong Value;
    }
}
