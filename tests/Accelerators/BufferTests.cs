using MoeRuntime.Accelerators;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

public class BufferTests
{
    public static TheoryData<string> Devices => TestDevices.Names;

    public static TheoryData<string, int> DevicesAndSizes()
    {
        var data = new TheoryData<string, int>();
        foreach (var device in new[] { "cpu", "cuda:0" })
            foreach (var size in new[] { 0, 1, 33, 4097, 1 << 20 })
                data.Add(device, size);
        return data;
    }

    [Theory, MemberData(nameof(DevicesAndSizes))]
    public void RoundTripsEveryDtype(string device, int size)
    {
        using var accelerator = TestDevices.CreatePrivate(device);
        var random = TestData.NewRandom(out int seed);
        RoundTrip(accelerator, TestData.Uniform(random, size), seed);
        RoundTrip(accelerator, TestData.ToBf16(TestData.Uniform(random, size)), seed);
        RoundTrip(accelerator, TestData.ToF16(TestData.Uniform(random, size)), seed);
        RoundTrip(accelerator, Enumerable.Range(0, size).Select(_ => random.Next()).ToArray(), seed);
        RoundTrip(accelerator, Enumerable.Range(0, size).Select(_ => random.NextInt64()).ToArray(), seed);
        RoundTrip(accelerator, Enumerable.Range(0, size).Select(_ => (byte)random.Next(256)).ToArray(), seed);
        RoundTrip(accelerator, Enumerable.Range(0, size).Select(_ => random.NextDouble()).ToArray(), seed);
    }

    private static void RoundTrip<T>(Accelerator accelerator, T[] data, int seed) where T : unmanaged, IEquatable<T>
    {
        long before = accelerator.AllocatedBytes;
        using (var buffer = accelerator.Upload<T>(data))
        {
            Assert.Equal(data.Length, buffer.Length);
            Assert.Equal(DTypes.Of<T>(), buffer.DType);
            Compare.Exact<T>(data, buffer.ToArray(), $"{typeof(T).Name}[{data.Length}] round trip on {accelerator.Name} (seed {seed})");
            // Device-to-device copy within the accelerator.
            using var copy = accelerator.Allocate<T>(data.Length);
            copy.CopyFrom(buffer);
            Compare.Exact<T>(data, copy.ToArray(), $"{typeof(T).Name} device copy on {accelerator.Name}");
        }
        Assert.Equal(before, accelerator.AllocatedBytes);
    }

    [Theory, MemberData(nameof(Devices))]
    public void SlicesViewTheParentAndOwnNothing(string device)
    {
        var accelerator = TestDevices.Get(device);
        var data = Enumerable.Range(0, 100).Select(i => (float)i + 0.5f).ToArray();
        using var buffer = accelerator.Upload<float>(data);
        var slice = buffer.Slice(10, 20);
        Assert.True(slice.IsView);
        Assert.Equal(data[10..30], slice.ToArray());
        slice.CopyFrom(Enumerable.Repeat(-1f, 20).ToArray());
        slice.Dispose(); // a view frees nothing
        var after = buffer.ToArray();
        Assert.Equal(data[..10], after[..10]);
        Assert.All(after[10..30], v => Assert.Equal(-1f, v));
        Assert.Equal(data[30..], after[30..]);
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Slice(90, 11));
    }

    [Theory, MemberData(nameof(Devices))]
    public void FillsEveryWidth(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var f = accelerator.Allocate<float>(37);
        f.Fill(3.25f);
        Assert.All(f.ToArray(), v => Assert.Equal(3.25f, v));
        using var b = accelerator.Allocate<BFloat16>(37); // odd length: pairs plus a tail element
        b.Fill((BFloat16)1.5f);
        Assert.All(b.ToArray(), v => Assert.Equal(1.5f, (float)v));
        using var bytes = accelerator.Allocate<byte>(5);
        bytes.Fill(7);
        Assert.All(bytes.ToArray(), v => Assert.Equal(7, v));
        using var zero = accelerator.Allocate<int>(0);
        zero.Fill(1); // nothing to fill, no error
    }

    [Theory, MemberData(nameof(Devices))]
    public void CopiesBetweenAcceleratorsOfAnyKind(string device)
    {
        var accelerator = TestDevices.Get(device);
        var cpu1 = TestDevices.Context.Get("cpu:1");
        var data = TestData.Uniform(TestData.NewRandom(out _), 1001);
        using var onDevice = accelerator.Upload<float>(data);
        using var onCpu1 = cpu1.Allocate<float>(data.Length);
        onCpu1.CopyFrom(onDevice);
        Assert.Equal(data, onCpu1.ToArray());
        using var back = accelerator.Allocate<float>(data.Length);
        back.CopyFrom(onCpu1);
        Assert.Equal(data, back.ToArray());
    }

    [Theory, MemberData(nameof(Devices))]
    public void RejectsBadSizesAndUseAfterDispose(string device)
    {
        var accelerator = TestDevices.Get(device);
        Assert.Throws<ArgumentOutOfRangeException>(() => accelerator.Allocate<float>(-1));
        var buffer = accelerator.Allocate<float>(8);
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.CopyFrom(new float[9]));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.CopyTo(new float[4], 5));
        using var other = accelerator.Allocate<float>(9);
        var mismatch = Assert.Throws<ArgumentException>(() => buffer.CopyFrom(other));
        Assert.Contains("must match", mismatch.Message);
        var view = buffer.Slice(0, 4);
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.ToArray());
        Assert.Throws<ObjectDisposedException>(() => view.ToArray());
        buffer.Dispose(); // twice is harmless
    }

    [Theory, MemberData(nameof(Devices))]
    public void DisposingTheAcceleratorReleasesWhatItsOwnersForgot(string device)
    {
        var accelerator = TestDevices.CreatePrivate(device);
        var forgotten = accelerator.Allocate<float>(1000);
        var stream = accelerator.CreateStream();
        var evt = accelerator.CreateEvent();
        Assert.Equal(4000, accelerator.AllocatedBytes);
        accelerator.Dispose();
        Assert.True(forgotten.IsDisposed);
        Assert.True(stream.IsDisposed);
        Assert.True(evt.IsDisposed);
        Assert.Equal(0, accelerator.AllocatedBytes);
        Assert.Throws<ObjectDisposedException>(() => stream.Synchronize());
        Assert.Throws<ObjectDisposedException>(() => evt.Record());
        Assert.Throws<ObjectDisposedException>(() => accelerator.Allocate<float>(1));
    }

    [Fact]
    public void CpuBuffersExposeSpansAndCpuAcceleratorsHaveTheirOwnMemory()
    {
        var cpu0 = TestDevices.Context.Get("cpu");
        var cpu2 = TestDevices.Context.Get("cpu:2");
        Assert.Equal("cpu:0", cpu0.Name);
        Assert.Equal("cpu:2", cpu2.Name);
        Assert.NotSame(cpu0, cpu2);
        using var a = cpu0.Allocate<int>(4);
        using var b = cpu2.Allocate<int>(4);
        a.AsSpan().Fill(1);
        b.AsSpan().Fill(2);
        Assert.All(a.ToArray(), v => Assert.Equal(1, v));
        Assert.All(b.ToArray(), v => Assert.Equal(2, v));
    }

    [Theory, MemberData(nameof(Devices))]
    public void AllocatesDtypeChosenAtRunTime(string device)
    {
        var accelerator = TestDevices.Get(device);
        foreach (var dtype in Enum.GetValues<DType>())
        {
            using var buffer = accelerator.Allocate(dtype, 3);
            Assert.Equal(dtype, buffer.DType);
            Assert.Equal(3L * DTypes.SizeOf(dtype), buffer.LengthBytes);
        }
    }
}
