using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>
/// The NVML clock sampler (<see cref="GpuClockSampler"/>): its summary on the CPU, and on a GPU that it reads the SM clock
/// and the power of the device it was started for.
/// </summary>
public class GpuClockSamplerTests
{
    [Fact]
    public void TheReadingIsTheMedianAndTheExtremes()
    {
        var reading = GpuClockReading.Of([new(1980, 650), new(1410, double.NaN), new(1500, 700)]);
        Assert.Equal(new GpuClockReading(3, 1500, 1410, 675, 700), reading);
        Assert.Equal("SM 1500 MHz (min 1410), 675 W (max 700)", reading.ToString());

        var even = GpuClockReading.Of([new(1000, 100), new(1100, 300), new(1300, 200), new(1900, 400)]);
        Assert.Equal(new GpuClockReading(4, 1200, 1000, 250, 400), even);
    }

    [Fact]
    public void WithoutPowerOrSamplesTheReadingSaysSo()
    {
        var clockOnly = GpuClockReading.Of([new(1755, double.NaN), new(1980, double.NaN)]);
        Assert.Equal(1868, clockOnly.MedianSmMegahertz);
        Assert.True(double.IsNaN(clockOnly.MedianWatts));
        Assert.Equal("SM 1868 MHz (min 1755)", clockOnly.ToString());
        Assert.Equal("clock: no samples", GpuClockReading.Of([]).ToString());
    }

    [Fact]
    public void ItReadsTheClockOfTheGpuItWasStartedFor()
    {
        var gpu = (CudaAccelerator)TestDevices.Get("cuda:0");
        using var sampler = GpuClockSampler.TryStart(gpu, out string? reason);
        if (sampler is null)
            Assert.Skip($"no clock sampling on {gpu.Name}: {reason}");
        Thread.Sleep(100);
        var reading = sampler.Stop();
        Assert.InRange(reading.Samples, 10, 1000);
        Assert.InRange(reading.MinSmMegahertz, 1, reading.MedianSmMegahertz);
        Assert.InRange(reading.MedianSmMegahertz, 1, 5000);
        if (!double.IsNaN(reading.MedianWatts))
            Assert.InRange(reading.MaxWatts, reading.MedianWatts, 2000);
        Assert.Equal(reading, sampler.Stop()); // stopping again gives the same summary
    }
}
