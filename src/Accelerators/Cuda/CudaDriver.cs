using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>
/// Declarations of the CUDA driver API functions we call (libcuda.so.1), returning the raw
/// <see cref="CudaResult"/>. Checked wrappers live in <see cref="CudaCheck"/> and the classes above.
/// Handles are nint; device pointers are ulong (CUdeviceptr).
/// </summary>
internal static unsafe partial class CudaDriver
{
    public const string Library = "moe_libcuda";

    [LibraryImport(Library)] public static partial CudaResult cuInit(uint flags);
    [LibraryImport(Library)] public static partial CudaResult cuDriverGetVersion(out int version);
    [LibraryImport(Library)] public static partial CudaResult cuGetErrorName(CudaResult error, out nint name);
    [LibraryImport(Library)] public static partial CudaResult cuGetErrorString(CudaResult error, out nint text);

    [LibraryImport(Library)] public static partial CudaResult cuDeviceGetCount(out int count);
    [LibraryImport(Library)] public static partial CudaResult cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Library)] public static partial CudaResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library)] public static partial CudaResult cuDeviceGetAttribute(out int value, CudaDeviceAttribute attribute, int device);
    [LibraryImport(Library, EntryPoint = "cuDeviceTotalMem_v2")] public static partial CudaResult cuDeviceTotalMem(out nuint bytes, int device);
    [LibraryImport(Library)] public static partial CudaResult cuDeviceGetPCIBusId(byte* busId, int length, int device);
    [LibraryImport(Library)] public static partial CudaResult cuDeviceCanAccessPeer(out int canAccess, int device, int peerDevice);

    [LibraryImport(Library)] public static partial CudaResult cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial CudaResult cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Library)] public static partial CudaResult cuCtxSetCurrent(nint context);
    [LibraryImport(Library)] public static partial CudaResult cuCtxGetCurrent(out nint context);
    [LibraryImport(Library)] public static partial CudaResult cuCtxSynchronize();
    [LibraryImport(Library)] public static partial CudaResult cuCtxEnablePeerAccess(nint peerContext, uint flags);

    [LibraryImport(Library, EntryPoint = "cuMemGetInfo_v2")] public static partial CudaResult cuMemGetInfo(out nuint free, out nuint total);
    [LibraryImport(Library, EntryPoint = "cuMemAlloc_v2")] public static partial CudaResult cuMemAlloc(out ulong pointer, nuint bytes);
    [LibraryImport(Library, EntryPoint = "cuMemFree_v2")] public static partial CudaResult cuMemFree(ulong pointer);
    [LibraryImport(Library)] public static partial CudaResult cuPointerGetAttribute(out int data, int attribute, ulong pointer);
    /// <summary>cuPointerGetAttribute: the ordinal of the device that holds the memory (CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL).</summary>
    public const int PointerAttributeDeviceOrdinal = 9;
    [LibraryImport(Library)] public static partial CudaResult cuMemHostAlloc(out nint pointer, nuint bytes, uint flags);
    [LibraryImport(Library)] public static partial CudaResult cuMemFreeHost(nint pointer);
    [LibraryImport(Library, EntryPoint = "cuMemHostGetDevicePointer_v2")] public static partial CudaResult cuMemHostGetDevicePointer(out ulong devicePointer, nint hostPointer, uint flags);
    /// <summary>cuMemHostAlloc flag: map the allocation into the device address space (CU_MEMHOSTALLOC_DEVICEMAP).</summary>
    public const uint MemHostAllocDeviceMap = 2;
    [LibraryImport(Library)] public static partial CudaResult cuMemsetD8Async(ulong pointer, byte value, nuint count, nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuMemsetD32Async(ulong pointer, uint value, nuint count, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial CudaResult cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial CudaResult cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial CudaResult cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuMemcpyPeerAsync(ulong destination, nint destinationContext, ulong source, nint sourceContext, nuint bytes, nint stream);

    [LibraryImport(Library)] public static partial CudaResult cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(Library, EntryPoint = "cuStreamDestroy_v2")] public static partial CudaResult cuStreamDestroy(nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuStreamSynchronize(nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuStreamQuery(nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuStreamWaitEvent(nint stream, nint evt, uint flags);
    [LibraryImport(Library, EntryPoint = "cuStreamBeginCapture_v2")] public static partial CudaResult cuStreamBeginCapture(nint stream, int mode);
    [LibraryImport(Library)] public static partial CudaResult cuStreamEndCapture(nint stream, out nint graph);

    [LibraryImport(Library)] public static partial CudaResult cuEventCreate(out nint evt, uint flags);
    [LibraryImport(Library, EntryPoint = "cuEventDestroy_v2")] public static partial CudaResult cuEventDestroy(nint evt);
    [LibraryImport(Library)] public static partial CudaResult cuEventRecord(nint evt, nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuEventSynchronize(nint evt);
    [LibraryImport(Library)] public static partial CudaResult cuEventQuery(nint evt);

    [LibraryImport(Library)] public static partial CudaResult cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);
    [LibraryImport(Library)] public static partial CudaResult cuGraphLaunch(nint graphExec, nint stream);
    [LibraryImport(Library)] public static partial CudaResult cuGraphExecDestroy(nint graphExec);
    [LibraryImport(Library)] public static partial CudaResult cuGraphDestroy(nint graph);

    [LibraryImport(Library)] public static partial CudaResult cuModuleLoadData(out nint module, void* image);
    [LibraryImport(Library)] public static partial CudaResult cuModuleUnload(nint module);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial CudaResult cuModuleGetFunction(out nint function, nint module, string name);
    [LibraryImport(Library)] public static partial CudaResult cuFuncSetAttribute(nint function, CudaFunctionAttribute attribute, int value);
    [LibraryImport(Library)] public static partial CudaResult cuFuncGetAttribute(out int value, CudaFunctionAttribute attribute, nint function);
    [LibraryImport(Library)] public static partial CudaResult cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemBytes, nint stream, void** kernelParams, void** extra);
    /// <summary>cuLaunchKernel with launch attributes (CUDA 12.0+): programmatic dependent launch.</summary>
    [LibraryImport(Library)] public static partial CudaResult cuLaunchKernelEx(CudaLaunchConfig* config, nint function, void** kernelParams, void** extra);
    /// <summary>Builds a TMA descriptor (CUtensorMap, 128 bytes) for a tiled region; needs no context (CUDA 12.0+ drivers).</summary>
    [LibraryImport(Library)] public static partial CudaResult cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, ulong globalAddress,
        ulong* globalDim, ulong* globalStrides, uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);
    [LibraryImport(Library)] public static partial CudaResult cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, nint function, int blockSize, nuint dynamicSharedBytes);
    /// <summary>Clusters of the launch's shape that can run at once on the device (CUDA 12.0+); the function's compile-time cluster size when the config names none.</summary>
    [LibraryImport(Library)] public static partial CudaResult cuOccupancyMaxActiveClusters(out int clusters, nint function, CudaLaunchConfig* config);

    // cuEventElapsedTime became cuEventElapsedTime_v2 in CUDA 12.8; look up whichever the driver has.
    private static readonly delegate* unmanaged<float*, nint, nint, CudaResult> ElapsedTime = FindElapsedTime();

    public static CudaResult cuEventElapsedTime(out float milliseconds, nint start, nint end)
    {
        float ms = 0;
        var result = ElapsedTime(&ms, start, end);
        milliseconds = ms;
        return result;
    }

    private static delegate* unmanaged<float*, nint, nint, CudaResult> FindElapsedTime()
    {
        if (!Native.NativeLibraryProbe.TryLoad(Library, out var handle, out var tried))
            throw new DllNotFoundException($"libcuda not found; tried {tried}");
        foreach (var name in new[] { "cuEventElapsedTime_v2", "cuEventElapsedTime" })
            if (NativeLibrary.TryGetExport(handle, name, out var address))
                return (delegate* unmanaged<float*, nint, nint, CudaResult>)address;
        throw new EntryPointNotFoundException("libcuda has neither cuEventElapsedTime_v2 nor cuEventElapsedTime");
    }
}

internal enum CudaDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    ClockRate = 13,
    MultiprocessorCount = 16,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    L2CacheSize = 38,
    UnifiedAddressing = 41,
    PciBusId = 33,
    PciDeviceId = 34,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}

internal enum CudaFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    ConstSizeBytes = 2,
    LocalSizeBytes = 3,
    NumRegs = 4,
    MaxDynamicSharedSizeBytes = 8,
}
