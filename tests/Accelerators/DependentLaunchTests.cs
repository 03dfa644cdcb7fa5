using System.Reflection;
using System.Text.RegularExpressions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>
/// Programmatic dependent launch: sources marked <c>// dependent-launch</c> wait for the prior grid in every entry,
/// and on a Hopper GPU their kernels really start before the previous kernel ends (the negative control shows it).
/// </summary>
[Collection(ProcessSwitches.Name)]
public partial class DependentLaunchTests
{
    private static readonly KernelSource TestSource = KernelSource.FromResource(typeof(DependentLaunchTests).Assembly, "dependent_launch.cu");

    private static readonly Assembly KernelsAssembly = typeof(MoeRuntime.Kernels.GroupedGemm.GroupedGemm).Assembly;
    private static readonly Assembly CollectivesAssembly = typeof(MoeRuntime.Collectives.Communicator).Assembly;

    /// <summary>Every source of the kernels, and the LL AllReduce (collective_ops.cu, the schedule path, is not marked: its kernels launch the plain way).</summary>
    public static TheoryData<string> KernelSources()
    {
        var data = new TheoryData<string>();
        foreach (var source in KernelSource.AllIn(KernelsAssembly))
            data.Add(source.Name);
        data.Add(LowLatencySource);
        return data;
    }

    private const string LowLatencySource = "ll_allreduce.cu";

    [Theory]
    [MemberData(nameof(KernelSources))]
    public void EveryEntryOfAMarkedSourceWaitsForThePriorGridFirst(string name)
    {
        var source = KernelSource.FromResource(name == LowLatencySource ? CollectivesAssembly : KernelsAssembly, name);
        Assert.True(source.WaitsForPriorGrid, $"{name} is not marked '{KernelSource.DependentLaunchMarker}'");
        string text = source.Text.Replace("\\\n", "\n");
        var entries = GlobalFunction().Matches(text);
        Assert.NotEmpty(entries);
        foreach (Match entry in entries)
        {
            int body = text.IndexOf('{', entry.Index);
            // The one exception (moe_common.cuh): a *_BEFORE_WAIT hint macro, then the wait.
            string first = BeforeWaitHint().Replace(text[(body + 1)..].TrimStart(), "", 1);
            Assert.True(first.StartsWith("moe_wait_prior_grid();", StringComparison.Ordinal),
                $"{name}: the entry at '{text.Substring(entry.Index, Math.Min(120, text.Length - entry.Index)).Split('\n')[0]}' does not call moe_wait_prior_grid() first");
        }
    }

    [Fact]
    public void TheMarkerIsReadFromTheHeaderOnly()
    {
        Assert.True(new KernelSource("a.cu", "// a.cu: x\n// dependent-launch: yes\n#include \"moe_common.cuh\"\n").WaitsForPriorGrid);
        Assert.False(new KernelSource("b.cu", "// b.cu: x\n#include \"moe_common.cuh\"\n").WaitsForPriorGrid);
        Assert.False(new KernelSource("c.cu", "// c.cu\nint x;\n// dependent-launch\n").WaitsForPriorGrid);
    }

    [Fact]
    public void ThePlainLaunchMarkerIsReadFromTheHeaderOnly()
    {
        var plain = new KernelSource("a.cu", "// a.cu: x\n// dependent-launch: yes\n// plain-launch: measured\n#include \"moe_common.cuh\"\n");
        Assert.True(plain.WaitsForPriorGrid && plain.LaunchesPlainly);
        Assert.False(new KernelSource("b.cu", "// b.cu: x\n// dependent-launch: yes\n#include \"moe_common.cuh\"\n").LaunchesPlainly);
        Assert.False(new KernelSource("c.cu", "// c.cu\n// dependent-launch\nint x;\n// plain-launch\n").LaunchesPlainly);
        Assert.False(CudaKernel.MayOverlapPriorGrid(plain));
        Assert.False(CudaKernel.MayOverlapPriorGrid(new KernelSource("d.cu", "// d.cu: x\n// plain-launch: unmarked otherwise\n")));
    }

    /// <summary>
    /// The wgmma grouped GEMM waits for the prior grid like every kernel source, but is launched plainly (its header says why);
    /// the other marked sources overlap.
    /// </summary>
    [Fact]
    public void TheWgmmaGroupedGemmLaunchesPlainlyAndTheOthersOverlap()
    {
        if (Environment.GetEnvironmentVariable("MOE_PDL_SKIP") is not null || Environment.GetEnvironmentVariable("MOE_PDL_OVERLAP") is not null)
            Assert.Skip("MOE_PDL_SKIP or MOE_PDL_OVERLAP is set: this checks the defaults");
        var wgmma = KernelSource.FromResource(KernelsAssembly, "grouped_gemm_wgmma.cu");
        Assert.True(wgmma.WaitsForPriorGrid && wgmma.LaunchesPlainly);
        Assert.False(CudaKernel.MayOverlapPriorGrid(wgmma));
        var plain = KernelSource.AllIn(KernelsAssembly).Concat(KernelSource.AllIn(CollectivesAssembly)).Where(s => s.LaunchesPlainly).Select(s => s.Name);
        Assert.Equal(["grouped_gemm_wgmma.cu"], plain);
        Assert.True(CudaKernel.MayOverlapPriorGrid(KernelSource.FromResource(KernelsAssembly, "topk_routing.cu")));
    }

    /// <summary>On a GPU a kernel of a plain-launch source launches without the overlap attribute, and still runs.</summary>
    [Fact]
    public void APlainLaunchSourcesKernelLaunchesWithoutTheAttribute()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        if (!gpu.LoadKernel(TestSource, "slow_fill").LaunchesDependent)
            Assert.Skip($"dependent launch is off here ({gpu.Info.Architecture}, MOE_PDL={Environment.GetEnvironmentVariable("MOE_PDL") ?? "unset"})");
        const string body = "extern \"C\" __global__ void fill_seven(int* data, int n) { for (int i = threadIdx.x; i < n; i += blockDim.x) data[i] = 7; }\n";
        var overlapped = gpu.LoadKernel(new KernelSource("overlap_probe.cu", "// overlap_probe.cu\n// dependent-launch: test\n" + body), "fill_seven");
        var plain = gpu.LoadKernel(new KernelSource("plain_probe.cu", "// plain_probe.cu\n// dependent-launch: test\n// plain-launch: test\n" + body), "fill_seven");
        Assert.True(overlapped.LaunchesDependent);
        Assert.False(plain.LaunchesDependent);
        using var data = gpu.Allocate<int>(300);
        TestData.Poison(data);
        using var stream = (CudaStream)gpu.CreateStream();
        plain.Launch(stream, 1, 128, 0, data, 300);
        stream.Synchronize();
        Assert.All(data.ToArray(), v => Assert.Equal(7, v));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AWaitingKernelSeesThePriorKernelsWritesAndInAGraphOneThatDoesNotWaitRunsEarly(bool captured)
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var fill = gpu.LoadKernel(TestSource, "slow_fill");
        if (!fill.LaunchesDependent)
            Assert.Skip($"dependent launch is off here ({gpu.Info.Architecture}, MOE_PDL={Environment.GetEnvironmentVariable("MOE_PDL") ?? "unset"})");
        const int n = 4096, value = 12345;
        using var data = gpu.Allocate<int>(n);
        using var waited = gpu.Allocate<int>(n);
        using var early = gpu.Allocate<int>(n);
        using var stream = (CudaStream)gpu.CreateStream();

        void Enqueue(MemoryBuffer target, string copyKernel)
        {
            fill.Launch(stream, 4, 256, 0, data, n, value, 200_000L);
            gpu.LoadKernel(TestSource, copyKernel).Launch(stream, 4, 256, 0, data, target, n);
        }

        foreach (var (target, kernel) in new[] { (waited, "copy_after_wait"), (early, "copy_without_wait") })
        {
            TestData.Poison(data);
            TestData.Poison(target);
            if (captured)
            {
                stream.BeginCapture();
                Enqueue(target, kernel);
                using var graph = stream.EndCapture();
                graph.Launch(stream);
                stream.Synchronize();
            }
            else
            {
                Enqueue(target, kernel);
                stream.Synchronize();
            }
        }
        Assert.All(waited.ToArray(), v => Assert.Equal(value, v));
        // The overlap itself is asserted in a graph, where decode forwards run: launched eagerly on the H200's driver
        // (580, CUDA 13; 2026-11-30) the non-waiting copy saw every value, i.e. it did not start early there.
        if (captured)
        {
            int stale = early.ToArray().Count(v => v != value);
            Assert.True(stale > 0, "copy_without_wait saw every value slow_fill wrote 200 us later: the dependent launch did not overlap");
        }
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("", false)]
    [InlineData("late", false)]
    [InlineData(" Early ", true)]
    public void TheTriggerSwitchReadsLateOrEarly(string? value, bool early) => Assert.Equal(early, CudaKernel.ParseTrigger(value));

    [Fact]
    public void ABadTriggerValueNamesTheVariable()
    {
        var error = Assert.Throws<ArgumentException>(() => CudaKernel.ParseTrigger("soon"));
        Assert.Contains("MOE_PDL_TRIGGER", error.Message);
        Assert.Contains("soon", error.Message);
    }

    /// <summary>The early trigger puts launch_dependents before the wait in the compiled PTX; the default, after it.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheTriggerOptionOrdersTheTwoInstructions(bool early)
    {
        NvrtcTests.RequireNvrtc();
        string[] extra = early ? [CudaKernel.EarlyTriggerOption] : [];
        string ptx = NvrtcCompiler.CompileToPtx(TestSource, NvrtcCompiler.DefaultOptions("sm_90", extra));
        int entry = ptx.IndexOf(".entry copy_after_wait", StringComparison.Ordinal);
        Assert.True(entry >= 0, "copy_after_wait not in the PTX");
        int wait = ptx.IndexOf("griddepcontrol.wait", entry, StringComparison.Ordinal);
        int trigger = ptx.IndexOf("griddepcontrol.launch_dependents", entry, StringComparison.Ordinal);
        Assert.True(wait > entry && trigger > entry, "both instructions in the entry");
        Assert.Equal(early, trigger < wait);
    }

    /// <summary>
    /// Three kernels in a row, the last two waiting (under either trigger: run with MOE_PDL_TRIGGER=early too): each sees
    /// the writes of the one before it, captured in a graph, replayed twice, also when the first is slow.
    /// </summary>
    [Fact]
    public void AChainOfWaitingKernelsSeesEachPredecessorsWritesInAGraph()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var fill = gpu.LoadKernel(TestSource, "slow_fill");
        if (!fill.LaunchesDependent)
            Assert.Skip($"dependent launch is off here ({gpu.Info.Architecture}, MOE_PDL={Environment.GetEnvironmentVariable("MOE_PDL") ?? "unset"})");
        var copy = gpu.LoadKernel(TestSource, "copy_after_wait");
        const int n = 4096;
        using var data = gpu.Allocate<int>(n);
        using var middle = gpu.Allocate<int>(n);
        using var last = gpu.Allocate<int>(n);
        using var stream = (CudaStream)gpu.CreateStream();
        for (int replay = 0; replay < 2; replay++)
        {
            int value = 777 + replay;
            TestData.Poison(middle);
            TestData.Poison(last);
            stream.BeginCapture();
            fill.Launch(stream, 4, 256, 0, data, n, value, 100_000L);
            copy.Launch(stream, 4, 256, 0, data, middle, n);
            copy.Launch(stream, 4, 256, 0, middle, last, n);
            using var graph = stream.EndCapture();
            graph.Launch(stream);
            stream.Synchronize();
            Assert.All(middle.ToArray(), v => Assert.Equal(value, v));
            Assert.All(last.ToArray(), v => Assert.Equal(value, v));
        }
    }

    [GeneratedRegex(@"__global__\s")]
    private static partial Regex GlobalFunction();

    /// <summary>A hint macro's invocation at an entry's start: NAME_BEFORE_WAIT(args) without a semicolon, then blanks.</summary>
    [GeneratedRegex(@"^[A-Z0-9_]+_BEFORE_WAIT\([^;{}]*?\)\s*")]
    private static partial Regex BeforeWaitHint();
}
