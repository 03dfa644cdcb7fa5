using System.Runtime.CompilerServices;
using MoeRuntime.Accelerators.Native;

namespace MoeRuntime.Collectives.Native;

internal static class ModuleInit
{
    // Library imports resolve through the probe; it must be in place before the first NCCL call.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterNativeLibraries() =>
        NativeLibraryProbe.Register(typeof(ModuleInit).Assembly, Nccl.Nccl.Library, "MOE_LIBNCCL", "libnccl.so.2", "libnccl.so");
}
