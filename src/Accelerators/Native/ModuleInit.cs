using System.Runtime.CompilerServices;

namespace MoeRuntime.Accelerators.Native;

internal static class ModuleInit
{
    // Library imports resolve through the probe; it must be in place before the first native call.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterNativeLibraries()
    {
        var assembly = typeof(ModuleInit).Assembly;
        NativeLibraryProbe.Register(assembly, Cuda.CudaDriver.Library, "MOE_LIBCUDA", "libcuda.so.1", "libcuda.so", "nvcuda.dll");
        NativeLibraryProbe.Register(assembly, Nvrtc.NvrtcApi.Library, "MOE_LIBNVRTC",
            "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so",
            "/usr/local/cuda/lib64/libnvrtc.so", "nvrtc64_120_0.dll");
        NativeLibraryProbe.Register(assembly, Cuda.NvmlApi.Library, "MOE_LIBNVML", "libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll");
    }
}
