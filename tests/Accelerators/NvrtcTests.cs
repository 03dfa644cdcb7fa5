using System.Reflection;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>NVRTC needs no GPU: every CUDA source of the solution must compile for sm_80 and sm_90 wherever NVRTC is installed.</summary>
public class NvrtcTests
{
    /// <summary>Every assembly of the solution that may embed kernels.</summary>
    internal static IEnumerable<Assembly> KernelAssemblies() => new[]
    {
        typeof(KernelSource).Assembly,
        Assembly.Load("MoeRuntime.Kernels"),
        Assembly.Load("MoeRuntime.Collectives"),
        Assembly.Load("MoeRuntime.Runtime"),
        Assembly.Load("moe"),
        typeof(NvrtcTests).Assembly,
    }.Distinct();

    public static TheoryData<string, string> Sources()
    {
        var data = new TheoryData<string, string>();
        foreach (var assembly in KernelAssemblies())
            foreach (var source in KernelSource.AllIn(assembly))
                foreach (var arch in new[] { "sm_80", "sm_90" })
                    data.Add($"{assembly.GetName().Name}/{source.Name}", arch);
        return data;
    }

    [Theory, MemberData(nameof(Sources))]
    public void EveryKernelCompiles(string source, string architecture)
    {
        RequireNvrtc();
        var (assemblyName, resource) = (source[..source.IndexOf('/')], source[(source.IndexOf('/') + 1)..]);
        var kernel = KernelSource.FromResource(Assembly.Load(assemblyName), resource);
        if (kernel.RequiredArchitecture is { } required)
        {
            if (!required.StartsWith(architecture, StringComparison.Ordinal))
                Assert.Skip($"{resource} needs {required}; not built for {architecture}");
            if (NvrtcCompiler.Version.Major < 12)
                Assert.Skip($"{resource} needs {required}, which NVRTC {NvrtcCompiler.Version.Major}.{NvrtcCompiler.Version.Minor} does not know (12.0+ does)");
            architecture = required;
        }
        string ptx = NvrtcCompiler.CompileToPtx(kernel, NvrtcCompiler.DefaultOptions(architecture));
        Assert.Contains(".entry", ptx);
    }

    [Fact]
    public void TheSolutionHasKernelSources() =>
        Assert.Contains(Sources(), row => row.Data.Item1.EndsWith("scaled_add.cu", StringComparison.Ordinal));

    [Fact]
    public void ACompileFailureCarriesTheLogAndTheSource()
    {
        RequireNvrtc();
        var broken = new KernelSource("broken.cu", "extern \"C\" __global__ void k(float* y) {\n  y[0] = undefined_name;\n}\n");
        var error = Assert.Throws<NvrtcException>(() => NvrtcCompiler.CompileToPtx(broken, NvrtcCompiler.DefaultOptions("sm_80")));
        Assert.Contains("undefined_name", error.Message);
        Assert.Contains("broken.cu", error.Message);
        Assert.Contains("--gpu-architecture=sm_80", error.Message);
        Assert.Contains("    2:   y[0] = undefined_name;", error.NumberedSource());
    }

    [Fact]
    public void CompiledImagesAreCachedOnDiskByContent()
    {
        RequireNvrtc();
        string directory = Path.Combine(Path.GetTempPath(), "moe-nvrtc-cache-" + Guid.NewGuid().ToString("N"));
        try
        {
            var source = new KernelSource("cached.cu", $"extern \"C\" __global__ void k(float* y) {{ y[0] = {Random.Shared.Next()}.0f; }}\n");
            var first = new NvrtcCompiler(directory).Compile(source, NvrtcCompiler.DefaultOptions("sm_80"), "sm_80");
            var files = Directory.GetFiles(directory, "*.cubin");
            Assert.Single(files);
            Assert.Equal(first, File.ReadAllBytes(files[0]));
            var second = new NvrtcCompiler(directory).Compile(source, NvrtcCompiler.DefaultOptions("sm_80"), "sm_80");
            Assert.Equal(first, second);
            new NvrtcCompiler(directory).Compile(source, NvrtcCompiler.DefaultOptions("sm_90"), "sm_90");
            Assert.Equal(2, Directory.GetFiles(directory, "*.cubin").Length);
        }
        finally
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ACompileTheCachesCannotAnswerIsAnnouncedAndTimed()
    {
        RequireNvrtc();
        string directory = Path.Combine(Path.GetTempPath(), "moe-nvrtc-notice-" + Guid.NewGuid().ToString("N"));
        try
        {
            var source = new KernelSource("noticed.cu", $"extern \"C\" __global__ void k(float* y) {{ y[0] = SCALE * {Random.Shared.Next()}.0f; }}\n");
            var options = NvrtcCompiler.DefaultOptions("sm_80", ["-DSCALE=2"]);
            var notices = new List<KernelCompileNotice>();
            var compiler = new NvrtcCompiler(directory);
            compiler.Compiling += notices.Add;
            compiler.Compile(source, options, "sm_80");
            Assert.Equal(2, notices.Count);
            Assert.All(notices, n => Assert.Equal(("noticed.cu", "sm_80", "SCALE=2"), (n.SourceName, n.Architecture, string.Join(' ', n.Defines))));
            Assert.Null(notices[0].Elapsed);
            Assert.True(notices[1].Elapsed > TimeSpan.Zero, $"elapsed {notices[1].Elapsed}");

            // The memory cache and, in a new compiler, the disk cache answer without a compile.
            compiler.Compile(source, options, "sm_80");
            var fromDisk = new NvrtcCompiler(directory);
            fromDisk.Compiling += notices.Add;
            fromDisk.Compile(source, options, "sm_80");
            Assert.Equal(2, notices.Count);
        }
        finally
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
        }
    }

    internal static void RequireNvrtc()
    {
        if (!NvrtcCompiler.IsAvailable && Environment.GetEnvironmentVariable("MOE_REQUIRE_NVRTC") == "1")
            Assert.Fail("MOE_REQUIRE_NVRTC=1 but NVRTC did not load (libnvrtc.so.13/.12/.11.2 or $MOE_LIBNVRTC)");
        if (!NvrtcCompiler.IsAvailable)
            Assert.Skip("NVRTC is not installed (CI installs libnvrtc11.2; see .ci/install-nvrtc.sh)");
    }
}
