using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Nvrtc;

/// <summary>Declarations of the NVRTC functions we call (libnvrtc.so.13 / .12 / .11.2), returning the raw result code.</summary>
internal static unsafe partial class NvrtcApi
{
    public const string Library = "moe_libnvrtc";

    [LibraryImport(Library)] public static partial int nvrtcVersion(out int major, out int minor);
    [LibraryImport(Library)] public static partial nint nvrtcGetErrorString(int result);
    [LibraryImport(Library)] public static partial int nvrtcCreateProgram(out nint program, byte* source, byte* name, int headerCount, byte** headers, byte** includeNames);
    [LibraryImport(Library)] public static partial int nvrtcCompileProgram(nint program, int optionCount, byte** options);
    [LibraryImport(Library)] public static partial int nvrtcDestroyProgram(ref nint program);
    [LibraryImport(Library)] public static partial int nvrtcGetProgramLogSize(nint program, out nuint size);
    [LibraryImport(Library)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(Library)] public static partial int nvrtcGetCUBINSize(nint program, out nuint size);
    [LibraryImport(Library)] public static partial int nvrtcGetCUBIN(nint program, byte* cubin);
    [LibraryImport(Library)] public static partial int nvrtcGetPTXSize(nint program, out nuint size);
    [LibraryImport(Library)] public static partial int nvrtcGetPTX(nint program, byte* ptx);
    [LibraryImport(Library)] public static partial int nvrtcGetNumSupportedArchs(out int count);
    [LibraryImport(Library)] public static partial int nvrtcGetSupportedArchs(int* archs);
}
