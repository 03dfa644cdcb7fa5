using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The GPU-to-GPU latency probe (link_probe.cu) and <c>moe bench link</c>: argument checks without a GPU; on two GPUs a
/// measurement in a plausible range for every step size, and a peer that never launches turning into a timeout that
/// leaves both devices usable.
/// </summary>
public class LinkLatencyProbeTests
{
    [Theory]
    [InlineData(0, 10, 0, "units")]
    [InlineData(LinkLatencyProbe.MaxUnits + 1, 10, 0, "units")]
    [InlineData(1, 0, 0, "rounds")]
    [InlineData(1, 10, -1, "warmRounds")]
    public void RejectsBadArguments(int units, int rounds, int warm, string parameter) =>
        Assert.Equal(parameter, Assert.Throws<ArgumentOutOfRangeException>(() => LinkLatencyProbe.Validate(units, rounds, warm)).ParamName);

    /// <summary>Devices and unit counts are checked before any device work, so these run without a GPU.</summary>
    [Theory]
    [InlineData("cpu:0,cpu:1", "1", "two different CUDA devices")]
    [InlineData("cuda:0", "1", "two different CUDA devices")]
    [InlineData("cuda:0,cuda:0", "1", "two different CUDA devices")]
    [InlineData("cuda:0,cuda:1", "1,x", "'x' is not a count")]
    [InlineData("cuda:0,cuda:1", ",", "at least one")]
    [InlineData("cuda:0,cuda:1", "2048", "units per hop")]
    public void TheCommandNamesWhatIsWrong(string devices, string units, string expected)
    {
        var errors = new StringWriter();
        Assert.Equal(2, LinkBenchCommand.Run(devices, units, 10, 0, null, TextWriter.Null, errors));
        Assert.Contains(expected, errors.ToString());
    }

    [Fact]
    public void OneWayIsHalfTheRoundTripAndBytesAreUnitsTimesSixteen()
    {
        var row = new LinkLatency("cuda:0", "cuda:1", 64, 100, 4.5);
        Assert.Equal(2.25, row.OneWayUs);
        Assert.Equal(1024, row.BytesPerHop);
    }

    private static (CudaAccelerator, CudaAccelerator) Pair()
    {
        var group = TestDevices.GetGroup("cuda", 2);
        return ((CudaAccelerator)group[0], (CudaAccelerator)group[1]);
    }

    /// <summary>NVLink or PCIe: a hop takes more than 100 ns and far less than 100 us; every step size completes.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(LinkLatencyProbe.MaxUnits)]
    public void MeasuresAPlausibleLatencyOnTwoGpus(int units)
    {
        var (a, b) = Pair();
        var row = LinkLatencyProbe.Measure(a, b, units, rounds: 200, warmRounds: 10, TimeSpan.FromSeconds(10));
        Assert.Equal(units, row.Units);
        Assert.InRange(row.OneWayUs, 0.1, 100);
    }

    [Fact]
    public void APeerThatNeverLaunchesTimesOutAndLeavesTheDevicesUsable()
    {
        var (a, b) = Pair();
        var error = Assert.Throws<TimeoutException>(() =>
            LinkLatencyProbe.Measure(a, b, 8, rounds: 10, warmRounds: 0, TimeSpan.FromMilliseconds(50), launchPeer: false));
        Assert.Contains($"{a.Name} waited past 50 ms", error.Message);
        Assert.InRange(LinkLatencyProbe.Measure(a, b, 8, rounds: 10, warmRounds: 0, TimeSpan.FromSeconds(10)).OneWayUs, 0.1, 100);
    }
}
