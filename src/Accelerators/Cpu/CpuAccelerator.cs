using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MoeRuntime.Accelerators.Cpu;

/// <summary>
/// The CPU as an accelerator: its memory is aligned host memory, its streams run work as it is
/// enqueued, and every kernel runs as its C# CPU twin. Several can exist at once (<c>cpu:0</c>,
/// <c>cpu:1</c>, ...), each with its own memory, standing in for several GPUs.
/// </summary>
public sealed class CpuAccelerator : Accelerator
{
    private const int Alignment = 64;
    private readonly CpuStream _defaultStream;

    public CpuAccelerator(int index = 0)
        : base(new AcceleratorId(AcceleratorKind.Cpu, index), Describe())
    {
        _defaultStream = new CpuStream(this);
    }

    public override AcceleratorStream DefaultStream => _defaultStream;

    public override (long Free, long Total) MemoryInfo()
    {
        var info = GC.GetGCMemoryInfo();
        long total = info.TotalAvailableMemoryBytes;
        return (Math.Max(0, total - AllocatedBytes), total);
    }

    protected override unsafe DeviceMemory AllocateCore(long bytes)
    {
        // At least one byte so that an empty buffer still has a distinct, valid address.
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), Alignment);
        if (p is null)
        {
            var (free, total) = MemoryInfo();
            throw new AcceleratorOutOfMemoryException(Name, bytes, free, total);
        }
        return new HostMemory((nint)p, bytes);
    }

    protected override AcceleratorStream CreateStreamCore() => new CpuStream(this);
    protected override AcceleratorEvent CreateEventCore() => new CpuEvent(this);
    protected override void SynchronizeCore() { }

    protected internal override unsafe void CopyCore(MemoryBuffer source, long sourceOffsetBytes, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream stream) =>
        Buffer.MemoryCopy((byte*)source.Pointer + sourceOffsetBytes, (byte*)destination.Pointer + destinationOffsetBytes, bytes, bytes);

    protected internal override unsafe void CopyFromHostCore(void* source, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream stream, bool synchronous) =>
        Buffer.MemoryCopy(source, (byte*)destination.Pointer + destinationOffsetBytes, bytes, bytes);

    protected internal override unsafe void CopyToHostCore(MemoryBuffer source, long sourceOffsetBytes, void* destination, long bytes, AcceleratorStream stream, bool synchronous) =>
        Buffer.MemoryCopy((byte*)source.Pointer + sourceOffsetBytes, destination, bytes, bytes);

    protected internal override unsafe void FillBytesCore(MemoryBuffer destination, long offsetBytes, long bytes, byte value, AcceleratorStream stream) =>
        NativeMemory.Fill((byte*)destination.Pointer + offsetBytes, (nuint)bytes, value);

    protected internal override unsafe void Fill32Core(MemoryBuffer destination, long offsetBytes, long count, uint value, AcceleratorStream stream) =>
        new Span<uint>((byte*)destination.Pointer + offsetBytes, checked((int)count)).Fill(value);

    protected override void DisposeCore() { }

    private static DeviceInfo Describe()
    {
        var (_, total) = (0L, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        string name = $"CPU ({Environment.ProcessorCount} cores, {RuntimeInformation.ProcessArchitecture})";
        return new DeviceInfo(name, 0, 0, Environment.ProcessorCount, total, 0, 0, null);
    }

    private sealed unsafe class HostMemory(nint address, long bytes) : DeviceMemory(address, bytes)
    {
        private int _freed;

        public override void Dispose()
        {
            if (Interlocked.Exchange(ref _freed, 1) == 0)
                NativeMemory.AlignedFree((void*)Address);
        }
    }
}

/// <summary>A CPU stream: work runs when it is enqueued, so there is never anything to wait for.</summary>
public sealed class CpuStream : AcceleratorStream
{
    internal CpuStream(CpuAccelerator accelerator) : base(accelerator) { }
    protected override void SynchronizeCore() { }
    protected override void WaitCore(AcceleratorEvent evt) { }
    protected override void DisposeCore() { }
}

/// <summary>A CPU event: the host clock at the moment it was recorded.</summary>
public sealed class CpuEvent : AcceleratorEvent
{
    private long _timestamp = -1;

    internal CpuEvent(CpuAccelerator accelerator) : base(accelerator) { }

    protected override void RecordCore(AcceleratorStream stream) => _timestamp = Stopwatch.GetTimestamp();
    protected override void SynchronizeCore() { }

    protected override float ElapsedCore(AcceleratorEvent start)
    {
        var s = (CpuEvent)start;
        if (s._timestamp < 0 || _timestamp < 0)
            throw new InvalidOperationException("both events must be recorded before timing them");
        return (float)Stopwatch.GetElapsedTime(s._timestamp, _timestamp).TotalMilliseconds;
    }

    protected override void DisposeCore() { }
}
