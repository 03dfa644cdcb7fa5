using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>Streams of high priority: they order their work as any stream does, CUDA gives them its greatest priority, and a graph keeps it.</summary>
public class StreamPriorityTests
{
    public static TheoryData<string> Devices => TestDevices.Names;

    [Theory, MemberData(nameof(Devices))]
    public void AHighPriorityStreamOrdersItsWork(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var stream = accelerator.CreateStream(StreamPriority.High);
        var data = TestData.Uniform(TestData.NewRandom(out _), 1 << 16);
        using var a = accelerator.Upload<float>(data);
        using var b = accelerator.Allocate<float>(data.Length);
        using var c = accelerator.Allocate<float>(data.Length);
        b.CopyFrom(a, stream);
        c.CopyFrom(b, stream);
        Assert.Equal(data, c.ToArray(stream));
    }

    [Fact]
    public void AnUnknownPriorityIsRejected() =>
        Assert.Equal("priority", Assert.Throws<ArgumentOutOfRangeException>(() => TestDevices.Context.Cpu.CreateStream((StreamPriority)7)).ParamName);

    [Fact]
    public void CudaGivesHighItsGreatestPriorityAndNormalTheDefault()
    {
        var accelerator = (CudaAccelerator)TestDevices.Get("cuda:0");
        using var normal = (CudaStream)accelerator.CreateStream();
        using var high = (CudaStream)accelerator.CreateStream(StreamPriority.High);
        Assert.Equal(0, normal.Priority);
        Assert.True(high.Priority < 0, $"high priority {high.Priority}: the device has no stream priorities");
    }

    /// <summary>The layer's fork and join (SharedExpertStream) with the side stream at high priority, captured and replayed.</summary>
    [Fact]
    public void AGraphForkedOntoAHighPriorityStreamReplays()
    {
        var accelerator = (CudaAccelerator)TestDevices.Get("cuda:0");
        using var main = (CudaStream)accelerator.CreateStream();
        using var side = accelerator.CreateStream(StreamPriority.High);
        using var forked = accelerator.CreateEvent();
        using var joined = accelerator.CreateEvent();
        var data = TestData.Uniform(TestData.NewRandom(out _), 4096);
        using var source = accelerator.Upload<float>(data);
        using var sideCopy = accelerator.Allocate<float>(data.Length);
        using var mainCopy = accelerator.Allocate<float>(data.Length);
        using var target = accelerator.Allocate<float>(data.Length);
        target.Fill(float.NaN);
        main.BeginCapture();
        forked.Record(main);
        side.Wait(forked);
        sideCopy.CopyFrom(source, side);
        joined.Record(side);
        mainCopy.CopyFrom(source, main);
        main.Wait(joined);
        target.CopyFrom(sideCopy, main);
        using var graph = main.EndCapture();
        Assert.True(float.IsNaN(target.ToArray()[0]), "capture must record, not run");
        graph.Launch(main);
        main.Synchronize();
        Assert.Equal(data, target.ToArray());
        Assert.Equal(data, mainCopy.ToArray());
    }

    [Theory]
    [InlineData(null, StreamPriority.Normal)]
    [InlineData("", StreamPriority.Normal)]
    [InlineData(" normal ", StreamPriority.Normal)]
    [InlineData("HIGH", StreamPriority.High)]
    public void TheSharedStreamsSwitchTakesNormalOrHigh(string? value, StreamPriority expected) =>
        Assert.Equal(expected, SharedExpertStream.ParsePriority(value));

    [Fact]
    public void TheSharedStreamsSwitchNamesItselfOnABadValue() =>
        Assert.Contains("MOE_LAYER_SHARED_PRIORITY", Assert.Throws<ArgumentException>(() => SharedExpertStream.ParsePriority("urgent")).Message);
}
