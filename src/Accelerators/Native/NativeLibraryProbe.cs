using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Native;

/// <summary>
/// Maps a logical library name used in <c>[LibraryImport]</c> to the first of several versioned file
/// names that loads (libcuda.so.1; libnvrtc.so.13, .12, .11.2; libnccl.so.2). An environment variable
/// holding a full path overrides the probe. Assemblies register their names once.
/// </summary>
public static class NativeLibraryProbe
{
    private static readonly ConcurrentDictionary<string, Candidates> Registered = new();
    private static readonly ConcurrentDictionary<string, nint> Loaded = new();
    private static readonly ConcurrentDictionary<Assembly, byte> Hooked = new();

    private sealed record Candidates(string? EnvironmentVariable, string[] FileNames);

    /// <summary>Registers <paramref name="logicalName"/> and hooks <paramref name="assembly"/>'s imports.</summary>
    public static void Register(Assembly assembly, string logicalName, string? environmentVariable, params string[] fileNames)
    {
        Registered[logicalName] = new Candidates(environmentVariable, fileNames);
        if (Hooked.TryAdd(assembly, 0))
            NativeLibrary.SetDllImportResolver(assembly, Resolve);
    }

    /// <summary>Loads the library (cached); returns false with the names tried when none loads.</summary>
    public static bool TryLoad(string logicalName, out nint handle, out string tried)
    {
        tried = "";
        if (Loaded.TryGetValue(logicalName, out handle))
            return true;
        if (!Registered.TryGetValue(logicalName, out var candidates))
        {
            tried = $"'{logicalName}' is not registered";
            return false;
        }
        var names = new List<string>();
        string? overridePath = candidates.EnvironmentVariable is null ? null : Environment.GetEnvironmentVariable(candidates.EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(overridePath))
            names.Add(overridePath);
        names.AddRange(candidates.FileNames);
        foreach (var name in names)
        {
            if (NativeLibrary.TryLoad(name, out handle))
            {
                Loaded[logicalName] = handle;
                return true;
            }
        }
        tried = string.Join(", ", names) + (candidates.EnvironmentVariable is null ? "" : $" (set {candidates.EnvironmentVariable} to a full path to override)");
        handle = 0;
        return false;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (!Registered.ContainsKey(libraryName))
            return 0;
        if (TryLoad(libraryName, out var handle, out var tried))
            return handle;
        throw new DllNotFoundException($"native library '{libraryName}' not found; tried {tried}");
    }
}
