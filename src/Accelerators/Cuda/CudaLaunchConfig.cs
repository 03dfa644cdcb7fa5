using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>CUlaunchConfig (cuda.h): a launch's shape, stream and attribute list, for <c>cuLaunchKernelEx</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CudaLaunchConfig
{
    public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedMemBytes;
    public nint Stream;
    public CudaLaunchAttribute* Attributes;
    public uint AttributeCount;
}

/// <summary>CUlaunchAttribute: a 4-byte id, 4 bytes of padding, a 64-byte value union (its first word, or three for a cluster's dimensions).</summary>
[StructLayout(LayoutKind.Explicit, Size = 72)]
internal struct CudaLaunchAttribute
{
    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION.</summary>
    public const int ProgrammaticStreamSerialization = 6;

    /// <summary>CU_LAUNCH_ATTRIBUTE_COOPERATIVE: all blocks resident at once (grid-wide barriers).</summary>
    public const int Cooperative = 2;

    /// <summary>CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION: blocks a cluster, x in <see cref="Value"/>, then y and z.</summary>
    public const int ClusterDimension = 4;

    [FieldOffset(0)] public int Id;
    [FieldOffset(8)] public int Value;
    [FieldOffset(12)] public int ValueY;
    [FieldOffset(16)] public int ValueZ;
}
