using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

public class StreamEventTests
{
    public static TheoryData<string> Devices => TestDevices.Names;

    [Theory, MemberData(nameof(Devices))]
    public void StreamsOrderWorkAndEventsTimeIt(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var stream = accelerator.CreateStream();
        using var start = accelerator.CreateEvent();
        using var end = accelerator.CreateEvent();
        var data = TestData.Uniform(TestData.NewRandom(out _), 1 << 20);
        using var a = accelerator.Upload<float>(data);
        using var b = accelerator.Allocate<float>(data.Length);
        start.Record(stream);
        for (int i = 0; i < 4; i++)
            b.CopyFrom(a, stream);
        end.Record(stream);
        end.Synchronize();
        float ms = end.ElapsedMillisecondsSince(start);
        Assert.True(ms >= 0 && ms < 10_000, $"elapsed {ms} ms");
        Assert.Equal(data, b.ToArray(stream));
    }

    [Theory, MemberData(nameof(Devices))]
    public void AStreamWaitsForAnEventOfAnother(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var producer = accelerator.CreateStream();
        using var consumer = accelerator.CreateStream();
        using var done = accelerator.CreateEvent();
        var data = TestData.Uniform(TestData.NewRandom(out _), 4096);
        using var source = accelerator.Upload<float>(data);
        using var middle = accelerator.Allocate<float>(data.Length);
        using var target = accelerator.Allocate<float>(data.Length);
        middle.CopyFrom(source, producer);
        done.Record(producer);
        consumer.Wait(done);
        target.CopyFrom(middle, consumer);
        consumer.Synchronize();
        Assert.Equal(data, target.ToArray());
    }

    [Theory, MemberData(nameof(Devices))]
    public void DisposedStreamsAndEventsSayTheyAreDisposed(string device)
    {
        var accelerator = TestDevices.Get(device);
        var stream = accelerator.CreateStream();
        var evt = accelerator.CreateEvent();
        Assert.False(stream.IsDisposed);
        Assert.False(evt.IsDisposed);
        stream.Dispose();
        evt.Dispose();
        Assert.True(stream.IsDisposed);
        Assert.True(evt.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => stream.Synchronize());
        Assert.Throws<ObjectDisposedException>(() => evt.Record());
        stream.Dispose(); // twice is harmless
        evt.Dispose();
        using var unrecordedStart = accelerator.CreateEvent();
        using var unrecordedEnd = accelerator.CreateEvent();
        // Timing events that were never recorded is an error on every backend, never a number.
        var error = Assert.ThrowsAny<Exception>(() => unrecordedEnd.ElapsedMillisecondsSince(unrecordedStart));
        Assert.True(error is InvalidOperationException or CudaException, error.GetType().Name);
    }

    [Fact]
    public void GraphsReplayCapturedWork()
    {
        var accelerator = (CudaAccelerator)TestDevices.Get("cuda:0");
        using var stream = (CudaStream)accelerator.CreateStream();
        var data = TestData.Uniform(TestData.NewRandom(out _), 1000);
        using var source = accelerator.Upload<float>(data);
        using var target = accelerator.Allocate<float>(data.Length);
        target.Fill(float.NaN);
        stream.BeginCapture();
        target.CopyFrom(source, stream);
        using var graph = stream.EndCapture();
        Assert.True(float.IsNaN(target.ToArray()[0]), "capture must record, not run");
        graph.Launch(stream);
        stream.Synchronize();
        Assert.Equal(data, target.ToArray());
    }
}
