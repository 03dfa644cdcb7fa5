namespace MoeRuntime.Accelerators;

/// <summary>What an accelerator is: name, compute capability (CUDA; 0.0 for the CPU), SMs (CPU: cores), memory, L2.</summary>
public sealed record DeviceInfo(
    string Name,
    int ComputeMajor,
    int ComputeMinor,
    int MultiprocessorCount,
    long TotalMemoryBytes,
    long L2CacheBytes,
    int MaxSharedMemoryPerBlockOptin,
    string? PciBusId)
{
    public string ComputeCapability => $"{ComputeMajor}.{ComputeMinor}";

    /// <summary>The NVRTC architecture for this device, e.g. <c>sm_90</c>.</summary>
    public string Architecture => $"sm_{ComputeMajor}{ComputeMinor}";
}
