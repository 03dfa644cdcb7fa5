using System.Globalization;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Cli.Progress;

/// <summary>
/// Says on stderr when a command compiles CUDA kernels: the first use of a kernel on a machine runs NVRTC, seconds
/// a source, and a command that prints its table only at the end would otherwise sit silent through it. One line
/// names the cache the first time, then one line per compile with its time. Cached kernels print nothing.
/// </summary>
internal sealed class KernelCompileLog : IDisposable
{
    private readonly NvrtcCompiler _compiler;
    private readonly TextWriter _writer;
    private readonly Lock _gate = new();
    private bool _announced;

    private KernelCompileLog(NvrtcCompiler compiler, TextWriter writer)
    {
        _compiler = compiler;
        _writer = writer;
        _compiler.Compiling += OnCompiling;
    }

    /// <summary>Starts logging <paramref name="compiler"/>'s compiles to <paramref name="writer"/> until disposed.</summary>
    public static KernelCompileLog Attach(NvrtcCompiler compiler, TextWriter writer) => new(compiler, writer);

    public void Dispose() => _compiler.Compiling -= OnCompiling;

    private void OnCompiling(KernelCompileNotice notice)
    {
        lock (_gate)
        {
            if (!_announced)
            {
                _announced = true;
                string cache = _compiler.CacheDirectory is { } directory ? $"they are cached in {directory}" : "the disk cache is off (MOE_KERNEL_CACHE is empty)";
                _writer.WriteLine($"moe: compiling CUDA kernels with NVRTC on first use; {cache}");
            }
            if (notice.Elapsed is { } elapsed)
                _writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"moe: compiled {notice.SourceName} for {notice.Architecture}{Variant(notice.Defines)} in {elapsed.TotalSeconds:F1} s"));
        }
    }

    private static string Variant(IReadOnlyList<string> defines) => defines.Count == 0 ? "" : $" ({string.Join(' ', defines)})";
}
