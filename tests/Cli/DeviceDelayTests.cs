using MoeRuntime.Cli.Bench;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Cli;

/// <summary>The benchmarks' device spin (<see cref="DeviceDelay"/>): it holds a CUDA stream for the time asked, and the CPU skips it.</summary>
public class DeviceDelayTests
{
    [Fact]
    public void TheSpinHoldsTheStreamForItsTime()
    {
        var gpu = TestDevices.Get("cuda:0");
        using var stream = gpu.CreateStream();
        using var start = gpu.CreateEvent();
        using var end = gpu.CreateEvent();
        DeviceDelay.Enqueue(gpu, stream, 0); // loads the kernel outside the timed span
        start.Record(stream);
        DeviceDelay.Enqueue(gpu, stream, 1500);
        end.Record(stream);
        end.Synchronize();
        double us = end.ElapsedMillisecondsSince(start) * 1e3;
        Assert.InRange(us, 1500, 20000);
    }

    [Fact]
    public void TheCpuDoesNotWaitAndANegativeTimeIsRejected()
    {
        var cpu = TestDevices.Get("cpu");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        DeviceDelay.Enqueue(cpu, cpu.DefaultStream, 1e6);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(0.5), $"the CPU waited {watch.Elapsed}");
        Assert.Throws<ArgumentOutOfRangeException>(() => DeviceDelay.Enqueue(cpu, cpu.DefaultStream, -1));
    }
}
