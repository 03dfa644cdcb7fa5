using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace MoeRuntime.Accelerators.Nvrtc;

/// <summary>
/// Compiles CUDA C to a device image (CUBIN for <c>sm_XY</c>) with NVRTC. Images are cached in memory
/// and on disk (<c>$MOE_KERNEL_CACHE</c>, else <c>~/.cache/moe-runtime/kernels</c>), keyed by source and
/// header hash, options, architecture and NVRTC version; disk writes are atomic (temp file, then rename).
/// </summary>
public sealed class NvrtcCompiler
{
    public static NvrtcCompiler Shared { get; } = new(DefaultCacheDirectory());

    private readonly ConcurrentDictionary<string, byte[]> _memory = new();
    private readonly string? _cacheDirectory;

    public NvrtcCompiler(string? cacheDirectory) => _cacheDirectory = cacheDirectory;

    /// <summary>Where compiled images are kept across processes; null when the disk cache is off.</summary>
    public string? CacheDirectory => _cacheDirectory;

    /// <summary>
    /// Raised when a kernel must be compiled because neither cache has it (first use on a machine): once as NVRTC
    /// starts (<see cref="KernelCompileNotice.Elapsed"/> null) and once when it is done. A compile of a large source
    /// takes seconds, so a command can say why it is quiet. Handlers run on the compiling thread.
    /// </summary>
    public event Action<KernelCompileNotice>? Compiling;

    public static bool IsAvailable => Native.NativeLibraryProbe.TryLoad(NvrtcApi.Library, out _, out _);

    /// <summary>NVRTC's version, e.g. (13, 0); throws if NVRTC is not found.</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            Check(NvrtcApi.nvrtcVersion(out int major, out int minor), "nvrtcVersion");
            return (major, minor);
        }
    }

    /// <summary>Architectures this NVRTC can target, as numbers (80 for sm_80).</summary>
    public static unsafe IReadOnlyList<int> SupportedArchitectures()
    {
        Check(NvrtcApi.nvrtcGetNumSupportedArchs(out int count), "nvrtcGetNumSupportedArchs");
        var archs = new int[count];
        fixed (int* p = archs)
            Check(NvrtcApi.nvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs");
        return archs;
    }

    /// <summary>The options every kernel is compiled with for <paramref name="architecture"/> (e.g. sm_90).</summary>
    public static IReadOnlyList<string> DefaultOptions(string architecture, IReadOnlyList<string>? extra = null)
    {
        var options = new List<string> { $"--gpu-architecture={architecture}", "-std=c++17", "--device-int128" };
        if (extra is not null)
            options.AddRange(extra);
        return options;
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <paramref name="architecture"/>; a source that requires an
    /// architecture-specific target (sm_90a) gets it when the device is that architecture.
    /// </summary>
    public byte[] Compile(KernelSource source, IReadOnlyList<string> options, string architecture)
    {
        var finalOptions = options.ToList();
        if (source.RequiredArchitecture is { } required)
        {
            if (!required.StartsWith(architecture, StringComparison.Ordinal))
                throw new AcceleratorException($"{source.Name} requires {required}; this device is {architecture}");
            finalOptions = finalOptions.Select(o => o.StartsWith("--gpu-architecture=", StringComparison.Ordinal) ? $"--gpu-architecture={required}" : o).ToList();
        }
        var (major, minor) = Version;
        string key = Key(source, finalOptions, $"{major}.{minor}");
        if (_memory.TryGetValue(key, out var cached))
            return cached;
        string? path = _cacheDirectory is null ? null : Path.Combine(_cacheDirectory, key + ".cubin");
        if (path is not null && File.Exists(path))
        {
            try
            {
                var bytes = File.ReadAllBytes(path);
                if (bytes.Length > 0)
                    return _memory[key] = bytes;
            }
            catch (IOException)
            {
                // An unreadable cache entry is rebuilt below.
            }
        }
        string target = source.RequiredArchitecture ?? architecture;
        var defines = finalOptions.Where(o => o.StartsWith("-D", StringComparison.Ordinal)).Select(o => o[2..]).ToList();
        Compiling?.Invoke(new KernelCompileNotice(source.Name, target, defines, null));
        long started = Stopwatch.GetTimestamp();
        var image = CompileUncached(source, finalOptions, wantCubin: true);
        Compiling?.Invoke(new KernelCompileNotice(source.Name, target, defines, Stopwatch.GetElapsedTime(started)));
        _memory[key] = image;
        if (path is not null)
            TryWriteAtomically(path, image);
        return image;
    }

    /// <summary>Compiles without the cache and returns PTX text (what the tests use to check every kernel compiles).</summary>
    public static string CompileToPtx(KernelSource source, IReadOnlyList<string> options) =>
        Encoding.UTF8.GetString(CompileUncached(source, options, wantCubin: false)).TrimEnd('\0');

    private static unsafe byte[] CompileUncached(KernelSource source, IReadOnlyList<string> options, bool wantCubin)
    {
        var handles = new List<GCHandle>();
        byte* Pin(string s)
        {
            var h = GCHandle.Alloc(Encoding.UTF8.GetBytes(s + "\0"), GCHandleType.Pinned);
            handles.Add(h);
            return (byte*)h.AddrOfPinnedObject();
        }
        nint program = 0;
        try
        {
            var headerNames = source.Headers.Keys.ToArray();
            byte** headers = stackalloc byte*[Math.Max(headerNames.Length, 1)];
            byte** includeNames = stackalloc byte*[Math.Max(headerNames.Length, 1)];
            for (int i = 0; i < headerNames.Length; i++)
            {
                headers[i] = Pin(source.Headers[headerNames[i]]);
                includeNames[i] = Pin(headerNames[i]);
            }
            CheckCompile(NvrtcApi.nvrtcCreateProgram(out program, Pin(source.Text), Pin(source.Name), headerNames.Length, headers, includeNames),
                "nvrtcCreateProgram", source, options, 0);
            byte** opts = stackalloc byte*[Math.Max(options.Count, 1)];
            for (int i = 0; i < options.Count; i++)
                opts[i] = Pin(options[i]);
            CheckCompile(NvrtcApi.nvrtcCompileProgram(program, options.Count, opts), "nvrtcCompileProgram", source, options, program);
            nuint size;
            byte[] image;
            if (wantCubin)
            {
                CheckCompile(NvrtcApi.nvrtcGetCUBINSize(program, out size), "nvrtcGetCUBINSize", source, options, program);
                image = new byte[(int)size];
                fixed (byte* p = image)
                    CheckCompile(NvrtcApi.nvrtcGetCUBIN(program, p), "nvrtcGetCUBIN", source, options, program);
            }
            else
            {
                CheckCompile(NvrtcApi.nvrtcGetPTXSize(program, out size), "nvrtcGetPTXSize", source, options, program);
                image = new byte[(int)size];
                fixed (byte* p = image)
                    CheckCompile(NvrtcApi.nvrtcGetPTX(program, p), "nvrtcGetPTX", source, options, program);
            }
            return image;
        }
        finally
        {
            if (program != 0)
                NvrtcApi.nvrtcDestroyProgram(ref program);
            foreach (var h in handles)
                h.Free();
        }
    }

    private static unsafe void CheckCompile(int result, string call, KernelSource source, IReadOnlyList<string> options, nint program)
    {
        if (result == 0)
            return;
        string log = "";
        if (program != 0 && NvrtcApi.nvrtcGetProgramLogSize(program, out nuint size) == 0 && size > 1)
        {
            var bytes = new byte[(int)size];
            fixed (byte* p = bytes)
                if (NvrtcApi.nvrtcGetProgramLog(program, p) == 0)
                    log = Encoding.UTF8.GetString(bytes).TrimEnd('\0');
        }
        throw new NvrtcException(call, result, ErrorText(result), source.Name, options, log, source.Text);
    }

    private static void Check(int result, string call)
    {
        if (result != 0)
            throw new AcceleratorException($"{call} failed: {ErrorText(result)} ({result})");
    }

    private static string ErrorText(int result) => Marshal.PtrToStringUTF8(NvrtcApi.nvrtcGetErrorString(result)) ?? $"NVRTC error {result}";

    private static string Key(KernelSource source, IReadOnlyList<string> options, string nvrtcVersion)
    {
        string material = $"{source.ContentHash}\n{string.Join('\n', options)}\nnvrtc {nvrtcVersion}";
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(material)))[..32].ToLowerInvariant();
        return $"{Path.GetFileNameWithoutExtension(source.Name)}-{hash}";
    }

    private static void TryWriteAtomically(string path, byte[] image)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            File.WriteAllBytes(temp, image);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The disk cache is an optimisation; the in-memory image is enough.
        }
    }

    private static string? DefaultCacheDirectory()
    {
        string? configured = Environment.GetEnvironmentVariable("MOE_KERNEL_CACHE");
        if (configured is not null)
            return configured.Length == 0 ? null : configured;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string? root = !string.IsNullOrEmpty(xdg) ? xdg : string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".cache");
        return root is null ? null : Path.Combine(root, "moe-runtime", "kernels");
    }
}

/// <summary>
/// One compile the caches could not answer: the source, the target (sm_90a), the macros that pick its variant
/// (the <c>-D</c> options without the prefix), and NVRTC's time once done.
/// </summary>
public sealed record KernelCompileNotice(string SourceName, string Architecture, IReadOnlyList<string> Defines, TimeSpan? Elapsed);
