using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>A small kernel through the whole path: embedded source, NVRTC, module, launch, check on random data.</summary>
public class KernelLaunchTests
{
    private static readonly KernelSource ScaledAdd = KernelSource.FromResource(typeof(KernelLaunchTests).Assembly, "scaled_add.cu");

    [Theory]
    [InlineData(1)]
    [InlineData(33)]
    [InlineData(100_003)]
    public void ScaledAddMatchesTheHost(int n)
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        var x = TestData.Uniform(random, n);
        var y = TestData.Uniform(random, n);
        float alpha = 0.5f + random.NextSingle();
        using var dx = gpu.Upload<float>(x);
        using var dy = gpu.Upload<float>(y);
        var kernel = gpu.LoadKernel(ScaledAdd, "scaled_add_f32");
        var stream = (CudaStream)gpu.DefaultStream;
        kernel.Launch(stream, Math.Min((n + 255) / 256, 1024), 256, 0, dx, dy, alpha, (long)n);
        var actual = dy.ToArray();
        var expected = new float[n];
        for (int i = 0; i < n; i++)
            expected[i] = alpha * x[i] + y[i];
        Compare.Close(expected, actual, Compare.F32Tolerance, $"scaled_add n={n} seed={seed}");
    }

    [Fact]
    public void Bf16ConversionsInTheSharedHeaderMatchTheHost()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var values = TestData.ToBf16(TestData.Uniform(TestData.NewRandom(out _), 1000, -100, 100));
        using var input = gpu.Upload<BFloat16>(values);
        using var output = gpu.Allocate<BFloat16>(values.Length);
        TestData.Poison(output);
        gpu.LoadKernel(ScaledAdd, "double_bf16").Launch((CudaStream)gpu.DefaultStream, (values.Length + 127) / 128, 128, 0, input, output, values.Length);
        var expected = values.Select(v => (BFloat16)((float)v * 2f)).ToArray();
        Compare.Exact<BFloat16>(expected, output.ToArray(), "bf16 doubling");
    }

    /// <summary>
    /// LoadKernel's lookup (no module key built per launch): one kernel per (source, entry, options by content); a caller's
    /// options list changed afterwards is a new key, not the stored one; and the kernel under other options still runs.
    /// </summary>
    [Fact]
    public void LoadKernelGivesOneKernelPerSourceEntryAndOptions()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var plain = gpu.LoadKernel(ScaledAdd, "scaled_add_f32");
        Assert.Same(plain, gpu.LoadKernel(ScaledAdd, "scaled_add_f32"));
        Assert.NotSame(plain, gpu.LoadKernel(ScaledAdd, "double_bf16"));
        var options = new List<string> { "-DMOE_TEST_OPTION=1" };
        var withOption = gpu.LoadKernel(ScaledAdd, "scaled_add_f32", options);
        Assert.NotSame(plain, withOption);
        Assert.Same(withOption, gpu.LoadKernel(ScaledAdd, "scaled_add_f32", ["-DMOE_TEST_OPTION=1"]));
        options[0] = "-DMOE_TEST_OPTION=2";
        var changed = gpu.LoadKernel(ScaledAdd, "scaled_add_f32", options);
        Assert.NotSame(withOption, changed);
        Assert.Same(withOption, gpu.LoadKernel(ScaledAdd, "scaled_add_f32", ["-DMOE_TEST_OPTION=1"]));
        using var x = gpu.Upload<float>([1f, 2f, 3f]);
        using var y = gpu.Upload<float>([10f, 20f, 30f]);
        changed.Launch((CudaStream)gpu.DefaultStream, 1, 256, 0, x, y, 2f, 3L);
        Compare.Exact<float>([12f, 24f, 36f], y.ToArray(), "scaled_add under other options");
    }

    /// <summary>
    /// 8 KB static + 44 KB dynamic shared memory: past the 48 KB a function gets without opting in, though the dynamic
    /// part alone is under it. The occupancy query and the launch both opt in first (the fused decode's down stage needs it).
    /// </summary>
    [Fact]
    public void StaticAndDynamicSharedMemoryPastFortyEightKilobytesLaunch()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        const int N = 11 * 1024; // 44 KB of floats
        var values = TestData.Uniform(TestData.NewRandom(out int seed), N);
        using var input = gpu.Upload<float>(values);
        using var output = gpu.Allocate<float>(N);
        TestData.Poison(output);
        var kernel = gpu.LoadKernel(ScaledAdd, "reverse_through_shared_f32");
        Assert.Equal(8 * 1024, kernel.StaticSharedBytes);
        Assert.True(kernel.MaxActiveBlocksPerSm(256, N * sizeof(float)) >= 1, "the occupancy of 8 KB static + 44 KB dynamic");
        kernel.Launch((CudaStream)gpu.DefaultStream, 1, 256, N * sizeof(float), input, output, N);
        var expected = new float[N];
        for (int i = 0; i < N; i++)
            expected[i] = values[N - 1 - i] + i % 2048;
        Compare.Exact<float>(expected, output.ToArray(), $"through 52 KB of shared memory, seed {seed}");
    }

    [Fact]
    public void LaunchesRejectBuffersOfOtherDevicesAndOversizedBlocks()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        var kernel = gpu.LoadKernel(ScaledAdd, "scaled_add_f32");
        using var cpuBuffer = TestDevices.Context.Cpu.Allocate<float>(4);
        using var gpuBuffer = gpu.Allocate<float>(4);
        var stream = (CudaStream)gpu.DefaultStream;
        Assert.Throws<ArgumentException>(() => kernel.Launch(stream, 1, 4, 0, cpuBuffer, gpuBuffer, 1f, 4L));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernel.Launch(stream, 1, 2048, 0, gpuBuffer, gpuBuffer, 1f, 4L));
        var missing = Assert.Throws<AcceleratorException>(() => gpu.LoadKernel(ScaledAdd, "no_such_kernel"));
        Assert.Contains("no_such_kernel", missing.Message);
    }

    [Fact]
    public void OutOfMemoryNamesTheRequestAndWhatIsFree()
    {
        using var gpu = TestDevices.CreatePrivate("cuda:0");
        long before = gpu.AllocatedBytes;
        var error = Assert.Throws<AcceleratorOutOfMemoryException>(() => gpu.Allocate<float>(1L << 40));
        Assert.Equal(4L << 40, error.RequestedBytes);
        Assert.Contains("free of", error.Message);
        Assert.Equal(before, gpu.AllocatedBytes);
    }
}
