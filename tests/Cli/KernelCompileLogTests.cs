using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Cli.Progress;
using MoeRuntime.Tests.Accelerators;

namespace MoeRuntime.Tests.Cli;

public sealed class KernelCompileLogTests
{
    /// <summary>The first compile names the cache; each compile then gets a line with its variant and time; detached, nothing.</summary>
    [Fact]
    public void EachCompileGetsALineAndTheCacheIsNamedOnce()
    {
        NvrtcTests.RequireNvrtc();
        string directory = Path.Combine(Path.GetTempPath(), "moe-compile-log-" + Guid.NewGuid().ToString("N"));
        try
        {
            var compiler = new NvrtcCompiler(directory);
            var writer = new StringWriter();
            using (KernelCompileLog.Attach(compiler, writer))
            {
                compiler.Compile(Source("first.cu"), NvrtcCompiler.DefaultOptions("sm_80", ["-DSCALE=2"]), "sm_80");
                compiler.Compile(Source("second.cu"), NvrtcCompiler.DefaultOptions("sm_80"), "sm_80");
            }
            compiler.Compile(Source("after.cu"), NvrtcCompiler.DefaultOptions("sm_80"), "sm_80");

            var lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(3, lines.Length);
            Assert.Equal($"moe: compiling CUDA kernels with NVRTC on first use; they are cached in {directory}", lines[0]);
            Assert.Matches(@"^moe: compiled first\.cu for sm_80 \(SCALE=2\) in \d+\.\d s$", lines[1]);
            Assert.Matches(@"^moe: compiled second\.cu for sm_80 in \d+\.\d s$", lines[2]);
        }
        finally
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void WithoutADiskCacheTheFirstLineSaysSo()
    {
        NvrtcTests.RequireNvrtc();
        var compiler = new NvrtcCompiler(cacheDirectory: null);
        var writer = new StringWriter();
        using (KernelCompileLog.Attach(compiler, writer))
            compiler.Compile(Source("uncached.cu"), NvrtcCompiler.DefaultOptions("sm_80"), "sm_80");
        Assert.StartsWith("moe: compiling CUDA kernels with NVRTC on first use; the disk cache is off", writer.ToString());
    }

    /// <summary>A source no cache holds yet: its text differs run to run.</summary>
    private static KernelSource Source(string name) =>
        new(name, $"#ifndef SCALE\n#define SCALE 1\n#endif\nextern \"C\" __global__ void k(float* y) {{ y[0] = SCALE * {Random.Shared.Next()}.0f; }}\n");
}
